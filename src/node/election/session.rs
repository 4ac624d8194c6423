//! Owns the ZooKeeper side of the election: one session, its member znode under
//! `<root>/<cluster>/election/`, the watches on other members, and the epoch
//! znode `<root>/<cluster>/epoch` claimed with one multi-op.
//!
//! Over TLS (`zookeeper.tls_ca_file`) every server is reached on its secure
//! port and verified; a client certificate is presented when configured.
//!
//! Dropping a session closes it at once (CloseSession), so a node that leaves
//! gracefully hands over in milliseconds instead of one session timeout;
//! except a reopened session, which is detached so that a failed request
//! cannot close what the next reopen needs: it lives until the server expires
//! it, and a node leaving deletes its member explicitly.

use std::time::Duration;

use serde::{Deserialize, Serialize};
use zookeeper_client::{
    Acls, Client, CreateMode, Error as ZkError, MultiWriteError, OneshotWatcher, Permission,
    SessionInfo, SessionState, StateWatcher, TlsOptions,
};

use crate::config::ZookeeperConfig;
use crate::node::election::epoch::Epoch;
use crate::node::election::order::MEMBER_PREFIX;
use crate::shared::pem_file::{self, PemContent, PemFileError};
use crate::shared::printable::escape_untrusted;

/// Why a ZooKeeper operation failed.
#[derive(Debug, thiserror::Error)]
pub enum ElectionError {
    /// The server refused the operation or the session is gone.
    #[error("zookeeper error: {0}")]
    ZooKeeper(#[from] ZkError),
    /// This member's znode no longer exists: its claim to lead is void.
    #[error("this node is no longer an election member")]
    NotMember,
    /// The epoch znode holds something that is not a number.
    #[error("epoch znode holds `{0}`, not a number")]
    MalformedEpoch(String),
    /// A znode anyone may change could not be closed to our identity.
    #[error("zookeeper znode `{path}` is open to anyone and could not be closed ({reason}); fix its ACL or use another cluster name")]
    OpenAcl {
        /// The znode.
        path: String,
        /// Why its ACL could not be set.
        reason: String,
    },
    /// A configured CA bundle, certificate or key cannot be used.
    #[error("{0}")]
    TlsFile(#[from] PemFileError),
    /// The member a takeover was to delete is already gone: whoever is first
    /// now is for a fresh read of the members to say.
    #[error("the member to take over from is already gone")]
    ReplacedMemberGone,
    /// The epoch znode holds the largest epoch there is: no leader can follow.
    #[error("the epoch znode holds the largest epoch; no new epoch can be claimed")]
    EpochsExhausted,
}

/// What each member znode carries, so others can name and reach it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberInfo {
    /// The node's instance id.
    pub instance_id: String,
    /// Base URL of the node's HTTP API.
    pub http_url: String,
}

/// One ZooKeeper session taking part in the election.
pub struct ElectionSession {
    client: Client,
    /// Who may read and write what this session creates.
    acls: Acls<'static>,
    election_path: String,
    epoch_path: String,
    /// Reopened, and detached: dropping it leaves the session open.
    reopened: bool,
}

impl ElectionSession {
    /// Connects (authenticated with `digest_auth` when not empty), and
    /// creates the election directory and epoch znode if missing.
    pub async fn connect(
        zookeeper: &ZookeeperConfig,
        session_timeout: Duration,
        cluster: &str,
    ) -> Result<Self, ElectionError> {
        Self::open(zookeeper, session_timeout, cluster, None)
            .await?
            .prepare(zookeeper, cluster)
            .await
    }

    /// Reopens the session `ended` (one that ended on this side: no server
    /// answered within its timeout) with one try of each server. Whether it
    /// lives is the server's word: it keeps a session for one timeout after
    /// it last heard from the client, counted afresh when a server restarts,
    /// and refuses with [`ZkError::SessionExpired`] once it expired it.
    ///
    /// Creates nothing (the session's member proves the directories exist).
    /// Then it syncs, so what it reads next is as fresh as the ensemble's
    /// leader; without a sync it fails, and the next try reopens again (the
    /// client is detached: dropping it leaves the session open).
    pub async fn reopen(
        zookeeper: &ZookeeperConfig,
        session_timeout: Duration,
        cluster: &str,
        ended: SessionInfo,
    ) -> Result<Self, ElectionError> {
        let session = Self::open(zookeeper, session_timeout, cluster, Some(ended)).await?;
        session.client.sync(&session.election_path).await?;
        Ok(session)
    }

