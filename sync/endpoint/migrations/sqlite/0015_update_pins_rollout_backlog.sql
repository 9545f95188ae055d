-- crm-endpoint schema version 15 (sqlite; issue 20's gaps), additive: old replicas keep serving.
-- The operator's signed pin of a kiosk to a release (JSON of kiosk_protocol::release::SignedPin):
-- the only thing that lets a kiosk install a release older than the one it runs.
ALTER TABLE kiosk_release_pins ADD COLUMN signed_pin TEXT;
-- The release a kiosk holds downloaded and verified, waiting for a quiet moment (rollout view).
ALTER TABLE kiosk_firmware ADD COLUMN downloaded TEXT;
-- When (endpoint time, Unix ms) the oldest event still waiting in the kiosk's outbox was made, as
-- its age the kiosk reports with each batch says; NULL when nothing waits (the backlog alert).
ALTER TABLE kiosks ADD COLUMN backlog_since_ms INTEGER;
