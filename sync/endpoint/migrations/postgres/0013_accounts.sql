-- crm-endpoint schema version 13 (postgres): the console's named accounts (see the sqlite
-- migration). Additive only: replicas still on schema 12 never read these tables and write
-- audit lines without `user_name` (NULL).
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('hq-admin', 'regional-manager', 'store-manager', 'analyst')),
    region TEXT,
    store_id TEXT REFERENCES stores(id),
    disabled BOOLEAN NOT NULL DEFAULT FALSE,
    created_ms BIGINT NOT NULL,
    updated_ms BIGINT NOT NULL,
    CHECK ((role = 'regional-manager') = (region IS NOT NULL)),
    CHECK ((role = 'store-manager') = (store_id IS NOT NULL)));
CREATE TABLE user_sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_ms BIGINT NOT NULL,
    expires_ms BIGINT NOT NULL);
CREATE INDEX user_sessions_user ON user_sessions(user_name);
CREATE INDEX user_sessions_expires ON user_sessions(expires_ms);
ALTER TABLE audit_log ADD COLUMN user_name TEXT;
CREATE INDEX audit_log_user ON audit_log(user_name, at_ms);
