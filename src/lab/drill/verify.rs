//! Owns the exactly-once check: every acknowledged id stored once, none lost,
//! none duplicated, nothing stored that no client was acknowledged for.
//!
//! The primary key makes "one row per id" true by construction, so a real
//! duplicate is the same event stored again under another id (a client retry
//! without its id, a producer re-send): it is found by the load generator's
//! marker ([`MARKER_ATTRIBUTE`]), which two rows must never share. A row no
//! client was acknowledged for is unexpected unless its marker belongs to a
//! request whose outcome the client was told is unknown.

use std::collections::HashSet;
use std::path::Path;

use serde::Serialize;
use uuid::Uuid;

use crate::lab::drill::load::MARKER_ATTRIBUTE;
use crate::lab::drill::DrillError;

/// The verdict.
#[derive(Debug, Clone, Default, Serialize, PartialEq, Eq)]
pub struct Verdict {
    /// Acknowledged ids checked.
    pub acknowledged: usize,
    /// Acknowledged ids found in `log_events`.
    pub stored: usize,
    /// Acknowledged ids missing from `log_events`.
    pub lost: usize,
    /// Events stored more than once: ids the seed's duplicate query finds,
    /// plus extra rows of a marker shared by several rows.
    pub duplicated: usize,
    /// Rows of the topic no client was acknowledged for, and whose outcome
    /// no client was told is unknown.
    pub unexpected: usize,
}

impl Verdict {
    /// Nothing lost, nothing duplicated, nothing unexplained.
    pub fn is_exactly_once(&self) -> bool {
        self.lost == 0 && self.duplicated == 0 && self.unexpected == 0
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

/// Writes acknowledged ids (or any values), one per line.
pub fn write_ids<T: std::fmt::Display>(path: &Path, ids: &[T]) -> Result<(), DrillError> {
    let text: String = ids.iter().map(|id| format!("{id}\n")).collect();
    Ok(std::fs::write(path, text)?)
}

/// Reads the markers of unknown outcomes, one per line; none when `path`
/// does not exist (every request got an answer).
pub fn read_markers(path: &Path) -> Result<Vec<String>, DrillError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(text
            .lines()
            .map(str::trim)
            .filter(|line| !line.is_empty())
            .map(str::to_owned)
            .collect()),
        Err(error) if error.kind() == std::io::ErrorKind::NotFound => Ok(Vec::new()),
        Err(error) => Err(error.into()),
    }
}

/// Where the markers of unknown outcomes are kept beside `acked`.
pub fn unknown_path(acked: &Path) -> std::path::PathBuf {
    acked.with_extension("unknown")
}

/// The ids of `ids` that `log_events` holds.
pub async fn stored_among(
    client: &tokio_postgres::Client,
    ids: &[Uuid],
) -> Result<HashSet<Uuid>, DrillError> {
    let mut found = HashSet::with_capacity(ids.len());
    for chunk in ids.chunks(10_000) {
        let rows = client
            .query(
                "SELECT message_id FROM log_events WHERE message_id = ANY($1)",
                &[&chunk],
            )
            .await?;
        found.extend(rows.iter().map(|row| row.get::<_, Uuid>(0)));
    }
    Ok(found)
}

/// Compares `acked` with what `topic` stored in `log_events`; `unknown` holds
/// the markers of events whose outcome the client could not know.
pub async fn verify(
    client: &tokio_postgres::Client,
    topic: &str,
    acked: &[Uuid],
    unknown: &[String],
) -> Result<Verdict, DrillError> {
    let found = stored_among(client, acked).await?;
    let duplicated = client
        .query(
            "SELECT message_id, COUNT(*) FROM log_events GROUP BY message_id HAVING COUNT(*) > 1;",
            &[],
        )
        .await?
        .len();
    let rows = client
        .query(
            "SELECT message_id, attributes->>$2 FROM log_events WHERE topic = $1",
            &[&topic, &MARKER_ATTRIBUTE],
        )
        .await?;
    let acked_set: HashSet<&Uuid> = acked.iter().collect();
    let unknown: HashSet<&str> = unknown.iter().map(String::as_str).collect();
    let mut markers = HashSet::with_capacity(rows.len());
    let mut duplicated_markers = 0;
    let mut unexpected = 0;
    for row in &rows {
        let id: Uuid = row.get(0);
        let marker: Option<String> = row.get(1);
        if let Some(marker) = &marker {
            if !markers.insert(marker.clone()) {
                duplicated_markers += 1;
            }
        }
        let explained = acked_set.contains(&id)
            || marker
                .as_deref()
                .is_some_and(|marker| unknown.contains(marker));
        if !explained {
            unexpected += 1;
        }
    }
    Ok(Verdict {
        acknowledged: acked_set.len(),
        stored: found.len(),
        lost: acked_set.len() - found.len(),
        duplicated: duplicated + duplicated_markers,
        unexpected,
    })
}
