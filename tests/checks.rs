//! The checkers must be able to say no: each check of the exactly-once
//! verdict is shown failing on a defect injected into real PostgreSQL rows
//! written by a real cluster (a duplicate under a new id, a row no client was
//! acknowledged for, a lost row). The false-failover attribution has its
//! failing cases as unit tests in `src/lab/drill/attribution.rs`.

mod common;

use std::time::Duration;

use understudy::lab::drill::load::{LoadPlan, RunningLoad, MARKER_ATTRIBUTE};
use understudy::lab::drill::verify::verify;

use common::cluster::{pg, serial, TestCluster};

#[tokio::test]
async fn the_verdict_fails_on_a_duplicate_an_unexplained_row_and_a_loss() {
    let _serial = serial().await;
    let cluster = TestCluster::start("checks", 1).await;
    let load = RunningLoad::start(LoadPlan {
        gateway: cluster.gateway.base_url.clone(),
        rate: 100,
        batch_size: 1,
    });
    while load.acked_count() < 40 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let outcome = load.finish().await;
    cluster.verify_exactly_once(&outcome.acked).await;
    let client = pg().await;
    let honest = verify(&client, &cluster.topic, &outcome.acked, &outcome.unknown)
        .await
        .expect("verify");
    assert!(honest.is_exactly_once(), "{honest:?}");

    // The same event again under a new id: the primary key cannot see it.
    let copy = "INSERT INTO log_events (message_id, level, message, source, event_timestamp, \
        received_at, attributes, topic, kafka_partition, kafka_offset, epoch, processed_by) \
        SELECT $2, level, message, source, event_timestamp, received_at, attributes, topic, \
        kafka_partition, kafka_offset, epoch, processed_by FROM log_events WHERE message_id = $1";
    client
        .execute(copy, &[&outcome.acked[0], &uuid::Uuid::now_v7()])
        .await
        .expect("inject a duplicate");
    let duplicated = verify(&client, &cluster.topic, &outcome.acked, &outcome.unknown)
        .await
        .expect("verify");
    assert_eq!(duplicated.duplicated, 1, "{duplicated:?}");
    assert!(!duplicated.is_exactly_once());

    // A row of the topic with a marker no request carried.
    let stranger = "UPDATE log_events SET attributes = jsonb_build_object($2::text, 'forged') \
        WHERE message_id = (SELECT message_id FROM log_events WHERE topic = $1 \
        AND NOT (message_id = ANY($3)) LIMIT 1)";
    client
        .execute(
            stranger,
            &[&cluster.topic, &MARKER_ATTRIBUTE, &outcome.acked],
        )
        .await
        .expect("make the copy a stranger");
    let unexpected = verify(&client, &cluster.topic, &outcome.acked, &outcome.unknown)
        .await
        .expect("verify");
    assert_eq!(
        (unexpected.duplicated, unexpected.unexpected),
        (0, 1),
        "{unexpected:?}"
    );
    assert!(!unexpected.is_exactly_once());
    // Unless the client was told that request's outcome is unknown.
    let explained = verify(
        &client,
        &cluster.topic,
        &outcome.acked,
        &["forged".to_owned()],
    )
    .await
    .expect("verify");
    assert_eq!(explained.unexpected, 0, "{explained:?}");

    client
        .execute(
            "DELETE FROM log_events WHERE message_id = $1",
            &[&outcome.acked[1]],
        )
        .await
        .expect("inject a loss");
    let lost = verify(&client, &cluster.topic, &outcome.acked, &outcome.unknown)
        .await
        .expect("verify");
    assert_eq!(lost.lost, 1, "{lost:?}");
    assert!(!lost.is_exactly_once());
}
