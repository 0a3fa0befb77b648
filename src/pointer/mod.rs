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

/// The version that was active before the current one, from a history (oldest first).
pub fn previous_active(history: &[Promotion]) -> Option<&str> {
    let current = history.last()?;
    history.iter().rev().map(|p| p.version.as_str()).find(|v| *v != current.version)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn history(versions: &[&str]) -> Vec<Promotion> {
        versions.iter().map(|v| Promotion { version: (*v).into(), at: None, note: String::new() }).collect()
    }

    #[test]
    fn previous_active_skips_repeats_of_the_current() {
        assert_eq!(previous_active(&history(&["1", "2", "3", "3"])), Some("2"));
        assert_eq!(previous_active(&history(&["1", "2", "1"])), Some("2"));
        assert_eq!(previous_active(&history(&["4"])), None);
        assert_eq!(previous_active(&history(&[])), None);
    }
}
