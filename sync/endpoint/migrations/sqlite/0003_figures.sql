-- crm-endpoint schema version 3 (sqlite): figures managers can trust (docs/DESIGN.md invariants 16
-- and 17).
-- campaign_facts.dedupe_key: what makes a fact count once: the visit of an exposure
-- (campaign_shown.visit_id: the greeting and the ticket of one visit are one exposure) and the
-- code of a redemption (two kiosks reporting one coupon are one conversion). NULL (events from
-- kiosks before visit ids) counts each event.
-- survey_answers: the one answer kept per turn; a second answer is acknowledged to its kiosk and
-- stored nowhere. Filled from the answers already stored, the earliest per turn.

ALTER TABLE campaign_facts ADD COLUMN dedupe_key TEXT;
CREATE UNIQUE INDEX campaign_facts_once ON campaign_facts(campaign_id, kind, dedupe_key);
CREATE TABLE survey_answers (
    turn_id TEXT PRIMARY KEY, event_id TEXT NOT NULL, store_id TEXT NOT NULL);
INSERT INTO survey_answers (turn_id, event_id, store_id)
    SELECT CAST(json_extract(envelope, '$.payload.turn_id') AS TEXT), id, store_id FROM events
    WHERE type = 'survey_answered' AND json_extract(envelope, '$.payload.turn_id') IS NOT NULL
    ORDER BY corrected_ms, seq
    ON CONFLICT DO NOTHING;
