//! Owns a node's instruments: the seed's `failover_events_total`,
//! `failover_recovery_time_seconds`, `messages_processed_total`, `leader_status`,
//! `leader_epoch`, `leader_heartbeat_age_seconds`, `messages_lost_total` and
//! consumer lag, plus fenced commits, forced takeovers, dead letters, snapshot
//! reconciliation mismatches, sink batch size and commit latency, and ZooKeeper
//! connectivity (the "no elections possible" alert).

use std::time::Duration;

use opentelemetry::metrics::{Counter, Gauge, Histogram};
use opentelemetry::KeyValue;

use crate::node::election::takeover_reason::TakeoverReason;
use crate::shared::telemetry::registry::{MetricsError, MetricsRegistry};

/// Recovery-time buckets: milliseconds for hand-overs up to seconds for crashes.
const RECOVERY_BUCKETS: [f64; 12] = [
    0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 2.5, 5.0, 10.0, 30.0,
];
/// Commit-latency buckets.
const COMMIT_BUCKETS: [f64; 11] = [
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];
/// Batch-size buckets.
const BATCH_BUCKETS: [f64; 9] = [1.0, 5.0, 10.0, 25.0, 50.0, 100.0, 250.0, 500.0, 1000.0];

/// `reason` says why; `kind` tells a real failover from a cluster starting or
/// a node rejoining, so `FrequentFailovers` does not page on a rolling restart.
fn takeover_labels(reason: TakeoverReason) -> [KeyValue; 2] {
    [
        KeyValue::new("reason", reason.as_str()),
        KeyValue::new("kind", reason.kind().as_str()),
    ]
}

/// Every instrument a node records; cheap to clone.
#[derive(Clone)]
pub struct NodeMetrics {
    failover_events: Counter<u64>,
    failover_recovery_time: prometheus::Histogram,
    messages_processed: Counter<u64>,
    messages_lost: Counter<u64>,
    leader_status: Gauge<i64>,
    leader_epoch: Gauge<i64>,
    heartbeat_age: Gauge<f64>,
    consumer_lag: Gauge<i64>,
    fenced_commits: Counter<u64>,
    forced_takeovers: Counter<u64>,
    dead_letters: Counter<u64>,
    reconciliation_mismatches: Counter<u64>,
    batch_size: Histogram<f64>,
    commit_duration: Histogram<f64>,
    zookeeper_connected: Gauge<i64>,
    sink_stalled: Gauge<f64>,
    refused_events: Counter<u64>,
    duplicate_events: Counter<u64>,
}

impl NodeMetrics {
    /// Creates the instruments in `registry`, with every gauge at its resting value.
    pub fn new(registry: &MetricsRegistry) -> Result<Self, MetricsError> {
        let meter = registry.meter();
        // OpenTelemetry exports a histogram only after its first record, so a
        // standby would have no `failover_recovery_time_seconds` until it took
        // over: this one instrument is Prometheus-native, exported empty.
        let failover_recovery_time = prometheus::Histogram::with_opts(
            prometheus::HistogramOpts::new(
                "failover_recovery_time_seconds",
                "Failovers only: from the detected loss of the previous leader to this node consuming",
            )
            .buckets(RECOVERY_BUCKETS.to_vec()),
        )?;
        registry.register(Box::new(failover_recovery_time.clone()))?;
        let metrics = Self {
            failover_events: meter
                .u64_counter("failover_events")
                .with_description("Leadership takeovers completed by this node, by reason")
                .build(),
            failover_recovery_time,
            messages_processed: meter
                .u64_counter("messages_processed")
                .with_description("Events committed to PostgreSQL by this node")
                .build(),
            messages_lost: meter
                .u64_counter("messages_lost")
                .with_description("Offsets the broker skipped: records that can never be stored")
                .build(),
            leader_status: meter
                .i64_gauge("leader_status")
                .with_description("1 while this node leads and consumes, else 0")
                .build(),
            leader_epoch: meter
                .i64_gauge("leader_epoch")
                .with_description("The current leadership epoch as this node knows it")
                .build(),
            heartbeat_age: meter
                .f64_gauge("leader_heartbeat_age")
                .with_unit("s")
                .with_description("Age of the leader heartbeat last read from Redis")
                .build(),
            consumer_lag: meter
                .i64_gauge("consumer_lag_records")
                .with_description(
                    "High watermark minus committed offset, per partition (leader only)",
                )
                .build(),
            fenced_commits: meter
                .u64_counter("fenced_commits")
                .with_description("Commits refused because a newer epoch holds the fence")
                .build(),
            forced_takeovers: meter
                .u64_counter("forced_takeovers")
                .with_description("Leaders whose member this node deleted: hung (stale heartbeats) or with their process gone")
                .build(),
            dead_letters: meter
                .u64_counter("dead_letters")
                .with_description("Records that were not valid events, stored in dead_letters")
                .build(),
            reconciliation_mismatches: meter
                .u64_counter("state_reconciliation_mismatches")
                .with_description("Takeovers where the Redis snapshot disagreed with PostgreSQL")
                .build(),
            batch_size: meter
                .f64_histogram("sink_batch_size")
                .with_description("Records per sink transaction")
                .with_boundaries(BATCH_BUCKETS.to_vec())
                .build(),
            commit_duration: meter
                .f64_histogram("sink_commit_duration")
                .with_unit("s")
                .with_description("Duration of one sink transaction")
                .with_boundaries(COMMIT_BUCKETS.to_vec())
                .build(),
            zookeeper_connected: meter
                .i64_gauge("zookeeper_connected")
                .with_description("1 while this node has a ZooKeeper session, else 0")
                .build(),
            sink_stalled: meter
                .f64_gauge("sink_stalled")
                .with_unit("s")
                .with_description(
                    "While events wait (lag above 0): time since the leader's last commit; else 0",
                )
                .build(),
            refused_events: meter
                .u64_counter("sink_refused_events")
                .with_description(
                    "Events PostgreSQL refused for their content, isolated and dead-lettered",
                )
                .build(),
            duplicate_events: meter
                .u64_counter("sink_duplicate_events")
                .with_description(
                    "Events not stored again because their message_id already was: a client's retry with the same id or Idempotency-Key, or a record read twice",
                )
                .build(),
        };
        metrics.stalled(Duration::ZERO);
        metrics.leading(false);
        metrics.zookeeper_connected(false);
        // Export every counter from the start: an alert on `messages_lost_total > 0`
        // needs a series that exists while the answer is zero.
        for counter in [
            &metrics.messages_processed,
            &metrics.messages_lost,
            &metrics.fenced_commits,
            &metrics.forced_takeovers,
            &metrics.dead_letters,
            &metrics.reconciliation_mismatches,
            &metrics.refused_events,
            &metrics.duplicate_events,
        ] {
            counter.add(0, &[]);
        }
        for reason in TakeoverReason::ALL {
            metrics.failover_events.add(0, &takeover_labels(reason));
        }
        Ok(metrics)
    }

