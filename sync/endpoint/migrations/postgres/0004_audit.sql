-- crm-endpoint schema version 4 (postgres): the operator's audit log (see the sqlite migration).
CREATE TABLE audit_log (
    id BIGSERIAL PRIMARY KEY,
    at_ms BIGINT NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    outcome TEXT NOT NULL);
CREATE INDEX audit_log_at ON audit_log(at_ms);
