//! Owns the `leader:heartbeat` key: the leader writes it, standbys read it.

use redis::{AsyncCommands, Script};

use crate::heartbeat_record::HeartbeatRecord;
use crate::redis_store::{key_prefix, GuardedRedis, RedisStoreError};

/// Writes `ARGV[1]` unless the stored heartbeat carries an epoch above `ARGV[2]`;
/// returns 1 when written, 0 when refused. The key expires (`ARGV[3]` ms) so a
/// dead cluster leaves nothing behind.
const WRITE_IF_NOT_OLDER: &str = r"
local current = redis.call('GET', KEYS[1])
if current then
  local stored_epoch = tonumber(string.match(current, '^%-?%d+:(%-?%d+):'))
  if stored_epoch and stored_epoch > tonumber(ARGV[2]) then
    return 0
  end
end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[3])
return 1
";

/// How long a heartbeat key outlives its last write.
const HEARTBEAT_TTL_MS: u64 = 60_000;

/// Reads and writes one cluster's heartbeat.
#[derive(Clone)]
pub struct HeartbeatStore {
    redis: GuardedRedis,
    key: String,
    script: Script,
}

impl HeartbeatStore {
    /// A store for `cluster` over `redis`.
    pub fn new(redis: GuardedRedis, cluster: &str) -> Self {
        Self {
            redis,
            key: format!("{}leader:heartbeat", key_prefix(cluster)),
            script: Script::new(WRITE_IF_NOT_OLDER),
        }
    }

    /// The Redis key, for operators and tests.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Writes `record` unless a higher epoch's heartbeat is stored; `Ok(false)` when refused.
    pub async fn write(&self, record: &HeartbeatRecord) -> Result<bool, RedisStoreError> {
        let mut invocation = self.script.key(&self.key);
        invocation
            .arg(record.to_string())
            .arg(record.epoch.0)
            .arg(HEARTBEAT_TTL_MS);
        let written: i64 = self
            .redis
            .run(|mut connection| async move { invocation.invoke_async(&mut connection).await })
            .await?;
        Ok(written == 1)
    }

    /// Writes `record` whatever is stored: only once ZooKeeper confirmed that
    /// its writer leads, so what it replaces was never granted.
    pub async fn overwrite(&self, record: &HeartbeatRecord) -> Result<(), RedisStoreError> {
        let value = record.to_string();
        self.redis
            .run(|mut connection| async move {
                connection
                    .pset_ex::<_, _, ()>(&self.key, value, HEARTBEAT_TTL_MS)
                    .await
            })
            .await
    }

    /// The stored heartbeat, if any.
    pub async fn read(&self) -> Result<Option<HeartbeatRecord>, RedisStoreError> {
        let stored: Option<String> = self
            .redis
            .run(|mut connection| async move { connection.get(&self.key).await })
            .await?;
        stored
            .map(|text| {
                text.parse()
                    .map_err(|error: crate::heartbeat_record::HeartbeatParseError| {
                        RedisStoreError::Malformed(error.to_string())
                    })
            })
            .transpose()
    }
}
