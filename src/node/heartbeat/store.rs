//! Owns the `leader:heartbeat` key: the leader writes it, standbys read it.

use redis::{AsyncCommands, Script};

use crate::node::heartbeat::record::HeartbeatRecord;
use crate::shared::redis_store::{key_prefix, GuardedRedis, RedisStoreError};

/// Writes `ARGV[1]` unless the stored heartbeat carries an epoch above `ARGV[2]`;
/// returns `false` when written, the stored value when refused. The key
/// expires (`ARGV[3]` ms) so a dead cluster leaves nothing behind.
const WRITE_IF_NOT_OLDER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local stored_epoch = tonumber(string.match(current, '^%-?%d+:(%-?%d+):'))
  if stored_epoch and stored_epoch > tonumber(ARGV[2]) then
    return current
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return false
";

/// Replaces the stored value `ARGV[1]` with `ARGV[2]` (expiring after `ARGV[3]`
/// ms) only if it is still stored: a compare-and-set, so a value written since
/// (a real successor's heartbeat) is never clobbered. Returns 1 when replaced.
const REPLACE_IF_UNCHANGED: &str = r"
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'PX', ARGV[3])
  return 1
end
return 0
";

/// What a heartbeat write came to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteOutcome {
    /// Written.
    Written,
    /// Refused: the stored value (`stored`) carries a higher epoch.
    Refused {
        /// What the key holds.
        stored: String,
    },
}

/// How long a heartbeat key outlives its last write.
const HEARTBEAT_TTL_MS: u64 = 60_000;

/// Reads and writes one cluster's heartbeat.
#[derive(Clone)]
pub struct HeartbeatStore {
    redis: GuardedRedis,
    key: String,
    write_script: Script,
    replace_script: Script,
}

impl HeartbeatStore {
    /// A store for `cluster` over `redis`.
    pub fn new(redis: GuardedRedis, cluster: &str) -> Self {
        Self {
            redis,
            key: format!("{}leader:heartbeat", key_prefix(cluster)),
            write_script: Script::new(WRITE_IF_NOT_OLDER),
            replace_script: Script::new(REPLACE_IF_UNCHANGED),
        }
    }

    /// The Redis key, for operators and tests.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Writes `record` unless a higher epoch's heartbeat is stored.
    pub async fn write(&self, record: &HeartbeatRecord) -> Result<WriteOutcome, RedisStoreError> {
        let mut invocation = self.write_script.key(&self.key);
        invocation
            .arg(record.to_string())
            .arg(record.epoch.0)
            .arg(HEARTBEAT_TTL_MS);
        let refused_by: Option<String> = self
            .redis
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        Ok(match refused_by {
            None => WriteOutcome::Written,
            Some(stored) => WriteOutcome::Refused { stored },
        })
    }

    /// Replaces `stored` with `record` if the key still holds `stored`; only
    /// once ZooKeeper confirmed that `record`'s writer leads, so `stored` was
    /// never granted. `Ok(false)` when the key changed meanwhile.
    pub async fn replace(
        &self,
        stored: &str,
        record: &HeartbeatRecord,
    ) -> Result<bool, RedisStoreError> {
        let mut invocation = self.replace_script.key(&self.key);
        invocation
            .arg(stored)
            .arg(record.to_string())
            .arg(HEARTBEAT_TTL_MS);
        let replaced: i64 = self
            .redis
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        Ok(replaced == 1)
    }

    /// The stored heartbeat, if any.
    pub async fn read(&self) -> Result<Option<HeartbeatRecord>, RedisStoreError> {
        let stored: Option<String> = self
            .redis
            .run(|mut connection| async move { connection.get(&self.key).await })
            .await?;
        stored
            .map(|text| {
                text.parse().map_err(
                    |error: crate::node::heartbeat::record::HeartbeatParseError| {
                        RedisStoreError::Malformed(error.to_string())
                    },
                )
            })
            .transpose()
    }
}
