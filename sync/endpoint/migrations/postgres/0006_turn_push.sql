-- crm-endpoint schema version 6 (postgres): Web Push subscriptions of the customers' turn pages
-- (issue 19), one per turn and browser, deleted with the store's business day; which of the
-- two messages (turns near, called) each already got. A store's threshold of "near".
CREATE TABLE push_subscriptions (
    turn_id TEXT NOT NULL, store_id TEXT NOT NULL, business_day TEXT NOT NULL,
    label TEXT NOT NULL, lang TEXT NOT NULL, page TEXT NOT NULL, endpoint TEXT NOT NULL,
    p256dh TEXT NOT NULL,
    auth TEXT NOT NULL, created_ms BIGINT NOT NULL,
    sent_near BOOLEAN NOT NULL DEFAULT FALSE, sent_called BOOLEAN NOT NULL DEFAULT FALSE,
    PRIMARY KEY (turn_id, endpoint));
CREATE INDEX push_subscriptions_store ON push_subscriptions(store_id, business_day);
CREATE TABLE store_notify (store_id TEXT PRIMARY KEY REFERENCES stores(id), turns_ahead INTEGER NOT NULL);
-- Turns told "your turn is near" by SMS/WhatsApp (once each), deleted with their day.
CREATE TABLE sms_sent (turn_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, business_day TEXT NOT NULL, sent_ms BIGINT NOT NULL);