    /// What reopens this session once it is dropped, if it may be: a
    /// session that `ended` (or whose client says so), or a reopened
    /// (detached) one. Dropping any other live client closes its session,
    /// soon or when it reconnects, so it must not be reopened.
    pub fn reopenable(&self, ended: bool) -> Option<SessionInfo> {
        (ended || self.reopened || self.client.state().is_terminated())
            .then(|| self.client.session().clone())
    }

    /// Creates the election directory and epoch znode if missing, and closes
    /// open ACLs on them when a credential is configured.
    async fn prepare(
        self,
        zookeeper: &ZookeeperConfig,
        cluster: &str,
    ) -> Result<Self, ElectionError> {
        let cluster_path = format!("{}/{cluster}", zookeeper.root);
        let persistent = CreateMode::Persistent.with_acls(self.acls);
        self.client.mkdir(&self.election_path, &persistent).await?;
        match self
            .client
            .create(&self.epoch_path, b"0", &persistent)
            .await
        {
            Ok(_) | Err(ZkError::NodeExists) => {}
            Err(error) => return Err(error.into()),
        }
        if !zookeeper.digest_auth.is_empty() {
            // Znodes created before the credential was configured (or by
            // someone else) keep their open ACLs: close them, or refuse. The
            // cluster's own namespace only: the root may be shared with
            // clusters that use other credentials or none.
            for path in [
                cluster_path,
                self.election_path.clone(),
                self.epoch_path.clone(),
            ] {
                self.close_open_acl(&path).await?;
            }
        }
        Ok(self)
    }

    /// Connects like [`ElectionSession::connect`] but creates nothing: a
    /// reader of the election (the gateway's node discovery) must not be the
    /// one that creates the cluster's znodes, with whatever ACL it holds.
    pub async fn observe(
        zookeeper: &ZookeeperConfig,
        session_timeout: Duration,
        cluster: &str,
    ) -> Result<Self, ElectionError> {
        Self::open(zookeeper, session_timeout, cluster, None).await
    }

    /// Opens a session, or reopens `ended`; creates nothing.
    async fn open(
        zookeeper: &ZookeeperConfig,
        session_timeout: Duration,
        cluster: &str,
        ended: Option<SessionInfo>,
    ) -> Result<Self, ElectionError> {
        let mut connector = Client::connector()
            .with_session_timeout(session_timeout)
            .with_connection_timeout(session_timeout.max(Duration::from_secs(1)));
        let reopened = ended.is_some();
        if let Some(ended) = ended {
            // One try per server: the election's own backoff paces the next,
            // more often than the client's own (up to 3.2 s between tries).
            // Detached: dropping a reopened client after a failed request
            // must not close the session the next try reopens.
            connector = connector
                .with_session(ended)
                .with_fail_eagerly()
                .with_detached();
        }
        let acls = if zookeeper.digest_auth.is_empty() {
            Acls::anyone_all()
        } else {
            connector = connector.with_auth("digest", zookeeper.digest_auth.as_bytes());
            Acls::creator_all()
        };
        let client = match tls_options(zookeeper)? {
            Some(tls) => {
                connector
                    .with_tls(tls)
                    .secure_connect(&zookeeper.connect)
                    .await?
            }
            None => connector.connect(&zookeeper.connect).await?,
        };
        let negotiated = client.session_timeout();
        if negotiated != session_timeout {
            // A server clamps the session to [2, 20] x its tickTime by
            // default: 400 ms asked of a stock tickTime=2000 server is 4 s.
            tracing::warn!(
                asked_ms = session_timeout.as_millis(),
                negotiated_ms = negotiated.as_millis(),
                "zookeeper negotiated another session timeout; failover times follow it"
            );
        }
        let cluster_path = format!("{}/{cluster}", zookeeper.root);
        Ok(Self {
            election_path: format!("{cluster_path}/election"),
            epoch_path: format!("{cluster_path}/epoch"),
            acls,
            client,
            reopened,
        })
    }

