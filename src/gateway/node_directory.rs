//! Owns where the gateway finds the nodes it reports on: the fixed
//! `gateway.node_urls`, or, with `gateway.discover_nodes`, the election's
//! members in ZooKeeper, each carrying the URL its node advertises
//! (`node.advertised_url`). Discovery follows nodes as they join and leave,
//! on any host, without reconfiguring the gateway.

use std::time::Duration;

use tokio::sync::Mutex;

use crate::config::{Config, ZookeeperConfig};
use zookeeper_client::Error as ZkError;

use crate::node::election::order::ordered_members;
use crate::node::election::session::{ElectionError, ElectionSession};
use crate::node::url::base_url;
use crate::shared::printable::escape_untrusted;

/// The nodes `GET /api/system/status` asks.
pub enum NodeDirectory {
    /// A configured list.
    Fixed(Vec<String>),
    /// The election's members.
    Discovered(Box<Discovery>),
}

/// The election's members, read through one ZooKeeper session that is
/// opened on first use and again after it fails.
pub struct Discovery {
    /// How to reach ZooKeeper.
    zookeeper: ZookeeperConfig,
    /// The cluster whose election is read.
    cluster: String,
    /// The open session, if any.
    session: Mutex<Option<ElectionSession>>,
}

impl NodeDirectory {
    /// The directory `config` asks for.
    pub fn from_config(config: &Config) -> Self {
        if config.gateway.discover_nodes {
            NodeDirectory::Discovered(Box::new(Discovery {
                zookeeper: config.zookeeper.clone(),
                cluster: config.cluster.clone(),
                session: Mutex::new(None),
            }))
        } else {
            NodeDirectory::Fixed(config.gateway.node_urls.clone())
        }
    }

    /// The nodes' base URLs, in election order when discovered (the leader,
    /// or the next in line, first).
    pub async fn urls(&self) -> Result<Vec<String>, ElectionError> {
        match self {
            NodeDirectory::Fixed(urls) => Ok(urls.clone()),
            NodeDirectory::Discovered(discovery) => {
                let Discovery {
                    zookeeper,
                    cluster,
                    session,
                } = discovery.as_ref();
                let mut session = session.lock().await;
                let open = match session.take() {
                    Some(open) => open,
                    None => {
                        let timeout = Duration::from_millis(zookeeper.session_timeout_ms);
                        ElectionSession::observe(zookeeper, timeout, cluster).await?
                    }
                };
                // A failed read drops the session: the next request opens a new one.
                let urls = members(&open).await?;
                *session = Some(open);
                Ok(urls)
            }
        }
    }
}

async fn members(session: &ElectionSession) -> Result<Vec<String>, ElectionError> {
    let children = match session.children().await {
        Ok(children) => children,
        // No node ever joined: nothing to report (the gateway creates nothing).
        Err(ElectionError::ZooKeeper(ZkError::NoNode)) => return Ok(Vec::new()),
        Err(error) => return Err(error),
    };
    let mut urls = Vec::new();
    for name in ordered_members(&children) {
        let Some(info) = session.member_info(name).await? else {
            continue;
        };
        match base_url(&info.http_url) {
            Some(url) => urls.push(url),
            None => tracing::warn!(
                member = %name,
                url = %escape_untrusted(&info.http_url, 200),
                "a member advertises something other than http(s)://host:port; not asked"
            ),
        }
    }
    Ok(urls)
}
