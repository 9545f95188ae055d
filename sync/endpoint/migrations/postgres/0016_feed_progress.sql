-- crm-endpoint schema version 16 (postgres; issue 21's customers page), additive: old replicas keep
-- serving. The feed cursor a kiosk last asked from, and when: a kiosk stores its cursor in the
-- transaction that applies a page (kiosk_sync::FeedSink::apply), so a request from cursor N says
-- it applied every item up to change N (an erasure among them). The customers page reads it to
-- say which kiosks have applied an erasure.
ALTER TABLE kiosks ADD COLUMN feed_cursor BIGINT;
ALTER TABLE kiosks ADD COLUMN feed_cursor_ms BIGINT;