    /// Replaces an ACL that lets anyone change `path` (write, create, delete
    /// or administer it) with one for our identity only; fails when it
    /// cannot, so no node works on znodes a stranger may rewrite.
    async fn close_open_acl(&self, path: &str) -> Result<(), ElectionError> {
        let (acls, stat) = self.client.get_acl(path).await?;
        let open = acls.iter().any(|acl| {
            acl.scheme() == "world"
                && acl.id() == "anyone"
                && [
                    Permission::WRITE,
                    Permission::CREATE,
                    Permission::DELETE,
                    Permission::ADMIN,
                ]
                .into_iter()
                .any(|permission| acl.permission().has(permission))
        });
        if !open {
            return Ok(());
        }
        match self
            .client
            .set_acl(path, &self.acls, Some(stat.aversion))
            .await
        {
            Ok(_) => {
                tracing::warn!(%path, "closed an open ACL: the znode is now ours only");
                Ok(())
            }
            Err(error) => Err(ElectionError::OpenAcl {
                path: path.to_owned(),
                reason: error.to_string(),
            }),
        }
    }

    /// The session timeout the server granted (it may differ from the one asked).
    pub fn negotiated_timeout(&self) -> Duration {
        self.client.session_timeout()
    }

    /// Watches the session's state (disconnects, expiry).
    pub fn state_watcher(&self) -> StateWatcher {
        self.client.state_watcher()
    }

    /// The session's current state.
    pub fn state(&self) -> SessionState {
        self.client.state()
    }

    /// Creates this node's ephemeral sequential member znode; returns its child name.
    pub async fn join(&self, info: &MemberInfo) -> Result<String, ElectionError> {
        let data = serde_json::to_vec(info).unwrap_or_default();
        let (_, sequence) = self
            .client
            .create(
                &format!("{}/{MEMBER_PREFIX}", self.election_path),
                &data,
                &CreateMode::EphemeralSequential.with_acls(self.acls),
            )
            .await?;
        Ok(format!("{MEMBER_PREFIX}{sequence}"))
    }

    /// Current member (and other) child names of the election directory.
    pub async fn children(&self) -> Result<Vec<String>, ElectionError> {
        Ok(self.client.list_children(&self.election_path).await?)
    }

    /// What a member published about itself; `None` when it is gone or unreadable.
    pub async fn member_info(&self, member: &str) -> Result<Option<MemberInfo>, ElectionError> {
        match self.client.get_data(&self.member_path(member)).await {
            Ok((data, _)) => Ok(serde_json::from_slice(&data).ok()),
            Err(ZkError::NoNode) => Ok(None),
            Err(error) => Err(error.into()),
        }
    }

    /// Watches a member znode; `None` when it is already gone.
    pub async fn watch_member(
        &self,
        member: &str,
    ) -> Result<Option<OneshotWatcher>, ElectionError> {
        let (stat, watcher) = self
            .client
            .check_and_watch_stat(&self.member_path(member))
            .await?;
        Ok(stat.map(|_| watcher))
    }

    /// Deletes a member znode (this node's on resignation, a hung leader's on
    /// forced takeover); true when this call deleted it, false when it was
    /// gone already.
    pub async fn delete_member(&self, member: &str) -> Result<bool, ElectionError> {
        match self.client.delete(&self.member_path(member), None).await {
            Ok(()) => Ok(true),
            Err(ZkError::NoNode) => Ok(false),
            Err(error) => Err(error.into()),
        }
    }

    /// Whether `member` still exists: a round trip that also proves the
    /// session alive when it was sent (the leader's lease).
    pub async fn confirm_member(&self, member: &str) -> Result<bool, ElectionError> {
        Ok(self
            .client
            .check_stat(&self.member_path(member))
            .await?
            .is_some())
    }

