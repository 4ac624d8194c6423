//! Owns diesel's view of the tables created by `migrations/` (kept in step by hand
//! and checked by the migration and sink tests against real PostgreSQL).

diesel::table! {
    /// One row per stored event.
    log_events (message_id) {
        message_id -> Uuid,
        level -> Text,
        message -> Text,
        source -> Text,
        event_timestamp -> Timestamptz,
        received_at -> Timestamptz,
        attributes -> Jsonb,
        topic -> Text,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        epoch -> Int8,
        processed_by -> Text,
        stored_at -> Timestamptz,
    }
}

diesel::table! {
    /// Next offset to read per partition, committed with the events.
    consumer_offsets (cluster, topic, kafka_partition) {
        cluster -> Text,
        topic -> Text,
        kafka_partition -> Int4,
        next_offset -> Int8,
        epoch -> Int8,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// The database-enforced leadership fence.
    leader_fence (cluster) {
        cluster -> Text,
        epoch -> Int8,
        holder -> Text,
        updated_at -> Timestamptz,
    }
}

diesel::table! {
    /// Every leadership change.
    failover_events (id) {
        id -> Int8,
        cluster -> Text,
        epoch -> Int8,
        new_leader -> Text,
        previous_leader -> Nullable<Text>,
        reason -> Text,
        detected_at -> Timestamptz,
        recovered_at -> Timestamptz,
        recovery_ms -> Int8,
        created_at -> Timestamptz,
    }
}

diesel::table! {
    /// Records that were not valid events.
    dead_letters (id) {
        id -> Int8,
        topic -> Text,
        kafka_partition -> Int4,
        kafka_offset -> Int8,
        record_key -> Nullable<Bytea>,
        payload -> Nullable<Bytea>,
        reason -> Text,
        epoch -> Int8,
        processed_by -> Text,
        stored_at -> Timestamptz,
    }
}
