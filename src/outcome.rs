//! How a run ends: the documented exit codes, and the errors that choose them.

use crate::inputs::InputError;
use crate::smoke::SmokeFailure;

pub const EXIT_OK: u8 = 0;
pub const EXIT_FAILED: u8 = 1;
pub const EXIT_BAD_INPUT: u8 = 2;
pub const EXIT_SMOKE_FAILED: u8 = 3;
pub const EXIT_REFUSED: u8 = 4;

/// A guard refused the change; nothing was changed.
#[derive(Debug, thiserror::Error)]
#[error("refused: {0}")]
pub struct Refusal(pub Guard);

impl From<Guard> for Refusal {
    fn from(guard: Guard) -> Self {
        Refusal(guard)
    }
}

/// The guards that refuse a command, each with what it found.
#[derive(Debug, thiserror::Error)]
pub enum Guard {
    #[error("no earlier version in the promotion history to roll back to; use `to` to name one")]
    NoRollbackTarget,
    /// A plain rollback whose target in the history is no recorded release.
    #[error(
        "the value live before the current one, {value:?}, is not a recorded release of this site (a value cutover took over, or a pruned release); go back to a release with `cutover rollback --to <version>`"
    )]
    ForeignRollbackTarget { value: String },
    #[error("the deploy lock is still held: {holder}")]
    LockHeld { holder: String },
    /// The run's lease may have lapsed: another run may hold the lock now.
    #[error("{0}")]
    LockLapsed(Lapsed),
    #[error(
        "{pointer} holds {value:?}, which is not a release of this site; cutover does not overwrite a value it did not write: set `take-over-pointer: true` to replace it"
    )]
    ForeignPointer { pointer: String, value: String },
    #[error(
        "the alias {alias} holds {value:?}, which is no preview of its pull request; cutover does not overwrite a value it did not write: set `take-over-pointer: true` to replace it"
    )]
    ForeignAlias { alias: String, value: String },
    /// `preview --close` ran for this pull request: a push still running, or a re-run, makes no link.
    #[error(
        "the pull request {number} was closed at {closed_at}: its preview is staged but not linked; a run for GitHub's `reopened` event links again (elsewhere, set `take-over-pointer: true` once)"
    )]
    Closed { number: u64, closed_at: String },
    #[error(
        "the active version was rolled back from {} to {} while this run was working; re-run to release on top of it",
        or_nothing(expected),
        or_nothing(active)
    )]
    RolledBackMeanwhile { expected: Option<String>, active: Option<String> },
    /// The order guard: only a rollback goes to an older version.
    #[error("{version} is older than the active {active}; to go back on purpose run `cutover rollback --to {version}`")]
    Older { version: String, active: String },
    /// Previews never go live.
    #[error(
        "{version} names a pull request's preview, which never goes live: merge the pull request and release instead"
    )]
    Preview { version: String },
    #[error("version {version} has no release record in {store}; stage it first")]
    NotStaged { version: String, store: String },
    #[error(
        "release {version} is incomplete: {missing} recorded files are missing or changed, e.g. {first}; staging it again (a re-run) puts them back"
    )]
    Incomplete { version: String, missing: usize, first: String },
    /// Something landed between this run's guards and its flip, which was undone if it could be.
    #[error("{}; {put_back}", by.describe(version))]
    Overtaken { version: String, by: Overtaking, put_back: PutBack },
    /// A prune found the release it was deleting made live (by a write that was in flight).
    #[error("{version} was made live while prune deleted it; prune stops")]
    MadeLiveWhilePruned { version: String },
    /// A fingerprinted name (`shared-assets`) whose content changed: the pool would serve releases
    /// that name it different bytes.
    #[error(
        "{path} matches shared-assets rule `{rule}`, but the shared pool holds other content under that name ({key}); a fingerprinted name must change when its content does: rename the file (let the bundler hash it), or narrow `shared-assets` so it no longer matches"
    )]
    SharedChanged { path: String, rule: String, key: String },
    #[error("{key} was written by another run while this run staged version {version}")]
    WrittenMeanwhile { key: String, version: String },
    /// Releases are immutable: a recorded version is never staged with other content.
    #[error(
        "version {version} is already released with different content ({changed} files differ, {removed} missing); releases are immutable, so choose a new version"
    )]
    Recorded { version: String, changed: usize, removed: usize },
    /// Files of a stage failed, and one because another run wrote the same version. It holds the
    /// stage's `FileFailures` list as an error: that list's causes hold refusals themselves, so
    /// naming its type here would tie this module to the stage's (an import circle).
    #[error("{0}")]
    Staging(Box<dyn std::error::Error + Send + Sync>),
}

