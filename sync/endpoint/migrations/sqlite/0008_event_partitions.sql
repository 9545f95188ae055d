-- crm-endpoint schema version 8 (sqlite): the retention policy of issue 20. SQLite has no
-- partitions: its `events` table stays as it is and the retention job DELETEs what is past the
-- events retention (PostgreSQL drops whole months; db::storage). The version keeps its name on
-- both databases.
-- `retention`: how long each data class is kept (days; NULL: forever), for this tenant.
CREATE TABLE retention (
    data_class TEXT PRIMARY KEY CHECK (data_class IN ('personal', 'events', 'aggregates')),
    days INTEGER CHECK (days IS NULL OR days > 0), updated_ms INTEGER NOT NULL);
CREATE INDEX events_received ON events(received_ms);

-- The dashboard's daily roll-ups (db::rollup): one row per store, kiosk and local day with that
-- day's figures (JSON), and how far each store's are made, in which time zone.
CREATE TABLE daily_figures (
    store_id TEXT NOT NULL, kiosk_id TEXT NOT NULL, day_ms INTEGER NOT NULL, figures TEXT NOT NULL,
    PRIMARY KEY (store_id, day_ms, kiosk_id));
CREATE INDEX daily_figures_day ON daily_figures(day_ms);
CREATE TABLE rollup_marks (
    store_id TEXT PRIMARY KEY, timezone TEXT, rolled_until_ms INTEGER NOT NULL);