    /// The epoch the epoch znode holds, and a watch that fires when it changes
    /// (a new leader claimed one).
    pub async fn watch_epoch(&self) -> Result<(Epoch, OneshotWatcher), ElectionError> {
        let (data, _, watcher) = self.client.get_and_watch_data(&self.epoch_path).await?;
        Ok((parse_epoch(&data)?, watcher))
    }

    /// Claims the epoch after both the stored one and `floor`, atomically with a
    /// check that `member` (this node) still exists: a node that lost its
    /// membership can never claim an epoch. With `replacing`, the same
    /// multi-op deletes that member (the dead or hung leader's, just before
    /// ours in line): the takeover costs one disk-synced ZooKeeper write
    /// instead of a delete, a read of the members and the claim.
    ///
    /// A stored value that is not an epoch (a foreign write) counts as epoch 0:
    /// the claim then lands at or below the database fence, which refuses the
    /// takeover and makes the coordinator reclaim above the fence, so the
    /// cluster heals itself instead of never electing again.
    pub async fn claim_epoch(
        &self,
        member: &str,
        floor: Epoch,
        replacing: Option<&str>,
    ) -> Result<Epoch, ElectionError> {
        loop {
            let (data, stat) = self.client.get_data(&self.epoch_path).await?;
            let stored = parse_epoch(&data).unwrap_or_else(|error| {
                tracing::error!(%error, "claiming above the database fence instead");
                Epoch::ZERO
            });
            let claimed = stored
                .max(floor)
                .next()
                .ok_or(ElectionError::EpochsExhausted)?;
            let mut writer = self.client.new_multi_writer();
            writer.add_check_version(&self.member_path(member), -1)?;
            if let Some(replaced) = replacing {
                writer.add_delete(&self.member_path(replaced), None)?;
            }
            writer.add_set_data(
                &self.epoch_path,
                claimed.0.to_string().as_bytes(),
                Some(stat.version),
            )?;
            match writer.commit().await {
                Ok(_) => return Ok(claimed),
                Err(MultiWriteError::OperationFailed { index: 0, .. }) => {
                    return Err(ElectionError::NotMember)
                }
                Err(MultiWriteError::OperationFailed {
                    index: 1,
                    source: ZkError::NoNode,
                }) if replacing.is_some() => return Err(ElectionError::ReplacedMemberGone),
                Err(MultiWriteError::OperationFailed {
                    source: ZkError::BadVersion,
                    ..
                }) => continue,
                Err(error) => return Err(ZkError::from(error).into()),
            }
        }
    }

    fn member_path(&self, member: &str) -> String {
        format!("{}/{member}", self.election_path)
    }
}

fn parse_epoch(data: &[u8]) -> Result<Epoch, ElectionError> {
    let text = String::from_utf8_lossy(data).trim().to_owned();
    match text.parse::<i64>() {
        Ok(epoch) if epoch >= 0 => Ok(Epoch(epoch)),
        _ => Err(ElectionError::MalformedEpoch(escape_untrusted(&text, 64))),
    }
}

/// TLS for every server of the connect string when `zookeeper.tls_ca_file`
/// is set, with this node's identity when a certificate is configured. Called
/// once at start too, so a file that cannot be used stops the process instead
/// of failing every connection attempt.
pub fn tls_options(zookeeper: &ZookeeperConfig) -> Result<Option<TlsOptions>, ElectionError> {
    if zookeeper.tls_ca_file.is_empty() {
        return Ok(None);
    }
    let ca = pem_file::read(
        "zookeeper.tls_ca_file",
        &zookeeper.tls_ca_file,
        PemContent::Certificates,
    )?;
    let mut options = TlsOptions::new().with_pem_ca(&ca)?;
    if !zookeeper.tls_cert_file.is_empty() {
        let certificate = pem_file::read(
            "zookeeper.tls_cert_file",
            &zookeeper.tls_cert_file,
            PemContent::Certificates,
        )?;
        let key = pem_file::read(
            "zookeeper.tls_key_file",
            &zookeeper.tls_key_file,
            PemContent::PrivateKey,
        )?;
        options = options.with_pem_identity(&certificate, &key)?;
    }
    Ok(Some(options))
}

#[cfg(test)]
mod tests {
    //! Against the ZooKeeper the environment configures (`scripts/test`
    //! starts one): the multi-op's answers are the server's, not a model's.