/// A lease's holder went too long without renewing it: another run may hold it now.
#[derive(Debug, Clone, thiserror::Error)]
#[error(
    "{what} was taken or renewed {:.1}s ago (lease {:.1}s): another run may hold it now, so this run writes no more",
    since.as_secs_f64(),
    lease.as_secs_f64()
)]
pub struct Lapsed {
    /// The lease: `the staging claim`.
    pub what: &'static str,
    pub since: std::time::Duration,
    pub lease: std::time::Duration,
}

fn or_nothing(version: &Option<String>) -> &str {
    version.as_deref().unwrap_or("nothing")
}

/// What landed while a run's flip was in flight, found by the read-back after it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Overtaking {
    /// A newer version was promoted in between.
    Promoted { between: String },
    /// A rollback landed in between.
    RolledBack { between: String },
    /// The release made live was pruned (its record deleted) while the write was in flight.
    Pruned,
}

impl Overtaking {
    pub fn describe(&self, version: &str) -> String {
        match self {
            Overtaking::Promoted { between } => {
                format!("{between} was promoted while this run waited to promote the older {version}")
            }
            Overtaking::RolledBack { between } => {
                format!("a rollback to {between} was made while this run waited to promote {version}")
            }
            Overtaking::Pruned => {
                format!("the record of {version} was deleted (pruned) while this run's write was in flight")
            }
        }
    }

    /// Why the put-back is logged, after "rolled back by <run> from <version>: ".
    pub fn logged(&self) -> &'static str {
        match self {
            Overtaking::Promoted { .. } | Overtaking::RolledBack { .. } => "it overtook a later promotion",
            Overtaking::Pruned => "its record was pruned",
        }
    }
}

/// What became of a flip that was overtaken.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PutBack {
    #[error("{0} was put back")]
    Done(String),
    #[error("the pointer has moved on since")]
    MovedOn,
    #[error("nothing was live before it, so nothing could be put back")]
    NothingWasLive,
}

/// The exit code for an error: the first cause in its chain that has one decides, else 1.
pub fn exit_code(err: &anyhow::Error) -> u8 {
    err.chain()
        .find_map(|cause| {
            if cause.is::<InputError>() {
                Some(EXIT_BAD_INPUT)
            } else if cause.is::<SmokeFailure>() {
                Some(EXIT_SMOKE_FAILED)
            } else if cause.is::<Refusal>() {
                Some(EXIT_REFUSED)
            } else {
                None
            }
        })
        .unwrap_or(EXIT_FAILED)
}

#[cfg(test)]
mod tests {
    use super::*;
    use anyhow::Context;

    #[test]
    fn the_cause_chooses_the_exit_code() {
        let refused = Err::<(), _>(Refusal(Guard::NoRollbackTarget)).context("promoting 4").unwrap_err();
        assert_eq!(exit_code(&refused), EXIT_REFUSED);
        assert_eq!(exit_code(&anyhow::Error::new(InputError::new("bucket", "bad"))), EXIT_BAD_INPUT);
        assert_eq!(
            exit_code(&anyhow::Error::new(SmokeFailure { message: "/".into(), checks: Vec::new() })),
            EXIT_SMOKE_FAILED
        );
        assert_eq!(exit_code(&anyhow::anyhow!("network")), EXIT_FAILED);
    }
}
