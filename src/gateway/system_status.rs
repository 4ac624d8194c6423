//! Owns `GET /api/system/status`: the gateway, the broker and every configured
//! node's `/api/failover/status`, gathered concurrently and summarised with who
//! leads. It always answers 200: it is a report, and a report of a partly-down
//! system is exactly when an operator needs it.

use std::time::Duration;

use actix_web::{web, HttpResponse};
use futures::future::join_all;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use crate::gateway::process::GatewayState;
use crate::shared::circuit_breaker::BreakerState;
use crate::shared::kafka::broker_probe::BrokerHealth;

/// Up, down, or (for the whole system) up but not as it should be.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Health {
    /// Working.
    Up,
    /// Not working.
    Down,
    /// Working, but the broker is not ready or not exactly one node leads.
    Degraded,
}

/// The part of a node's answer the summary needs, read leniently: a node of
/// any version that says `isLeader` is counted, whatever else its answer
/// holds or lacks, so that a change of format never hides a second leader.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct LeadershipClaim {
    is_leader: bool,
    #[serde(default)]
    instance_id: Option<String>,
    #[serde(default)]
    epoch: Option<i64>,
}

/// What one node answered.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct NodeReport {
    /// The node's base URL (`gateway.node_urls`, or as it advertises itself).
    pub url: String,
    /// Whether the node answered its status endpoint.
    pub reachable: bool,
    /// The node's `/api/failover/status` answer, as it sent it: a node of
    /// another version answers in its own shape (this version's is
    /// [`crate::node::status::NodeStatus`]), and an operator must see what it said.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub failover_status: Option<Value>,
    /// Why it could not be read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// The node that claims leadership.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeaderReport {
    /// The node's base URL.
    pub url: String,
    /// Its instance id, as it reports it.
    pub instance_id: Option<String>,
    /// Its leadership epoch, as it reports it.
    pub epoch: Option<i64>,
}

/// The gateway process itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewayReport {
    /// Always `UP` when this answer exists.
    pub status: Health,
    /// Crate version.
    pub version: String,
    /// Seconds since the gateway started.
    pub uptime_seconds: u64,
}

/// The broker as the gateway sees it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct BrokerReport {
    /// `UP` when ready, otherwise `DOWN`.
    pub status: Health,
    /// Where the gateway connects.
    pub bootstrap_servers: String,
    /// The events topic.
    pub topic: String,
    /// The gateway's circuit breaker in front of the broker.
    pub circuit: BreakerState,
    /// Publishes refused by the open breaker, since start.
    pub rejected_publishes: u64,
    /// The probe's details.
    #[serde(flatten)]
    pub health: BrokerHealth,
}

/// The whole answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SystemStatus {
    /// `UP` when the broker is ready and exactly one node leads, otherwise `DEGRADED`.
    pub status: Health,
    /// The gateway.
    pub gateway: GatewayReport,
    /// The broker.
    pub broker: BrokerReport,
    /// Every configured or discovered node.
    pub nodes: Vec<NodeReport>,
    /// Why the nodes could not be listed from ZooKeeper (`gateway.discover_nodes`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub node_discovery_error: Option<String>,
    /// The leading node, when exactly one claims to lead.
    pub leader: Option<LeaderReport>,
    /// How many nodes claim to lead; more than one is worth a page.
    pub leaders_claimed: usize,
}

