-- crm-endpoint schema version 2 (postgres): each store's live queue (db/queue.rs).
-- queue_turns: one row per turn, with every step it had (its queue events: ticket_issued,
-- turn_called, turn_served, turn_no_show, turn_transferred, turn_parked, turn_walked_out,
-- queue_conflict, from whichever kiosk of the store, as they came; `steps`, a JSON array) and its
-- state now, folded from them (any arrival order gives the same state).
-- queue_conflicts: the conflicts alone, listed per store and day.
-- Filled from the events stored in the last two days at the first open (settings key
-- 'queue_backfilled').

CREATE TABLE queue_turns (
    turn_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, business_day TEXT, service TEXT,
    label TEXT, kiosk_id TEXT, priority BOOLEAN NOT NULL DEFAULT FALSE,
    out_of_sequence BOOLEAN NOT NULL DEFAULT FALSE, issued_ms BIGINT, issued_wall_ms BIGINT,
    status TEXT NOT NULL, counter TEXT, called_ms BIGINT, called_counter TEXT,
    last_ms BIGINT NOT NULL, steps TEXT NOT NULL)
    -- Room in each page for a row's next version: a step rewrites its turn's row in place (HOT).
    WITH (fillfactor = 80);
CREATE INDEX queue_turns_store_day ON queue_turns(store_id, business_day);
CREATE TABLE queue_conflicts (
    event_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, kiosk_id TEXT NOT NULL, turn_id TEXT,
    label TEXT, counter TEXT, step TEXT NOT NULL, reason TEXT NOT NULL, at_ms BIGINT NOT NULL);
CREATE INDEX queue_conflicts_store ON queue_conflicts(store_id, at_ms);
