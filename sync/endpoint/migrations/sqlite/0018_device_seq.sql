-- crm-endpoint schema version 18 (sqlite), additive: old replicas keep serving. A device's last
-- status is its latest report by skew-corrected time, as before, except that two reports within
-- 5 s of each other are ordered by the kiosk's own sequence: a report and the next, a moment
-- apart in two batches, could swap order when the kiosk's clock estimate moved between the
-- batches, and a printer out of paper then stayed "ok" (the alert test saw it on a loaded
-- machine). An equal sequence (a journal counting again) and NULL (rows of before this version)
-- let the report that arrives later win, as before.
ALTER TABLE kiosk_devices ADD COLUMN seq INTEGER;
