//! Prune: delete old releases beyond a retention count, never the live one, the one before it,
//! or one staged within the last hour (another run may be about to promote it).

use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;

use crate::backend::Site;
use crate::lock::{DeployLock, LockError};
use crate::outcome::{Guard, Refusal};
use crate::pointer::{PointerError, rollback_target};
use crate::pull_request::PullRequest;
use crate::release::{Place, RecordError, ReleaseRecord, all_records};
use crate::store::{Condition, StoreError, json_meta};

/// Releases younger than this are never pruned.
pub const RECENT: Duration = Duration::from_secs(3600);

/// Why pruning stopped.
#[derive(Debug, thiserror::Error)]
pub enum PruneError {
    /// The deploy lock was held by another run, or lapsed (exit 4).
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Pointer(#[from] PointerError),
    #[error(transparent)]
    Record(#[from] RecordError),
    /// A release's record or files could not be deleted (or a record put back); `doing` says which.
    #[error("{doing}")]
    Deleting {
        doing: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Lock(LockError),
}

/// A deploy lock held by another run stays a refusal.
impl From<LockError> for PruneError {
    fn from(err: LockError) -> Self {
        match err {
            LockError::Refused(refusal) => PruneError::Refused(refusal),
            other => PruneError::Lock(other),
        }
    }
}

/// How many releases to keep, and how to hold the deploy lock while deleting the rest.
#[derive(Debug, Clone)]
pub struct PruneRequest<'a> {
    /// Releases kept besides the protected ones: the newest `keep`.
    pub keep: usize,
    pub lock_lease: Duration,
    /// Names the holder of the deploy lock.
    pub run_url: Option<&'a str>,
    /// Decide, delete nothing, take no lock.
    pub dry_run: bool,
    /// Previews recorded longer ago than this are deleted; they never count in `keep`.
    pub preview_ttl: Duration,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
}

/// Deletes releases beyond the newest `request.keep`, under the deploy lock so no promotion races it.
pub async fn prune(site: &Site, request: &PruneRequest<'_>) -> Result<PruneReport, PruneError> {
    let lock = if request.dry_run {
        None
    } else {
        Some(DeployLock::acquire(site, request.lock_lease, request.run_url).await?)
    };
    let result = prune_locked(site, request, lock.as_ref()).await;
    if let Some(lock) = lock {
        lock.release().await?;
    }
    result
}

/// Decides under `lock` (none: a dry run, which deletes nothing).
async fn prune_locked(
    site: &Site,
    request: &PruneRequest<'_>,
    lock: Option<&DeployLock>,
) -> Result<PruneReport, PruneError> {
    let history = site.pointer.history().await?;
    let active = site.pointer.read().await?;
    let protected: HashSet<&str> = active.as_deref().into_iter().chain(rollback_target(&history)).collect();
    let recent_since = Utc::now() - chrono::Duration::from_std(RECENT).expect("an hour is a chrono duration");
    let records = all_records(site).await?;
    let expired_before = chrono::Duration::from_std(request.preview_ttl)
        .ok()
        .and_then(|ttl| Utc::now().checked_sub_signed(ttl))
        .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
    let mut report = PruneReport::default();
    // Previews go by age alone and never count in `keep`; `rank` counts releases only.
    let mut rank = 0;
    for record in records.iter().rev() {
        let preview = crate::pull_request::preview_of(&record.version);
        let retained = match preview {
            Some(_) => record.created_at > expired_before,
            None => {
                rank += 1;
                rank <= request.keep || record.created_at > recent_since
            }
        };
        let spared = retained || protected.contains(record.version.as_str());
        if spared {
            report.kept.push(record.version.clone());
            continue;
        }
        if let Some(lock) = lock {
            delete_release(site, record, lock).await?;
            if let Some(pr) = preview {
                forget_alias(site, pr, &record.version).await?;
            }
        }
        report.deleted.push(record.version.clone());
    }
    Ok(report)
}

/// Deletes the record first, so a half-deleted release can never be promoted, then exactly the
/// files it lists: never a directory, so prune cannot reach into anything the record does not name.
pub(crate) async fn delete_release(site: &Site, record: &ReleaseRecord, lock: &DeployLock) -> Result<(), PruneError> {
    let version = &record.version;
    // Past the lock's lease another run may have made this release live again: each write first
    // checks the lock is still this run's.
    lock.check()?;
    site.store
        .delete(&[
            site.layout.record_key(version),
            site.layout.verdict_key(version),
            crate::route_index::key(&site.layout, version),
        ])
        .await
        .map_err(|source| PruneError::Deleting { doing: format!("deleting the record of {version}"), source })?;
    if let Err(stop) = still_prunable(site, version, lock).await {
        put_record_back(site, record).await?;
        return Err(stop);
    }
    // Pooled files are shared with other releases: only the version's own directory goes here.
    let keys: Vec<String> = record
        .files
        .iter()
        .filter(|(_, file)| file.place == Place::Version)
        .map(|(path, _)| site.layout.object_key(version, path))
        .collect();
    site.store
        .delete(&keys)
        .await
        .map_err(|source| PruneError::Deleting { doing: format!("deleting the files of {version}"), source })?;
    Ok(())
}

/// Deletes the alias of `pr` if it names `version`, a preview just deleted.
pub(crate) async fn forget_alias(site: &Site, pr: PullRequest, version: &str) -> Result<(), PruneError> {
    if site.aliases.read(pr).await?.as_deref() == Some(version) {
        site.aliases.delete(pr).await?;
    }
    Ok(())
}

/// Checked between a record's deletion and its files': the lock was still this run's when the
/// record went (a prune paused past its lease may have resumed just after the check before it,
/// while another run made the version live), and no promotion whose write was in flight has made
/// the version live since. Either way the files are still whole.
async fn still_prunable(site: &Site, version: &str, lock: &DeployLock) -> Result<(), PruneError> {
    lock.check()?;
    if site.pointer.read().await?.as_deref() == Some(version) {
        return Err(Refusal(Guard::MadeLiveWhilePruned { version: version.to_owned() }).into());
    }
    Ok(())
}

/// Puts a record this run deleted back, create-only (a re-stage of the version since wins).
async fn put_record_back(site: &Site, record: &ReleaseRecord) -> Result<(), PruneError> {
    let version = &record.version;
    let key = site.layout.record_key(version);
    match site.store.put(&key, Bytes::from(record.to_json()), &json_meta(), Condition::IfAbsent).await {
        Ok(()) | Err(StoreError::PreconditionFailed) => {
            crate::say!("put the record of {version} back: its files were not deleted");
            Ok(())
        }
        Err(source) => Err(PruneError::Deleting { doing: format!("putting the record of {version} back"), source }),
    }
}
