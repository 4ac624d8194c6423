//! Owns the `consumer:state` key: the leader's [`ConsumerState`] snapshot.

use redis::{AsyncCommands, Script};

use crate::node::snapshot::state::ConsumerState;
use crate::shared::redis_store::{key_prefix, GuardedRedis, RedisStoreError};

/// Stores the snapshot (`ARGV[1]`, JSON) unless the stored one has an epoch above
/// `ARGV[2]`; returns 1 when written, 0 when refused.
const WRITE_IF_NOT_OLDER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local ok, decoded = pcall(cjson.decode, current)
  if ok and type(decoded) == 'table' and tonumber(decoded['epoch']) and tonumber(decoded['epoch']) > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
";

/// How long a snapshot outlives its last write (the in-flight ids' TTL).
const SNAPSHOT_TTL_MS: i64 = crate::node::snapshot::state::IN_FLIGHT_TTL_MS;

/// Reads and writes one cluster's state snapshot.
#[derive(Clone)]
pub struct SnapshotStore {
    redis: GuardedRedis,
    key: String,
    script: Script,
}

impl SnapshotStore {
    /// A store for `cluster` over `redis`.
    pub fn new(redis: GuardedRedis, cluster: &str) -> Self {
        Self {
            redis,
            key: format!("{}consumer:state", key_prefix(cluster)),
            script: Script::new(WRITE_IF_NOT_OLDER),
        }
    }

    /// Writes `state` unless a higher epoch's snapshot is stored; `Ok(false)` when refused.
    pub async fn write(&self, state: &ConsumerState) -> Result<bool, RedisStoreError> {
        let json = serde_json::to_string(state)
            .map_err(|error| RedisStoreError::Malformed(error.to_string()))?;
        let mut invocation = self.script.key(&self.key);
        invocation.arg(json).arg(state.epoch.0).arg(SNAPSHOT_TTL_MS);
        let written: i64 = self
            .redis
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        Ok(written == 1)
    }

    /// The stored snapshot, if any.
    pub async fn read(&self) -> Result<Option<ConsumerState>, RedisStoreError> {
        let stored: Option<String> = self
            .redis
            .run(|mut connection| async move { connection.get(&self.key).await })
            .await?;
        stored
            .map(|json| {
                serde_json::from_str(&json)
                    .map_err(|error| RedisStoreError::Malformed(error.to_string()))
            })
            .transpose()
    }
}
