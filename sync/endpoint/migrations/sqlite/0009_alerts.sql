-- crm-endpoint schema version 9 (sqlite): fleet alerts (issue 20). One row per alert: `since_ms`
-- when its condition was first seen, `opened_ms` once it held for its threshold, `resolved_ms`
-- when it cleared; at most one unresolved row per kind and subject (a kiosk, a kiosk's printer,
-- a store). `alert_deliveries`: the webhook messages to send, one per opening and one per
-- resolution (their id is the webhook-id: a receiver dedupes retries by it), retried with
-- backoff; `state` is pending, delivered or failed (gave up). Thresholds and the webhook are
-- settings (`alert_thresholds`, `alert_webhook`).
CREATE TABLE alerts (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, subject TEXT NOT NULL, store_id TEXT NOT NULL,
    kiosk_id TEXT, detail TEXT NOT NULL, since_ms INTEGER NOT NULL, opened_ms INTEGER,
    resolved_ms INTEGER);
CREATE UNIQUE INDEX alerts_unresolved ON alerts(kind, subject) WHERE resolved_ms IS NULL;
CREATE INDEX alerts_opened ON alerts(opened_ms);
CREATE TABLE alert_deliveries (
    id TEXT PRIMARY KEY, alert_id TEXT NOT NULL, payload TEXT NOT NULL, created_ms INTEGER NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_ms INTEGER NOT NULL, delivered_ms INTEGER, last_error TEXT);
CREATE INDEX alert_deliveries_due ON alert_deliveries(next_ms) WHERE state = 'pending';
