-- crm-endpoint schema version 5 (postgres): the recent clock samples of each kiosk's current boot
-- (JSON), whose median is its skew estimate: one absurd sample can no longer take the estimate
-- over (issue 18).
ALTER TABLE kiosks ADD COLUMN skew_samples TEXT;
