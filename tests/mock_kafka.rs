//! A second Kafka implementation: librdkafka's mock cluster, three brokers
//! with every partition replicated three times, in this test process. The
//! gateway and the nodes, real processes, reach it like any cluster. The
//! seed's "broker down" scenario, as a three-broker cluster lives it: the
//! broker leading every partition goes down and leadership moves to
//! another broker, twice, under load; no request gets a 503 and every
//! acknowledged event is stored exactly once.

mod common;

use std::collections::HashMap;
use std::time::Duration;

use rdkafka::mocking::MockCluster;

use common::cluster::TestCluster;

const PARTITIONS: i32 = 3;

#[tokio::test]
async fn partition_leaders_moving_between_brokers_cost_no_503_and_lose_nothing() {
    let mock = MockCluster::new(3).expect("a mock cluster of three brokers");
    // The mock answers no CreateTopics: the topic exists before the gateway
    // looks for it, as an operator-managed topic would.
    let topic = common::unique("mock-kafka");
    mock.create_topic(&topic, PARTITIONS, 3)
        .expect("create the topic");
    let env = HashMap::from([
        ("UNDERSTUDY_KAFKA__TOPIC".to_owned(), topic.clone()),
        (
            "UNDERSTUDY_KAFKA__BOOTSTRAP_SERVERS".to_owned(),
            mock.bootstrap_servers(),
        ),
        (
            "UNDERSTUDY_KAFKA__REPLICATION_FACTOR".to_owned(),
            "3".to_owned(),
        ),
    ]);
    let mut cluster = TestCluster::start_with("mock-kafka", 2, env).await;
    cluster.topic = topic;
    let lead_all = |broker: i32| {
        for partition in 0..PARTITIONS {
            mock.partition_leader(&cluster.topic, partition, Some(broker))
                .expect("move the partition leader");
        }
    };
    lead_all(1);
    let load = cluster.start_load(40);
    tokio::time::sleep(Duration::from_secs(2)).await;
    for (down, next) in [(1, 2), (2, 3)] {
        mock.broker_down(down).expect("broker down");
        lead_all(next);
        tokio::time::sleep(Duration::from_secs(2)).await;
        mock.broker_up(down).expect("broker up");
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    let outcome = load.finish().await;
    assert!(outcome.acked.len() > 100, "{}", outcome.acked.len());
    assert_eq!(
        outcome.refused, 0,
        "requests refused while leaders moved: {:?}",
        outcome.refusals
    );
    assert!(outcome.unknown.is_empty(), "{:?}", outcome.unknown);
    cluster.verify_exactly_once(&outcome.acked).await;
}
