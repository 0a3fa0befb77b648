//! Prune: delete old releases beyond a retention count, never the live one, the one before it,
//! one staged within the last hour (another run may be about to promote it) or one live within
//! the skew window (open tabs still load its files); then the pool objects no kept release uses.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::backend::Site;
use crate::lock::{DeployLock, LockError};
use crate::outcome::{Guard, Refusal};
use crate::pointer::{PointerError, Promotion, rollback_target};
use crate::pull_request::PullRequest;
use crate::release::{Place, RecordError, ReleaseRecord, Verdict, all_records};
use crate::store::{Condition, StoreError, json_meta};

/// Releases younger than this are never pruned, nor pool objects written this recently (a stage
/// in flight may rely on them before its record exists).
pub const RECENT: Duration = Duration::from_secs(3600);

/// Pool objects deleted per call, S3's most per DeleteObjects; the lock is checked before each.
const POOL_BATCH: usize = 1000;

/// Why a release is kept; prune deletes a release with no reason.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Kept {
    /// The pointer names it.
    Live,
    /// Where `rollback` without `to` goes.
    Previous,
    /// Staged within the last hour.
    Recent,
    /// Live at some moment within `skew-window`.
    SkewWindow,
    /// Among the newest `keep` releases.
    Keep,
    /// A preview younger than `preview-ttl`.
    Preview,
}

impl std::fmt::Display for Kept {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kept::Live => "live",
            Kept::Previous => "previous",
            Kept::Recent => "recent",
            Kept::SkewWindow => "skew window",
            Kept::Keep => "keep",
            Kept::Preview => "preview",
        })
    }
}

/// What decides which releases stay.
#[derive(Debug, Clone, Copy)]
pub struct Retention {
    /// The newest `keep` releases stay; unset (status without `keep`): no release stays for it.
    pub keep: Option<usize>,
    pub skew_window: Duration,
    pub preview_ttl: Duration,
}

impl Retention {
    /// Why each of `records` (oldest first) is kept at `now`: every reason that applies.
    pub fn reasons(
        &self,
        records: &[ReleaseRecord],
        active: Option<&str>,
        history: &[Promotion],
        now: DateTime<Utc>,
    ) -> Vec<Vec<Kept>> {
        let ago = |d: Duration| chrono::Duration::from_std(d).ok().and_then(|d| now.checked_sub_signed(d));
        let recent_since = ago(RECENT).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let expired_before = ago(self.preview_ttl).unwrap_or(DateTime::<Utc>::MIN_UTC);
        let skewed = live_since(history, ago(self.skew_window).unwrap_or(DateTime::<Utc>::MIN_UTC));
        let previous = rollback_target(history);
        // Previews go by age alone and never count in `keep`; `rank` counts releases only.
        let mut rank = 0;
        let mut reasons: Vec<Vec<Kept>> = records
            .iter()
            .rev()
            .map(|record| {
                let version = record.version.as_str();
                let preview = crate::pull_request::preview_of(version).is_some();
                let mut why = Vec::new();
                if active == Some(version) {
                    why.push(Kept::Live);
                }
                if previous == Some(version) {
                    why.push(Kept::Previous);
                }
                if preview {
                    if record.created_at > expired_before {
                        why.push(Kept::Preview);
                    }
                    return why;
                }
                rank += 1;
                if record.created_at > recent_since {
                    why.push(Kept::Recent);
                }
                if skewed.contains(version) {
                    why.push(Kept::SkewWindow);
                }
                if self.keep.is_some_and(|keep| rank <= keep) {
                    why.push(Kept::Keep);
                }
                why
            })
            .collect();
        reasons.reverse();
        reasons
    }
}

