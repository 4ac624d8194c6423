-- One row per leadership change, for GET /api/failover/history and post-mortems.
CREATE TABLE failover_events (
    id              BIGSERIAL PRIMARY KEY,
    cluster         TEXT NOT NULL,
    epoch           BIGINT NOT NULL,
    new_leader      TEXT NOT NULL,
    previous_leader TEXT,
    reason          TEXT NOT NULL,
    detected_at     TIMESTAMPTZ NOT NULL,
    recovered_at    TIMESTAMPTZ NOT NULL,
    recovery_ms     BIGINT NOT NULL CHECK (recovery_ms >= 0),
    created_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (cluster, epoch)
);
