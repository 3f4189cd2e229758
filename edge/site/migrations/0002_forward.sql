-- Forwarding committed events to the national tier (NATS JetStream): events get their commit
-- order, and each forward target keeps how far it got.

-- One writer (the ingest's writer thread) commits batches one after the other, so the order
-- the sequence hands out numbers in is the order events became visible. Rows that existed
-- before this migration are numbered in no particular order.
ALTER TABLE events ADD COLUMN commit_seq bigserial;
CREATE UNIQUE INDEX events_commit_seq ON events (commit_seq);

CREATE TABLE forward_cursor (
    target          text PRIMARY KEY,  -- e.g. jetstream:CROSSINGS
    commit_seq      bigint NOT NULL DEFAULT 0,  -- every event up to here is acknowledged there
    forwarded       bigint NOT NULL DEFAULT 0,
    duplicates      bigint NOT NULL DEFAULT 0,  -- acknowledged as already stored (Nats-Msg-Id)
    updated_at      timestamptz NOT NULL DEFAULT now()
);
