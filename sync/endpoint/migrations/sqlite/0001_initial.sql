-- crm-endpoint schema version 1 (sqlite): the schema every endpoint before numbered migrations
-- created. IF NOT EXISTS throughout: a database made by those endpoints (no schema_version row)
-- is adopted as version 1 unchanged.

CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS stores (id TEXT PRIMARY KEY, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS kiosks (
    id TEXT PRIMARY KEY, store_id TEXT NOT NULL REFERENCES stores(id), secret TEXT NOT NULL,
    hardware_profile TEXT NOT NULL, firmware_version TEXT NOT NULL, enrolled_ms INTEGER NOT NULL,
    last_seen_ms INTEGER, skew_ms INTEGER, skew_at_ms INTEGER, backlog INTEGER);
CREATE TABLE IF NOT EXISTS enroll_codes (
    code_hash TEXT PRIMARY KEY, store_id TEXT NOT NULL REFERENCES stores(id),
    expires_ms INTEGER NOT NULL, used_ms INTEGER, kiosk_id TEXT);
CREATE TABLE IF NOT EXISTS request_signatures (signature TEXT PRIMARY KEY, expires_ms INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS request_signatures_expiry ON request_signatures(expires_ms);
CREATE TABLE IF NOT EXISTS events (
    id TEXT PRIMARY KEY, kiosk_id TEXT NOT NULL, store_id TEXT NOT NULL, seq INTEGER NOT NULL,
    type TEXT NOT NULL, schema_version INTEGER NOT NULL, device_ms INTEGER NOT NULL,
    corrected_ms INTEGER NOT NULL, received_ms INTEGER NOT NULL, card_token TEXT,
    envelope TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS events_store_type ON events(store_id, type, corrected_ms);
CREATE INDEX IF NOT EXISTS events_token ON events(card_token) WHERE card_token IS NOT NULL;
CREATE TABLE IF NOT EXISTS customers (
    card_token TEXT PRIMARY KEY, display_name TEXT, email TEXT, phone TEXT, locale TEXT,
    home_store TEXT, registered_ms INTEGER, visits INTEGER NOT NULL DEFAULT 0,
    last_visit_ms INTEGER, segment TEXT NOT NULL DEFAULT 'new',
    segment_manual INTEGER NOT NULL DEFAULT 0);
CREATE TABLE IF NOT EXISTS customer_stores (
    card_token TEXT NOT NULL, store_id TEXT NOT NULL, PRIMARY KEY (card_token, store_id));
CREATE TABLE IF NOT EXISTS consents (
    id INTEGER PRIMARY KEY AUTOINCREMENT, card_token TEXT NOT NULL, purpose TEXT NOT NULL,
    given INTEGER NOT NULL, policy_version TEXT NOT NULL, policy_sha256 TEXT NOT NULL,
    at_ms INTEGER NOT NULL, event_id TEXT);
CREATE INDEX IF NOT EXISTS consents_token ON consents(card_token, at_ms);
CREATE TABLE IF NOT EXISTS erasures (card_token TEXT PRIMARY KEY, erased_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS campaigns (id TEXT PRIMARY KEY, definition TEXT NOT NULL, updated_ms INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS coupons (code TEXT PRIMARY KEY, campaign_id TEXT NOT NULL, variant TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS campaign_facts (
    event_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, campaign_id TEXT NOT NULL,
    variant TEXT NOT NULL, kind TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS changes (
    seq INTEGER PRIMARY KEY AUTOINCREMENT, store_id TEXT, kind TEXT NOT NULL,
    item_key TEXT NOT NULL, item TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS changes_store ON changes(store_id, seq);
CREATE INDEX IF NOT EXISTS changes_key ON changes(kind, item_key);

-- The dashboard's tables: one row per turn with its issue, first call and service times; each
-- kiosk device's latest health; an index for each kiosk's last logs.
CREATE TABLE IF NOT EXISTS store_timezones (
    store_id TEXT PRIMARY KEY REFERENCES stores(id), timezone TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS turns (
    turn_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, kiosk_id TEXT NOT NULL, service TEXT,
    identified INTEGER NOT NULL DEFAULT 0, issued_ms INTEGER, called_ms INTEGER, served_ms INTEGER);
CREATE INDEX IF NOT EXISTS turns_store_issued ON turns(store_id, issued_ms);
CREATE TABLE IF NOT EXISTS kiosk_devices (
    kiosk_id TEXT NOT NULL, device TEXT NOT NULL, status TEXT NOT NULL, reason TEXT,
    at_ms INTEGER NOT NULL, PRIMARY KEY (kiosk_id, device));
CREATE INDEX IF NOT EXISTS events_device_log ON events(kiosk_id, corrected_ms, seq)
    WHERE type = 'device_log';
