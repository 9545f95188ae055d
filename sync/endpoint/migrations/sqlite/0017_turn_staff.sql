-- crm-endpoint schema version 17 (sqlite; issue 21's reports per staff member), additive: old
-- replicas keep serving. The staff member (their id in the store config's `staff` list) of each
-- turn, folded from its steps as the counter is: `staff`, of the step that decides its status
-- (served, no-show, called, parked), and `called_staff`, of its latest call. NULL where nobody
-- logged in with a PIN of their own (or the turn predates this version).
ALTER TABLE queue_turns ADD COLUMN staff TEXT;
ALTER TABLE queue_turns ADD COLUMN called_staff TEXT;
