//! Owns the exactly-once check: every acknowledged id stored once, none lost,
//! none duplicated, nothing stored that no client was acknowledged for.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;
use uuid::Uuid;

use crate::drill::DrillError;

/// The verdict.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// Acknowledged ids checked.
    pub acknowledged: usize,
    /// Acknowledged ids found in `log_events`.
    pub stored: usize,
    /// Acknowledged ids missing from `log_events`.
    pub lost: usize,
    /// Ids stored more than once (the seed's duplicate query).
    pub duplicated: usize,
    /// Rows of the topic no client was acknowledged for.
    pub unexpected: usize,
}

impl Verdict {
    /// Nothing lost, nothing duplicated.
    pub fn is_exactly_once(&self) -> bool {
        self.lost == 0 && self.duplicated == 0
    }
}

/// Reads acknowledged ids, one per line.
pub fn read_ids(path: &Path) -> Result<Vec<Uuid>, DrillError> {
    std::fs::read_to_string(path)?
        .lines()
        .filter(|line| !line.trim().is_empty())
        .map(|line| {
            line.trim()
                .parse()
                .map_err(|_| DrillError::Malformed(format!("`{line}` is not a message id")))
        })
        .collect()
}

/// Writes acknowledged ids, one per line.
pub fn write_ids(path: &Path, ids: &[Uuid]) -> Result<(), DrillError> {
    let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
    Ok(std::fs::write(path, text)?)
}

/// Compares `acked` with what `topic` stored in `log_events`.
pub async fn verify(
    client: &tokio_postgres::Client,
    topic: &str,
    acked: &[Uuid],
) -> Result<Verdict, DrillError> {
    let mut found = HashSet::with_capacity(acked.len());
    for chunk in acked.chunks(10_000) {
        let rows = client
            .query(
                "SELECT message_id FROM log_events WHERE message_id = ANY($1)",
                &[&chunk],
            )
            .await?;
        found.extend(rows.iter().map(|row| row.get::<_, Uuid>(0)));
    }
    let duplicated = client
        .query(
            "SELECT message_id, COUNT(*) FROM log_events GROUP BY message_id HAVING COUNT(*) > 1;",
            &[],
        )
        .await?
        .len();
    let in_topic: i64 = client
        .query_one(
            "SELECT COUNT(*) FROM log_events WHERE topic = $1",
            &[&topic],
        )
        .await?
        .get(0);
    let acked_set: HashSet<&Uuid> = acked.iter().collect();
    Ok(Verdict {
        acknowledged: acked_set.len(),
        stored: found.len(),
        lost: acked_set.len() - found.len(),
        duplicated,
        unexpected: usize::try_from(in_topic)
            .unwrap_or(0)
            .saturating_sub(found.len()),
    })
}
