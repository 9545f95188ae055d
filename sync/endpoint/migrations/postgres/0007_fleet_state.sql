-- crm-endpoint schema version 7 (postgres): what several endpoint replicas must share (issue 20,
-- docs/FLEET.md). Rate limits and throttles (wrong enrollment codes, wrong admin tokens, the
-- dashboard's logins, live lookups) count attempts per scope and key in a fixed window here, not
-- in each process's memory. Keys are SHA-256 digests (an address is personal data).
CREATE TABLE rate_limits (
    scope TEXT NOT NULL,
    key TEXT NOT NULL,
    window_start_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL,
    attempts INTEGER NOT NULL,
    PRIMARY KEY (scope, key));
CREATE INDEX rate_limits_expiry ON rate_limits(expires_ms);
-- The oldest endpoint version that still runs correctly on this schema. Rolling upgrades: a
-- replica finding a schema newer than it knows keeps serving when oldest_code is at most its
-- own newest version (the newer migrations were additive), and refuses otherwise. A migration
-- that breaks older code (drops or renames what it reads or writes) sets oldest_code to its own
-- version; an additive one leaves it.
CREATE TABLE schema_compat (id INTEGER PRIMARY KEY CHECK (id = 1), oldest_code BIGINT NOT NULL);
INSERT INTO schema_compat (id, oldest_code) VALUES (1, 7);