/// The versions live at any moment since `since`: each promotion's version was live until the
/// next promotion (the last one until now); a promotion of unknown time counts as recent.
fn live_since(history: &[Promotion], since: DateTime<Utc>) -> HashSet<&str> {
    history
        .iter()
        .enumerate()
        .filter(|(i, _)| history.get(i + 1).is_none_or(|next| next.at.is_none_or(|at| at >= since)))
        .map(|(_, p)| p.version.as_str())
        .collect()
}

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
    /// Whether a preview is whole could not be told before its alias moves.
    #[error("checking that {version} is complete")]
    Checking {
        version: String,
        #[source]
        source: crate::promote::PromoteError,
    },
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

/// Which releases to keep, and how to hold the deploy lock while deleting the rest.
#[derive(Debug, Clone)]
pub struct PruneRequest<'a> {
    /// Releases kept besides the protected ones (`keep` is always set here); previews recorded
    /// longer ago than `preview_ttl` are deleted and never count in `keep`.
    pub retention: Retention,
    pub lock_lease: Duration,
    /// Names the holder of the deploy lock.
    pub run_url: Option<&'a str>,
    /// Decide, delete nothing, take no lock.
    pub dry_run: bool,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct PruneReport {
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
    /// Pool objects (their paths) no kept release uses, deleted (or, on a dry run, to delete).
    pub pool_deleted: Vec<String>,
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
    let now = Utc::now();
    let records = all_records(site).await?;
    let reasons = request.retention.reasons(&records, active.as_deref(), &history, now);
    let mut report = PruneReport::default();
    for (record, why) in records.iter().zip(reasons).rev() {
        if !why.is_empty() {
            report.kept.push(record.version.clone());
            continue;
        }
        if let Some(lock) = lock {
            delete_release(site, record, lock).await?;
        }
        report.deleted.push(record.version.clone());
    }
    if let Some(lock) = lock {
        let mut prs: Vec<PullRequest> =
            report.deleted.iter().filter_map(|v| crate::pull_request::preview_of(v)).collect();
        prs.sort_by_key(|pr| pr.number());
        prs.dedup();
        let failed = if prs.is_empty() { HashMap::new() } else { Verdict::read_all(site).await? };
        let linkable: Vec<&ReleaseRecord> = records
            .iter()
            .filter(|r| !report.deleted.contains(&r.version) && !failed.contains_key(&r.version))
            .collect();
        for pr in prs {
            relink_alias(site, pr, &linkable, &report.deleted, lock).await?;
        }
    }
    report.pool_deleted = sweep_pool(site, lock, &report.deleted, now).await?;
    Ok(report)
}

/// Deletes the pool objects no remaining release uses, except those written in the last hour;
/// returns their paths. The records are read again, so a release recorded since the decision
/// keeps its files (a re-stage of a deleted version too); on a dry run (no lock) `deleted` are the
/// releases it would have deleted, still recorded.
pub(crate) async fn sweep_pool(
    site: &Site,
    lock: Option<&DeployLock>,
    deleted: &[String],
    now: DateTime<Utc>,
) -> Result<Vec<String>, PruneError> {
    let records = all_records(site).await?;
    let used: HashSet<&str> = records
        .iter()
        .filter(|r| lock.is_some() || !deleted.contains(&r.version))
        .flat_map(ReleaseRecord::pooled)
        .collect();
    let young = now - chrono::Duration::from_std(RECENT).expect("an hour is a chrono duration");
    let shared = site.layout.shared_dir();
    let listed = site
        .store
        .list(&shared)
        .await
        .map_err(|source| PruneError::Deleting { doing: "listing the shared pool".to_owned(), source })?;
    let unused: Vec<(String, String)> = listed
        .into_iter()
        .filter(|object| object.modified.is_some_and(|at| at < young))
        .filter_map(|object| {
            let path = object.key.strip_prefix(&shared)?.to_owned();
            (!used.contains(path.as_str())).then_some((object.key, path))
        })
        .collect();
    if let Some(lock) = lock {
        for batch in unused.chunks(POOL_BATCH) {
            lock.check()?;
            let keys: Vec<String> = batch.iter().map(|(key, _)| key.clone()).collect();
            site.store
                .delete(&keys)
                .await
                .map_err(|source| PruneError::Deleting { doing: "deleting unused pool objects".to_owned(), source })?;
        }
    }
    Ok(unused.into_iter().map(|(_, path)| path).collect())
}

