-- The next offset to read per partition, written in the same transaction as the
-- events it covers: data and position commit together or not at all.
CREATE TABLE consumer_offsets (
    cluster         TEXT NOT NULL,
    topic           TEXT NOT NULL,
    kafka_partition INTEGER NOT NULL,
    next_offset     BIGINT NOT NULL CHECK (next_offset >= 0),
    epoch           BIGINT NOT NULL,
    updated_at      TIMESTAMPTZ NOT NULL DEFAULT clock_timestamp(),
    PRIMARY KEY (cluster, topic, kafka_partition)
);
