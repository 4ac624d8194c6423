-- The sink's insert, before and after the isolating function, on the same
-- database and the same 2,000-row batch, alternated 20 times each:
--   psql -X -q -v ON_ERROR_STOP=1 -f docs/bench/insert-path.sql "$DATABASE_URL"
-- "direct" is the statement the sink ran before (typed unnest, ON CONFLICT;
-- attributes parsed from text, as diesel's jsonb bind makes the server do);
-- "function" is understudy_try_insert_events (text/bigint arrays converted
-- inside an exception block). Each insert runs in a transaction rolled back
-- at once, so every round inserts the same 2,000 new rows.
\timing off
CREATE TEMP TABLE batch AS
SELECT gen_random_uuid() AS id, 'INFO'::text AS level,
       repeat('x', 100) AS message, 'bench-' || (i % 8) AS source,
       now() AS at, '{"k": 1, "tags": ["a", "b"]}'::jsonb AS attributes, i AS n
FROM generate_series(1, 2000) AS i;
CREATE TEMP TABLE timings (path text, round int, ms double precision);
DO $$
DECLARE
    ids uuid[]; levels text[]; messages text[]; sources text[];
    ats timestamptz[]; micros bigint[]; attr_texts text[];
    topics text[]; partitions int[]; offsets bigint[]; epochs bigint[]; bys text[];
    started timestamptz; round int;
BEGIN
    SELECT array_agg(id), array_agg(level), array_agg(message), array_agg(source),
           array_agg(at), array_agg((extract(epoch FROM at) * 1000000)::bigint),
           array_agg(attributes::text),
           array_agg('bench-insert-path'::text), array_agg(0), array_agg(n::bigint),
           array_agg(1::bigint), array_agg('bench'::text)
    INTO ids, levels, messages, sources, ats, micros, attr_texts,
         topics, partitions, offsets, epochs, bys
    FROM batch;
    FOR round IN 1..20 LOOP
        started := clock_timestamp();
        BEGIN
            INSERT INTO log_events (message_id, level, message, source, event_timestamp,
                received_at, attributes, topic, kafka_partition, kafka_offset, epoch, processed_by)
            SELECT * FROM unnest(ids, levels, messages, sources, ats, ats, attr_texts::jsonb[], topics,
                partitions, offsets, epochs, bys)
            ON CONFLICT (message_id) DO NOTHING;
            RAISE EXCEPTION 'roll back' USING ERRCODE = 'P0001';
        EXCEPTION WHEN raise_exception THEN NULL;
        END;
        INSERT INTO timings VALUES ('direct', round,
            extract(epoch FROM clock_timestamp() - started) * 1000);
        started := clock_timestamp();
        BEGIN
            PERFORM understudy_try_insert_events(ids, levels, messages, sources, micros,
                micros, attr_texts, topics, partitions, offsets, epochs, bys);
            RAISE EXCEPTION 'roll back' USING ERRCODE = 'P0001';
        EXCEPTION WHEN raise_exception THEN NULL;
        END;
        INSERT INTO timings VALUES ('function', round,
            extract(epoch FROM clock_timestamp() - started) * 1000);
    END LOOP;
END
$$;
SELECT path,
       round(min(ms)::numeric, 1) AS min_ms,
       round((percentile_cont(0.5) WITHIN GROUP (ORDER BY ms))::numeric, 1) AS median_ms,
       round(max(ms)::numeric, 1) AS max_ms,
       round((2000 / (percentile_cont(0.5) WITHIN GROUP (ORDER BY ms)) * 1000)::numeric) AS rows_per_s
FROM timings GROUP BY path ORDER BY path;
