-- The checkpoint register: crossings, every event, lanes, gaps, losses, quarantine, evidence,
-- and the current state of each lane and device. Applied once, recorded in schema_migrations.

CREATE TABLE lanes (
    checkpoint      text NOT NULL,
    lane            text NOT NULL,
    boot_seq        bigint,
    epoch           integer NOT NULL DEFAULT 1,  -- +1 each time the lane resets lane_seq
    first_lane_seq  bigint,            -- the first lane_seq the register saw in this epoch
    last_lane_seq   bigint,            -- highest lane_seq of the epoch
    events          bigint NOT NULL DEFAULT 0,
    last_event_at   timestamptz,       -- when the register last committed one of its events
    last_seen       timestamptz,       -- any message of the lane (event, status, evidence)
    PRIMARY KEY (checkpoint, lane)
);

-- Append-only: one row per event_id; a duplicate is a no-op.
CREATE TABLE events (
    event_id        text PRIMARY KEY,
    crossing_id     text NOT NULL,
    checkpoint      text NOT NULL,
    lane            text NOT NULL,
    type            text NOT NULL CHECK (type IN ('new', 'update', 'end')),
    lane_seq        bigint NOT NULL,
    boot_seq        bigint NOT NULL,
    epoch           integer NOT NULL,
    produced        timestamptz NOT NULL,
    received_at     timestamptz NOT NULL DEFAULT now(),
    historical      boolean NOT NULL,  -- as first received
    content_sha256  text NOT NULL,     -- of the event without its delivery flag `historical`
    body            jsonb NOT NULL
);
CREATE INDEX events_lane_seq ON events (checkpoint, lane, epoch, lane_seq);
CREATE INDEX events_crossing ON events (crossing_id);

-- One row per crossing: its latest state; an `end` is authoritative.
CREATE TABLE crossings (
    crossing_id     text PRIMARY KEY,
    checkpoint      text NOT NULL,
    lane            text NOT NULL,
    direction       text,
    start_at        timestamptz NOT NULL,
    end_at          timestamptz,
    ended           boolean NOT NULL,
    end_reason      text,
    event_id        text NOT NULL,     -- the event this row shows
    lane_seq        bigint NOT NULL,
    identified      boolean NOT NULL,
    plates          text[] NOT NULL DEFAULT '{}',
    gross_kg        double precision,
    alarms          text[] NOT NULL DEFAULT '{}',
    updated_at      timestamptz NOT NULL DEFAULT now(),
    body            jsonb NOT NULL
);
CREATE INDEX crossings_start ON crossings (start_at);
CREATE INDEX crossings_lane_start ON crossings (checkpoint, lane, start_at);
CREATE INDEX crossings_plates ON crossings USING gin (plates);

-- A lane_seq range the register did not receive: asked for with cmd/replay until every
-- lane_seq in it arrived or the lane said it no longer keeps it (a loss).
CREATE TABLE gaps (
    id              bigserial PRIMARY KEY,
    checkpoint      text NOT NULL,
    lane            text NOT NULL,
    epoch           integer NOT NULL,
    from_seq        bigint NOT NULL,
    to_seq          bigint NOT NULL CHECK (to_seq >= from_seq),
    missing         bigint NOT NULL,   -- lane_seq in the range neither received nor lost
    state           text NOT NULL DEFAULT 'open'
                    CHECK (state IN ('open', 'repaired', 'lost', 'partly_lost', 'superseded')),
    opened_at       timestamptz NOT NULL DEFAULT now(),
    closed_at       timestamptz,
    requests        integer NOT NULL DEFAULT 0,
    last_request_at timestamptz,
    next_request_at timestamptz NOT NULL,
    last_reply      jsonb
);
CREATE INDEX gaps_open ON gaps (checkpoint, lane) WHERE state = 'open';

-- Permanent losses: ranges a replay reply reported as not kept by the lane.
CREATE TABLE losses (
    gap_id          bigint NOT NULL REFERENCES gaps (id),
    checkpoint      text NOT NULL,
    lane            text NOT NULL,
    from_seq        bigint NOT NULL,
    to_seq          bigint NOT NULL CHECK (to_seq >= from_seq),
    count           bigint NOT NULL,   -- of those, not received: the lost events
    recorded_at     timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX losses_lane ON losses (checkpoint, lane, from_seq);

-- Something the lane did that the contract forbids, e.g. lane_seq going back.
CREATE TABLE lane_flags (
    id              bigserial PRIMARY KEY,
    checkpoint      text NOT NULL,
    lane            text NOT NULL,
    kind            text NOT NULL,
    detail          jsonb NOT NULL,
    flagged_at      timestamptz NOT NULL DEFAULT now()
);

-- Messages that were not stored as events, with the reason; they never block the stream.
CREATE TABLE quarantine (
    id              bigserial PRIMARY KEY,
    received_at     timestamptz NOT NULL DEFAULT now(),
    topic           text NOT NULL,
    checkpoint      text,
    lane            text,
    reason_code     text NOT NULL,     -- oversized, not_json, invalid, ..., event_id_conflict
    reason          text NOT NULL,
    event_id        text,
    size            bigint NOT NULL,
    sha256          text NOT NULL,
    payload         bytea NOT NULL     -- at most the first limits.quarantine_keep_bytes
);
CREATE INDEX quarantine_lane ON quarantine (checkpoint, lane);

-- Evidence files: what the `end` event references and what arrived, by content address.
CREATE TABLE evidence (
    crossing_id     text NOT NULL,
    file            text NOT NULL,
    checkpoint      text NOT NULL,
    lane            text NOT NULL,
    kind            text,
    expected_sha256 text,              -- from the end event
    received_sha256 text,              -- of the bytes that arrived (the store's file name)
    size            bigint,
    received_at     timestamptz,
    state           text GENERATED ALWAYS AS (
                        CASE WHEN expected_sha256 IS NULL THEN 'unreferenced'
                             WHEN received_sha256 IS NULL THEN 'missing'
                             WHEN expected_sha256 = received_sha256 THEN 'verified'
                             ELSE 'mismatch' END) STORED,
    PRIMARY KEY (crossing_id, file)
);

-- Current state, from the lanes' retained status topics.
CREATE TABLE lane_status (
    checkpoint      text NOT NULL,
    lane            text NOT NULL,
    state           text NOT NULL,
    boot_seq        bigint,
    alarms          text[] NOT NULL DEFAULT '{}',
    produced        timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    body            jsonb NOT NULL,
    PRIMARY KEY (checkpoint, lane)
);

CREATE TABLE device_status (
    checkpoint      text NOT NULL,
    lane            text NOT NULL,
    device          text NOT NULL,
    kind            text,
    state           text NOT NULL,
    last_error      text,
    since           timestamptz,
    produced        timestamptz,
    received_at     timestamptz NOT NULL DEFAULT now(),
    body            jsonb NOT NULL,
    PRIMARY KEY (checkpoint, lane, device)
);
