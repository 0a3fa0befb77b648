//! Where "the active version" lives: one seam, implemented for SSM Parameter Store and a local file.

use std::io;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::aws_error::AwsError;
use crate::store::StoreError;

pub mod alias;
pub mod cloudfront;
pub mod file;
pub mod ssm;

/// What a pointer holds while no release is live: infra/cutover.yml creates the SSM parameter
/// with it, and its `LiveVersion` default makes the origin path `/<prefix>/-`. It is not a
/// version (one starts with a letter or digit), so it names no release; every reader takes it as
/// "no release is live" (the pointers here, so promote, rollback, status, doctor and serve; the
/// router in edge/router.js answers 404 "no release is active").
pub const NO_RELEASE: &str = "-";

/// One flip of the pointer, as its history shows it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Promotion {
    pub version: String,
    pub at: Option<DateTime<Utc>>,
    /// Who promoted it: the CI run, kept with the promotion.
    pub note: String,
    /// The flip landed but its CloudFront invalidation failed: the next promotion of the same
    /// version sends it instead of doing nothing.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub invalidation_pending: bool,
}

/// What a flip did besides moving the pointer.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Flipped {
    /// The CloudFront invalidation created after the flip, if any.
    pub invalidation_id: Option<String>,
    /// The flip landed, but its invalidation failed: why, with its causes.
    pub invalidation_failed: Option<String>,
}

/// How a pointer call failed.
#[derive(Debug, thiserror::Error)]
pub enum PointerError {
    /// A conditional write found the pointer's holder changed since it was read, every time it
    /// tried (CloudFront's config ETag, 412).
    #[error("{what} kept changing under this run ({attempts} attempts); try again")]
    PreconditionFailed { what: &'static str, attempts: usize },
    /// The origin the pointer is (CloudFront) is not in the distribution.
    #[error("no origin {origin:?} in {distribution}")]
    NotFound { origin: String, distribution: String },
    /// A failed AWS call, naming the call and the parameter or distribution.
    #[error(transparent)]
    Aws(Box<AwsError>),
    /// The answer lacks what the pointer needs (a distribution without origins).
    #[error("{0}")]
    Incomplete(&'static str),
    /// A request the SDK would not build.
    #[error(transparent)]
    Request(#[from] aws_smithy_types::error::operation::BuildError),
    #[error("too many invalidation paths")]
    TooManyPaths(#[source] std::num::TryFromIntError),
    /// The promotion log in the store (CloudFront) could not be read or written.
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("reading {key}")]
    Reading {
        key: String,
        #[source]
        source: StoreError,
    },
    #[error("logging the promotion")]
    Logging(#[source] Box<PointerError>),
    /// The pointer's file or log holds what is not a pointer.
    #[error("{what} is damaged")]
    Damaged {
        what: String,
        #[source]
        source: serde_json::Error,
    },
    /// The pointer's file could not be read or written; `doing` says which.
    #[error("{doing}")]
    File {
        doing: String,
        #[source]
        source: io::Error,
    },
}

impl From<AwsError> for PointerError {
    fn from(err: AwsError) -> Self {
        PointerError::Aws(Box::new(err))
    }
}

pub type PointerResult<T> = Result<T, PointerError>;

/// The calls cutover makes on a pointer, and no others.
#[async_trait]
pub trait Pointer: Send + Sync {
    /// The active version; `None` before the first promotion.
    async fn read(&self) -> PointerResult<Option<String>>;
    /// Makes `version` active, recording `note` with it.
    async fn write(&self, version: &str, note: &str) -> PointerResult<Flipped>;
    /// Sends the invalidation the last promotion left pending if it made `version` live; the
    /// pointers that do not invalidate have none.
    async fn finish_flip(&self, _version: &str) -> PointerResult<Flipped> {
        Ok(Flipped::default())
    }
    /// Every promotion still remembered, oldest first.
    async fn history(&self) -> PointerResult<Vec<Promotion>>;
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
/// forward again is a promotion. A preview below the top (a pointer set by hand: cutover never
/// makes one live) is never where a rollback goes: the release before it is.
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
    let (_, before) = live.split_last()?;
    before.iter().rev().copied().find(|v| !crate::pull_request::never_live(v))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A history from versions; a `-` before one marks a rollback to it.
    fn history(versions: &[&str]) -> Vec<Promotion> {
        let promotion = |v: &str| match v.strip_prefix('-') {
            Some(v) => Promotion { version: v.into(), note: format!("{ROLLED_BACK} by test"), ..Promotion::default() },
            None => Promotion { version: v.into(), note: "promoted by test".into(), ..Promotion::default() },
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
        // A preview set live by hand is never the version before, whether live now or since.
        assert_eq!(rollback_target(&history(&["1", "pr-5-6", "2"])), Some("1"));
        assert_eq!(rollback_target(&history(&["1", "2", "pr-5-6"])), Some("2"));
        assert_eq!(rollback_target(&history(&["pr-5-6", "2"])), None);
        assert_eq!(rollback_target(&history(&[])), None);
    }
}