/// Deletes the record first, alone, so a half-deleted release can never be promoted, then what
/// cutover keeps about the version under `_cutover/` (its smoke verdict, its routing index) and
/// exactly the files the record lists: never a directory, so prune cannot reach into anything the
/// record does not name. A record put back finds the rest whole.
pub(crate) async fn delete_release(site: &Site, record: &ReleaseRecord, lock: &DeployLock) -> Result<(), PruneError> {
    let version = &record.version;
    // Past the lock's lease another run may have made this release live again: each write first
    // checks the lock is still this run's.
    lock.check()?;
    site.store
        .delete(&[site.layout.record_key(version)])
        .await
        .map_err(|source| PruneError::Deleting { doing: format!("deleting the record of {version}"), source })?;
    if let Err(stop) = still_prunable(site, version, lock).await {
        put_record_back(site, record).await?;
        return Err(stop);
    }
    // Pooled files are shared with other releases: only the version's own directory goes here.
    let kept_about = [site.layout.verdict_key(version), crate::route_index::key(&site.layout, version)];
    let files = record
        .files
        .iter()
        .filter(|(_, file)| file.place == Place::Version)
        .map(|(path, _)| site.layout.object_key(version, path));
    let keys: Vec<String> = kept_about.into_iter().chain(files).collect();
    site.store
        .delete(&keys)
        .await
        .map_err(|source| PruneError::Deleting { doing: format!("deleting the files of {version}"), source })?;
    Ok(())
}

/// When the alias of `pr` names one of the previews just `deleted`, points it at the newest
/// preview of `pr` among `linkable` (the releases left whose smoke test did not fail and that no
/// guard refused, oldest first), or deletes it when none is: an expired preview never takes the
/// link of a newer one with it, nor hands it to a build that failed its smoke test.
async fn relink_alias(
    site: &Site,
    pr: PullRequest,
    linkable: &[&ReleaseRecord],
    deleted: &[String],
    lock: &DeployLock,
) -> Result<(), PruneError> {
    let Some(named) = site.aliases.read(pr).await? else { return Ok(()) };
    if !deleted.contains(&named) {
        return Ok(());
    }
    let newest =
        linkable.iter().rev().map(|r| r.version.as_str()).find(|v| crate::pull_request::preview_of(v) == Some(pr));
    lock.check()?;
    match newest {
        Some(version) => site.aliases.write(pr, version).await?,
        None => site.aliases.delete(pr).await?,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn promoted(version: &str, minutes_ago: Option<i64>, now: DateTime<Utc>) -> Promotion {
        let at = minutes_ago.map(|m| now - chrono::Duration::minutes(m));
        Promotion { version: version.to_owned(), at, ..Promotion::default() }
    }

    #[test]
    fn a_version_was_live_until_the_next_promotion() {
        let now = Utc::now();
        let history = [
            promoted("1", Some(300), now),
            promoted("2", Some(200), now),
            promoted("3", None, now),
            promoted("4", Some(100), now),
            promoted("5", Some(10), now),
        ];
        let since = |minutes| live_since(&history, now - chrono::Duration::minutes(minutes));
        // 2 was live until 3 went live at an unknown time: counted as recent, like 3 itself.
        assert_eq!(since(60), HashSet::from(["2", "4", "5"]));
        assert_eq!(since(150), HashSet::from(["2", "3", "4", "5"]));
        assert_eq!(since(250), HashSet::from(["1", "2", "3", "4", "5"]));
        assert_eq!(since(0), HashSet::from(["2", "5"]), "the last one is live now");
        assert!(live_since(&[], now).is_empty());
    }
}
