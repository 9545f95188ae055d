-- crm-endpoint schema version 12 (sqlite): where a store is (issue 21: regional managers see the
-- stores of their region; reports and the map group by region). `region` is a short code
-- (e.g. an autonomous community's ISO 3166-2 code such as `ES-MD`); coordinates are WGS 84 degrees.
ALTER TABLE stores ADD COLUMN region TEXT;
ALTER TABLE stores ADD COLUMN latitude REAL;
ALTER TABLE stores ADD COLUMN longitude REAL;
CREATE INDEX stores_region ON stores(region);
