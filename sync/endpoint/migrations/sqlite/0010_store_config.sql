-- crm-endpoint schema version 10 (sqlite): store configurations set at the CRM (issue 20 item
-- 4), every version kept (the newest is what the store's kiosks get in their feed).
CREATE TABLE store_configs (
    store_id TEXT NOT NULL REFERENCES stores(id), version INTEGER NOT NULL,
    config TEXT NOT NULL, created_ms INTEGER NOT NULL,
    PRIMARY KEY (store_id, version));
