//! Where "the active version" lives: one seam, implemented for SSM Parameter Store and a local file.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

pub mod cloudfront;
pub mod file;
pub mod ssm;

/// One flip of the pointer, as its history shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub version: String,
    pub at: Option<DateTime<Utc>>,
    /// Who promoted it: the CI run, kept with the promotion.
    pub note: String,
}

/// What a flip did besides moving the pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flipped {
    /// The CloudFront invalidation created after the flip, if any.
    pub invalidation_id: Option<String>,
}

/// The calls cutover makes on a pointer, and no others.
#[async_trait]
pub trait Pointer: Send + Sync {
    /// The active version; `None` before the first promotion.
    async fn read(&self) -> anyhow::Result<Option<String>>;
    /// Makes `version` active, recording `note` with it.
    async fn write(&self, version: &str, note: &str) -> anyhow::Result<Flipped>;
    /// Every promotion still remembered, oldest first.
    async fn history(&self) -> anyhow::Result<Vec<Promotion>>;
    /// Where the pointer is, for messages.
    fn describe(&self) -> String;
}

/// How a rollback's note begins; every other promotion went forward.
pub const ROLLED_BACK: &str = "rolled back";

impl Promotion {
    pub fn is_rollback(&self) -> bool {
        self.note.starts_with(ROLLED_BACK)
    }
}

/// Where a rollback goes from a history (oldest first): the version that was live before the
/// current one went live going forward.
///
/// The history is replayed as a stack: a forward promotion pushes its version, a rollback pops
/// back to the version it went to. So deploys 1, 2, 3 then two rollbacks go 3 -> 2 -> 1; going
/// forward again is a promotion.
pub fn rollback_target(history: &[Promotion]) -> Option<&str> {
    let mut live: Vec<&str> = Vec::new();
    for promotion in history {
        let version = promotion.version.as_str();
        if promotion.is_rollback()
            && let Some(at) = live.iter().rposition(|v| *v == version)
        {
            live.truncate(at + 1);
        } else if live.last() != Some(&version) {
            live.push(version);
        }
    }
    live.len().checked_sub(2).map(|i| live[i])
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history from versions; a `-` before one marks a rollback to it.
    fn history(versions: &[&str]) -> Vec<Promotion> {
        let promotion = |v: &str| match v.strip_prefix('-') {
            Some(v) => Promotion { version: v.into(), at: None, note: format!("{ROLLED_BACK} by test") },
            None => Promotion { version: v.into(), at: None, note: "promoted by test".into() },
        };
        versions.iter().map(|v| promotion(v)).collect()
    }

    #[test]
    fn rollbacks_walk_back_through_the_history() {
        assert_eq!(rollback_target(&history(&["1", "2", "3", "3"])), Some("2"));
        assert_eq!(rollback_target(&history(&["1", "2", "3", "-2"])), Some("1"));
        assert_eq!(rollback_target(&history(&["1", "2", "3", "-2", "-1"])), None);
        assert_eq!(rollback_target(&history(&["1", "2", "3", "-1"])), None);
        assert_eq!(rollback_target(&history(&["1", "2", "3", "-2", "4"])), Some("2"));
        // A rollback to a version that was never live goes on top of what was.
        assert_eq!(rollback_target(&history(&["1", "2", "-7"])), Some("2"));
        // A forward promotion to an older version (an explicit `promote`) is pushed like any other.
        assert_eq!(rollback_target(&history(&["1", "2", "1"])), Some("2"));
        assert_eq!(rollback_target(&history(&["4"])), None);
        assert_eq!(rollback_target(&history(&[])), None);
    }
}