/// `GET /api/system/status`.
#[utoipa::path(
    get,
    path = "/api/system/status",
    tag = "gateway",
    responses((status = 200, description = "Gateway, broker (with its circuit breaker), every configured node and the leader; `status` is UP or DEGRADED", body = SystemStatus))
)]
pub async fn system_status(state: web::Data<GatewayState>) -> HttpResponse {
    // Bounded like the nodes' answers: an unreachable ZooKeeper must not
    // hold the report for a session timeout.
    let (urls, node_discovery_error) =
        match tokio::time::timeout(state.node_status_timeout, state.nodes.urls()).await {
            Ok(Ok(urls)) => (urls, None),
            Ok(Err(error)) => (Vec::new(), Some(error.to_string())),
            Err(_) => (
                Vec::new(),
                Some("zookeeper did not answer in time".to_owned()),
            ),
        };
    let nodes = join_all(
        urls.iter()
            .map(|url| fetch_node(&state.http, url, state.node_status_timeout)),
    )
    .await;
    let leaders: Vec<(&str, LeadershipClaim)> = nodes
        .iter()
        .filter_map(|node| {
            let claim = LeadershipClaim::deserialize(node.failover_status.as_ref()?).ok()?;
            claim.is_leader.then_some((node.url.as_str(), claim))
        })
        .collect();
    let leaders_claimed = leaders.len();
    let leader = match leaders.as_slice() {
        [(url, only)] => Some(LeaderReport {
            url: (*url).to_owned(),
            instance_id: only.instance_id.clone(),
            epoch: only.epoch,
        }),
        _ => None,
    };
    let health = state.broker.latest();
    let status = if health.ready && leaders_claimed == 1 {
        Health::Up
    } else {
        Health::Degraded
    };
    HttpResponse::Ok().json(SystemStatus {
        status,
        gateway: GatewayReport {
            status: Health::Up,
            version: env!("CARGO_PKG_VERSION").to_owned(),
            uptime_seconds: state.started_at.elapsed().as_secs(),
        },
        broker: BrokerReport {
            status: if health.ready {
                Health::Up
            } else {
                Health::Down
            },
            bootstrap_servers: state.kafka.bootstrap_servers.clone(),
            topic: state.kafka.topic.clone(),
            circuit: state.producer.breaker().state(),
            rejected_publishes: state.producer.breaker().rejected(),
            health,
        },
        nodes,
        node_discovery_error,
        leader,
        leaders_claimed,
    })
}

/// Most bytes read of one node's status answer.
const NODE_STATUS_MAX_BYTES: usize = 256 * 1024;

async fn fetch_node(http: &reqwest::Client, url: &str, timeout: Duration) -> NodeReport {
    let status_url = format!("{}/api/failover/status", url.trim_end_matches('/'));
    let answer = async {
        let response = http
            .get(&status_url)
            .timeout(timeout)
            .send()
            .await
            .map_err(|error| error.to_string())?
            .error_for_status()
            .map_err(|error| error.to_string())?;
        // A node's status is a few KiB; whatever answers at an advertised
        // address gets no more of the gateway's memory than this.
        let mut body = Vec::new();
        let mut chunks = response.bytes_stream();
        while let Some(chunk) = chunks.next().await {
            body.extend_from_slice(&chunk.map_err(|error| error.to_string())?);
            if body.len() > NODE_STATUS_MAX_BYTES {
                return Err(format!("answer larger than {NODE_STATUS_MAX_BYTES} bytes"));
            }
        }
        serde_json::from_slice::<Value>(&body).map_err(|error| format!("not JSON: {error}"))
    }
    .await;
    match answer {
        Ok(body) => NodeReport {
            url: url.to_owned(),
            reachable: true,
            failover_status: Some(body),
            error: None,
        },
        Err(error) => NodeReport {
            url: url.to_owned(),
            reachable: false,
            failover_status: None,
            error: Some(error),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_leader_is_counted_whatever_else_its_answer_holds_or_lacks() {
        // An older node (no dependencies), and a newer one with a role this
        // gateway does not know: both claims count.
        for answer in [
            serde_json::json!({"isLeader": true, "instanceId": "old", "epoch": 7}),
            serde_json::json!({"isLeader": true, "role": "STEPPING_DOWN", "extra": {"x": 1}}),
        ] {
            let claim = LeadershipClaim::deserialize(&answer).expect("a claim");
            assert!(claim.is_leader, "{answer}");
        }
        let standby =
            LeadershipClaim::deserialize(&serde_json::json!({"isLeader": false})).expect("a claim");
        assert!(!standby.is_leader);
    }
}
