-- crm-endpoint schema version 8 (postgres): event storage that grows for years (issue 20).
-- `events` becomes natively partitioned by RANGE on `received_ms` (the endpoint's own clock, so
-- the month a row lands in never depends on a kiosk's clock), one partition per UTC month named
-- `events_pYYYYMM`, plus `events_default` for anything outside them. The endpoint creates the
-- coming months ahead and drops whole months past the events retention (db::storage).
-- A partitioned table's unique keys must contain the partition key, so the primary key becomes
-- (id, received_ms) and the "stored once, forever" of an event id (docs/DESIGN.md) moves to
-- `event_ids`, which ingest inserts into first. Every stored row is kept: copied into the
-- partitions, then the old table dropped, in this migration's one transaction.
-- `retention`: how long each data class is kept (days; NULL: forever), for this tenant.

CREATE TABLE event_ids (id TEXT PRIMARY KEY, received_ms BIGINT NOT NULL);
CREATE INDEX event_ids_received ON event_ids(received_ms);

ALTER TABLE events RENAME TO events_unpartitioned;
ALTER INDEX events_pkey RENAME TO events_unpartitioned_pkey;
ALTER INDEX events_store_type RENAME TO events_unpartitioned_store_type;
ALTER INDEX events_token RENAME TO events_unpartitioned_token;
ALTER INDEX events_device_log RENAME TO events_unpartitioned_device_log;

CREATE TABLE events (
    id TEXT NOT NULL, kiosk_id TEXT NOT NULL, store_id TEXT NOT NULL, seq BIGINT NOT NULL,
    type TEXT NOT NULL, schema_version INTEGER NOT NULL, device_ms BIGINT NOT NULL,
    corrected_ms BIGINT NOT NULL, received_ms BIGINT NOT NULL, card_token TEXT,
    envelope TEXT NOT NULL, PRIMARY KEY (id, received_ms)) PARTITION BY RANGE (received_ms);
CREATE INDEX events_store_type ON events(store_id, type, corrected_ms);
CREATE INDEX events_token ON events(card_token) WHERE card_token IS NOT NULL;
CREATE INDEX events_device_log ON events(kiosk_id, corrected_ms, seq) WHERE type = 'device_log';
CREATE TABLE events_default PARTITION OF events DEFAULT;

-- One partition per month from the oldest stored row's month to two months ahead.
DO $$
DECLARE
    oldest BIGINT;
    month TIMESTAMP;
    last_month TIMESTAMP;
    lo BIGINT;
    hi BIGINT;
BEGIN
    SELECT MIN(received_ms) INTO oldest FROM events_unpartitioned;
    month := date_trunc('month', to_timestamp(COALESCE(oldest, 1000 * extract(epoch FROM now())::BIGINT) / 1000.0) AT TIME ZONE 'UTC');
    last_month := date_trunc('month', now() AT TIME ZONE 'UTC') + INTERVAL '2 months';
    WHILE month <= last_month LOOP
        lo := (extract(epoch FROM month) * 1000)::BIGINT;
        hi := (extract(epoch FROM month + INTERVAL '1 month') * 1000)::BIGINT;
        EXECUTE format('CREATE TABLE %I PARTITION OF events FOR VALUES FROM (%s) TO (%s)',
            'events_p' || to_char(month, 'YYYYMM'), lo, hi);
        month := month + INTERVAL '1 month';
    END LOOP;
END $$;

INSERT INTO events (id, kiosk_id, store_id, seq, type, schema_version, device_ms, corrected_ms,
        received_ms, card_token, envelope)
    SELECT id, kiosk_id, store_id, seq, type, schema_version, device_ms, corrected_ms,
        received_ms, card_token, envelope FROM events_unpartitioned;
INSERT INTO event_ids (id, received_ms) SELECT id, received_ms FROM events_unpartitioned;
DROP TABLE events_unpartitioned;

CREATE TABLE retention (
    data_class TEXT PRIMARY KEY CHECK (data_class IN ('personal', 'events', 'aggregates')),
    days INTEGER CHECK (days IS NULL OR days > 0), updated_ms BIGINT NOT NULL);

-- The dashboard's daily roll-ups (db::rollup): one row per store, kiosk and local day with that
-- day's figures (JSON), and how far each store's are made, in which time zone.
CREATE TABLE daily_figures (
    store_id TEXT NOT NULL, kiosk_id TEXT NOT NULL, day_ms BIGINT NOT NULL, figures TEXT NOT NULL,
    PRIMARY KEY (store_id, day_ms, kiosk_id));
CREATE INDEX daily_figures_day ON daily_figures(day_ms);
CREATE TABLE rollup_marks (
    store_id TEXT PRIMARY KEY, timezone TEXT, rolled_until_ms BIGINT NOT NULL);
-- Late events (received now, about days already rolled up) are found by reception time: a
-- BRIN index, tiny on an append-mostly column.
CREATE INDEX events_received ON events USING brin (received_ms);

-- A breaking ("contract") migration for the fleet's rolling upgrades (docs/FLEET.md): an
-- endpoint older than this one inserts events with `ON CONFLICT (id)`, which no longer matches a
-- unique key of the partitioned table, so it must not keep serving this schema.
UPDATE schema_compat SET oldest_code = 8 WHERE id = 1;
