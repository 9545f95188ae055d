-- crm-endpoint schema version 4 (sqlite): the operator's audit log (docs/SECURITY.md): admin
-- reads of personal data, erasures, exports and failed admin authentication. `actor` says how the
-- caller was let in (token, session) or where a refused one came from; `target` is a card token or
-- a route, never a name, email or phone.
CREATE TABLE audit_log (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    at_ms INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL);
CREATE INDEX audit_log_at ON audit_log(at_ms);
