-- crm-endpoint schema version 14 (postgres): forwarding to the company's CRM (issue 21). Additive.
-- `forward_endpoints`: the subscriptions the operator configured: a Standard Webhooks receiver
-- (`kind` webhook, `secret` its whsec_ signing secret) or a ready connector (`kind` hubspot,
-- `secret` the private app's token), the event types it wants (a JSON array), its state
-- (enabled, or disabled by the operator or by the failure rule, `state_reason` says which) and
-- its failure streak (`failures` attempts in a row since `failing_since_ms`).
-- `forward_messages`: the outbox, one row per message and endpoint, written in the transaction
-- that stored what it tells (the ingest of a batch, an erasure); `msg_id` is the webhook-id,
-- stable across retries and replays; `order_key` the customer (card token) or, for an
-- anonymous turn, the turn: a message is sent only when no earlier pending one of its endpoint
-- and key remains (`seq` order). `state`: pending, delivered or dead (dead-lettered).
-- `forward_turns`: the card token of a forwarded identified turn, so its later steps are
-- ordered with its customer's messages.
CREATE TABLE forward_endpoints (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, url TEXT NOT NULL, secret TEXT NOT NULL,
    event_types TEXT NOT NULL, options TEXT NOT NULL DEFAULT '{}',
    state TEXT NOT NULL DEFAULT 'enabled', state_reason TEXT, created_ms BIGINT NOT NULL,
    failures INTEGER NOT NULL DEFAULT 0, failing_since_ms BIGINT, last_success_ms BIGINT,
    last_error TEXT);
CREATE TABLE forward_messages (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    endpoint_id TEXT NOT NULL, msg_id TEXT NOT NULL, event_type TEXT NOT NULL,
    order_key TEXT NOT NULL, payload TEXT NOT NULL, created_ms BIGINT NOT NULL,
    state TEXT NOT NULL DEFAULT 'pending', attempts INTEGER NOT NULL DEFAULT 0,
    next_ms BIGINT NOT NULL, delivered_ms BIGINT, dead_ms BIGINT, last_error TEXT,
    UNIQUE (endpoint_id, msg_id));
CREATE INDEX forward_messages_due ON forward_messages(next_ms) WHERE state = 'pending';
CREATE INDEX forward_messages_order ON forward_messages(endpoint_id, order_key, seq)
    WHERE state = 'pending';
CREATE INDEX forward_messages_dead ON forward_messages(endpoint_id, dead_ms) WHERE state = 'dead';
CREATE INDEX forward_messages_key ON forward_messages(order_key);
CREATE TABLE forward_turns (turn_id TEXT PRIMARY KEY, card_token TEXT NOT NULL);