    use super::*;
    use crate::config::Config;

    /// The ZooKeeper of `UNDERSTUDY_ZOOKEEPER__*`, read directly: other
    /// tests of this binary set stray `UNDERSTUDY_` variables meanwhile,
    /// which `Config::load` would refuse.
    fn zookeeper() -> ZookeeperConfig {
        let mut zookeeper = Config::default().zookeeper;
        if let Ok(connect) = std::env::var("UNDERSTUDY_ZOOKEEPER__CONNECT") {
            zookeeper.connect = connect;
        }
        if let Ok(digest) = std::env::var("UNDERSTUDY_ZOOKEEPER__DIGEST_AUTH") {
            zookeeper.digest_auth = digest;
        }
        zookeeper
    }

    async fn session(cluster: &str) -> ElectionSession {
        ElectionSession::connect(&zookeeper(), Duration::from_secs(4), cluster)
            .await
            .expect("zookeeper")
    }

    fn info(instance: &str) -> MemberInfo {
        MemberInfo {
            instance_id: instance.into(),
            http_url: format!("http://{instance}:8080"),
        }
    }

    #[tokio::test]
    async fn a_takeover_deletes_the_leaders_member_and_claims_in_one_multi_op() {
        let cluster = format!("takeover-{}", uuid::Uuid::new_v4().simple());
        let (leader, standby) = (session(&cluster).await, session(&cluster).await);
        let leader_member = leader.join(&info("a")).await.expect("join");
        let standby_member = standby.join(&info("b")).await.expect("join");
        assert_eq!(
            leader
                .claim_epoch(&leader_member, Epoch::ZERO, None)
                .await
                .expect("claim"),
            Epoch(1)
        );

        let claimed = standby
            .claim_epoch(&standby_member, Epoch(4), Some(&leader_member))
            .await
            .expect("takeover");
        assert_eq!(
            claimed,
            Epoch(5),
            "above both the stored epoch and the floor"
        );
        assert_eq!(
            standby.children().await.expect("members"),
            std::slice::from_ref(&standby_member)
        );
        assert!(
            matches!(
                leader.claim_epoch(&leader_member, Epoch::ZERO, None).await,
                Err(ElectionError::NotMember)
            ),
            "the deposed leader can no longer claim"
        );
        assert!(matches!(
            standby
                .claim_epoch(&standby_member, Epoch::ZERO, Some(&leader_member))
                .await,
            Err(ElectionError::ReplacedMemberGone)
        ));

        let late = leader.join(&info("a")).await.expect("join again");
        assert!(standby
            .delete_member(&standby_member)
            .await
            .expect("delete"));
        assert!(
            !standby
                .delete_member(&standby_member)
                .await
                .expect("delete"),
            "a member gone already is not deleted again"
        );
        assert!(
            matches!(
                standby
                    .claim_epoch(&standby_member, Epoch::ZERO, Some(&late))
                    .await,
                Err(ElectionError::NotMember)
            ),
            "a standby that lost its member takes nothing over"
        );
        assert_eq!(
            leader.children().await.expect("members"),
            std::slice::from_ref(&late),
            "a refused takeover deletes nothing"
        );
        assert!(
            matches!(
                standby
                    .claim_epoch(&standby_member, Epoch::ZERO, Some(&leader_member))
                    .await,
                Err(ElectionError::NotMember)
            ),
            "with both members gone, the check of ours comes first"
        );
        let (epoch, _) = leader.watch_epoch().await.expect("epoch");
        assert_eq!(epoch, Epoch(5), "refused takeovers claim nothing");

        assert!(leader.delete_member(&late).await.expect("delete"));
        for path in [
            leader.election_path.clone(),
            leader.epoch_path.clone(),
            format!("{}/{cluster}", zookeeper().root),
        ] {
            leader.client.delete(&path, None).await.expect("clean up");
        }
    }
}
