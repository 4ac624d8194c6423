-- One row per accepted event. The primary key on message_id is what makes a
-- replay after failover (or a client retry with the same id) a no-op:
-- the sink inserts with ON CONFLICT (message_id) DO NOTHING.
CREATE TABLE log_events (
    message_id      UUID PRIMARY KEY,
    level           TEXT NOT NULL CHECK (level IN ('TRACE', 'DEBUG', 'INFO', 'WARN', 'ERROR', 'FATAL')),
    message         TEXT NOT NULL,
    source          TEXT NOT NULL,
    event_timestamp TIMESTAMPTZ NOT NULL,
    received_at     TIMESTAMPTZ NOT NULL,
    attributes      JSONB NOT NULL DEFAULT '{}'::jsonb,
    topic           TEXT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    BIGINT NOT NULL,
    -- Leadership epoch of the node that committed the row: lets a test (and an
    -- operator) prove that no stale leader committed after a newer one started.
    epoch           BIGINT NOT NULL,
    processed_by    TEXT NOT NULL,
    stored_at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp()
);

CREATE INDEX log_events_epoch_idx ON log_events (epoch);
CREATE INDEX log_events_stored_at_idx ON log_events (stored_at);
