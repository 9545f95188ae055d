-- crm-endpoint schema version 2 (postgres): each store's live queue (db/queue.rs).
-- queue_steps: one row per queue event (ticket_issued, turn_called, turn_served, turn_no_show,
-- turn_transferred, turn_parked, turn_walked_out, queue_conflict), as it came, whichever kiosk of
-- the store sent it, keyed by turn ('' for a conflict that names none) so that a turn's steps
-- are read together. queue_turns: each turn's state now, folded from all its steps (any arrival
-- order gives the same state). Filled from the events stored in the last two days at the first
-- open (settings key 'queue_backfilled').

CREATE TABLE queue_steps (
    turn_id TEXT NOT NULL, event_id TEXT NOT NULL, store_id TEXT NOT NULL,
    kiosk_id TEXT NOT NULL, seq BIGINT NOT NULL, kind TEXT NOT NULL, at_ms BIGINT NOT NULL,
    wall_ms BIGINT NOT NULL, label TEXT, service TEXT, counter TEXT, business_day TEXT,
    priority BOOLEAN NOT NULL DEFAULT FALSE, out_of_sequence BOOLEAN NOT NULL DEFAULT FALSE,
    recall BOOLEAN NOT NULL DEFAULT FALSE, detail TEXT, reason TEXT,
    PRIMARY KEY (turn_id, event_id));
CREATE INDEX queue_steps_calls ON queue_steps(store_id, at_ms) WHERE kind = 'called';
CREATE INDEX queue_steps_conflicts ON queue_steps(store_id, at_ms) WHERE kind = 'conflict';
CREATE TABLE queue_turns (
    turn_id TEXT PRIMARY KEY, store_id TEXT NOT NULL, business_day TEXT, service TEXT,
    label TEXT, kiosk_id TEXT, priority BOOLEAN NOT NULL DEFAULT FALSE,
    out_of_sequence BOOLEAN NOT NULL DEFAULT FALSE, issued_ms BIGINT, issued_wall_ms BIGINT,
    status TEXT NOT NULL, counter TEXT, called_ms BIGINT, called_counter TEXT,
    last_ms BIGINT NOT NULL);
CREATE INDEX queue_turns_store_day ON queue_turns(store_id, business_day, last_ms);
