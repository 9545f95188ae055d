-- crm-endpoint schema version 13 (sqlite): the console's named accounts (issue 21, docs/CONSOLE.md
-- "Accounts and roles"). A password is kept only as its Argon2id PHC string. A role's scope is a
-- region (`regional-manager`: `stores.region`, schema 12) or a store (`store-manager`); the others
-- have neither. Sessions are rows so that logging out, disabling an account or resetting its
-- password ends them on every replica; the cookie's secret is kept only as its SHA-256 digest.
-- The audit log gains the account that acted (NULL: the admin token, or nobody yet).
CREATE TABLE users (
    name TEXT PRIMARY KEY,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('hq-admin', 'regional-manager', 'store-manager', 'analyst')),
    region TEXT,
    store_id TEXT REFERENCES stores(id),
    disabled INTEGER NOT NULL DEFAULT 0,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    CHECK ((role = 'regional-manager') = (region IS NOT NULL)),
    CHECK ((role = 'store-manager') = (store_id IS NOT NULL)));
CREATE TABLE user_sessions (
    id_hash TEXT PRIMARY KEY,
    user_name TEXT NOT NULL REFERENCES users(name) ON DELETE CASCADE,
    created_ms INTEGER NOT NULL,
    expires_ms INTEGER NOT NULL);
CREATE INDEX user_sessions_user ON user_sessions(user_name);
CREATE INDEX user_sessions_expires ON user_sessions(expires_ms);
ALTER TABLE audit_log ADD COLUMN user_name TEXT;
CREATE INDEX audit_log_user ON audit_log(user_name, at_ms);