    /// A takeover completed for `reason`.
    pub fn failover(&self, reason: TakeoverReason) {
        self.failover_events.add(1, &takeover_labels(reason));
    }

    /// A failover completed: this node consumes, `recovery` after the loss was detected.
    pub fn recovered(&self, recovery: Duration) {
        self.failover_recovery_time.observe(recovery.as_secs_f64());
    }

    /// Whether this node leads; a standby reports no lag.
    pub fn leading(&self, leading: bool) {
        self.leader_status.record(i64::from(leading), &[]);
    }

    /// The current epoch as this node knows it.
    pub fn epoch(&self, epoch: i64) {
        self.leader_epoch.record(epoch, &[]);
    }

    /// The age of the heartbeat last seen.
    pub fn heartbeat_age(&self, age: Duration) {
        self.heartbeat_age.record(age.as_secs_f64(), &[]);
    }

    /// The lag of one partition.
    pub fn lag(&self, partition: i32, records: i64) {
        self.consumer_lag
            .record(records, &[KeyValue::new("partition", i64::from(partition))]);
    }

    /// One committed batch.
    pub fn committed(&self, records: usize, inserted: usize, dead_lettered: usize, took: Duration) {
        self.batch_size.record(records as f64, &[]);
        self.commit_duration.record(took.as_secs_f64(), &[]);
        self.messages_processed.add(inserted as u64, &[]);
        self.dead_letters.add(dead_lettered as u64, &[]);
    }

    /// Events the database refused for their content.
    pub fn refused(&self, events: usize) {
        self.refused_events.add(events as u64, &[]);
    }

    /// Events not stored again, their `message_id` being stored already.
    pub fn duplicates(&self, events: usize) {
        self.duplicate_events.add(events as u64, &[]);
    }

    /// How long the sink has made no progress while events wait.
    pub fn stalled(&self, stalled: Duration) {
        self.sink_stalled.record(stalled.as_secs_f64(), &[]);
    }

    /// Offsets skipped by the broker.
    pub fn lost(&self, records: u64) {
        self.messages_lost.add(records, &[]);
    }

    /// A commit refused by the fence.
    pub fn fenced(&self) {
        self.fenced_commits.add(1, &[]);
    }

    /// A hung leader forced out by this node.
    pub fn forced_takeover(&self) {
        self.forced_takeovers.add(1, &[]);
    }

    /// A snapshot that disagreed with PostgreSQL.
    pub fn reconciliation_mismatch(&self) {
        self.reconciliation_mismatches.add(1, &[]);
    }

    /// ZooKeeper session state.
    pub fn zookeeper_connected(&self, connected: bool) {
        self.zookeeper_connected.record(i64::from(connected), &[]);
    }
}
