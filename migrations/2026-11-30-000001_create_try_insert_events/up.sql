-- Inserts a batch of events, or names why PostgreSQL refused it for what it
-- holds. Timestamps arrive as microseconds since the Unix epoch and attributes
-- as JSON text, and both are converted here, inside the exception block: a
-- value PostgreSQL cannot hold (a timestamp before 4713 BC, JSON it cannot
-- store) is then an error this function catches and reports by SQLSTATE, not
-- a bind error that the client could only see as text. Only data exceptions
-- (class 22) and integrity violations (class 23) are caught: a timeout, a lost
-- connection or a full disk still fail the transaction and are retried. The
-- sink isolates refused rows by bisection and dead-letters them, so one bad
-- row never wedges the rows behind it.
CREATE FUNCTION understudy_try_insert_events(
    message_ids      UUID[],
    levels           TEXT[],
    messages         TEXT[],
    sources          TEXT[],
    event_micros     BIGINT[],
    received_micros  BIGINT[],
    attributes       TEXT[],
    topics           TEXT[],
    partitions       INTEGER[],
    offsets          BIGINT[],
    epochs           BIGINT[],
    processed_bys    TEXT[],
    OUT inserted         BIGINT,
    OUT refused_sqlstate TEXT,
    OUT refused_message  TEXT
)
LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO log_events
        (message_id, level, message, source, event_timestamp, received_at, attributes,
         topic, kafka_partition, kafka_offset, epoch, processed_by)
    SELECT m, l, msg, s,
           to_timestamp(et / 1000000) + (et % 1000000) * INTERVAL '1 microsecond',
           to_timestamp(ra / 1000000) + (ra % 1000000) * INTERVAL '1 microsecond',
           a::jsonb, t, p, o, e, pb
    FROM unnest(message_ids, levels, messages, sources, event_micros, received_micros,
                attributes, topics, partitions, offsets, epochs, processed_bys)
         AS u(m, l, msg, s, et, ra, a, t, p, o, e, pb)
    ON CONFLICT (message_id) DO NOTHING;
    GET DIAGNOSTICS inserted = ROW_COUNT;
EXCEPTION WHEN data_exception OR integrity_constraint_violation THEN
    inserted := 0;
    refused_sqlstate := SQLSTATE;
    refused_message := SQLERRM;
END
$$;
