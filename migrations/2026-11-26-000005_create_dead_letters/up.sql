-- Records that are not valid events. Stored raw (bytea: they may not even be
-- UTF-8) with the reason, keyed by their Kafka position so a replay after
-- failover does not store the same poison record twice.
CREATE TABLE dead_letters (
    id              BIGSERIAL PRIMARY KEY,
    topic           TEXT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    kafka_offset    BIGINT NOT NULL,
    record_key      BYTEA,
    payload         BYTEA,
    reason          TEXT NOT NULL,
    epoch           BIGINT NOT NULL,
    processed_by    TEXT NOT NULL,
    stored_at       TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    UNIQUE (topic, kafka_partition, kafka_offset)
);
