//! Closing a pull request's previews: its alias goes first, so the stable link stops naming a
//! release being deleted, then each of its preview releases, record first (as prune deletes), then
//! the pool objects no remaining release uses (prune's sweep), under the deploy lock. A preview that is live or the rollback target (neither can be made so
//! by cutover, but a pointer can be written by hand) is never touched. And moving the alias, also
//! under the lock, only forward in the one release order `status` lists (previews by record time):
//! a re-run of an older push, whose version keeps its record, leaves it naming the newer preview;
//! and never after the close, which leaves a record
//! (`_cutover/previews/pr-<n>.json`) that a preview still running or re-run finds. A reopening is
//! recorded there too, so a re-run of a close job from before it deletes nothing.

use std::cmp::Ordering;
use std::collections::HashSet;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use crate::backend::Site;
use crate::lock::DeployLock;
use crate::outcome::{Guard, Refusal};
use crate::pointer::PointerError;
use crate::pointer::rollback_target;
use crate::promote::{PromoteError, complete_record};
use crate::prune::{PruneError, delete_release, sweep_pool};
use crate::pull_request::{Event, PullRequest, preview_of};
use crate::release::{Layout, all_records, compare};
use crate::store::{Condition, json_meta};

/// What closing a pull request deleted, and what it left because it is live or the one before.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CloseReport {
    pub pull_request: u64,
    pub alias_deleted: bool,
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
    /// Pool objects (their paths) no remaining release uses, swept as prune sweeps them.
    pub pool_deleted: Vec<String>,
    /// When the pull request was reopened, if after the close this run is for (a re-run of an old
    /// close job): nothing was done.
    pub stale: Option<String>,
    /// Nothing was deleted: the report says what the close would delete.
    pub dry_run: bool,
}

/// Deletes the alias and every preview release of `pr`, then runs `retire` (marking the GitHub
/// deployments inactive) still under the deploy lock, so a push racing the close makes its GitHub
/// calls before it or, finding no alias, none; a dry run only reports.
pub async fn close(
    site: &Site,
    pr: PullRequest,
    event: &Event,
    lock_lease: Duration,
    run_url: Option<&str>,
    dry_run: bool,
    retire: impl AsyncFnOnce(),
) -> Result<CloseReport, PruneError> {
    let mut report = CloseReport { pull_request: pr.number(), dry_run, ..CloseReport::default() };
    // A re-run of a close job from before a reopening (GitHub's clock on both) would delete the
    // open pull request's previews: it does nothing.
    let record = read_closed(site, pr).await?;
    if let Some((closed_at, reopened)) = event.closed_at.zip(record.and_then(|r| r.reopened()))
        && reopened > closed_at
    {
        report.stale = Some(reopened.to_rfc3339());
        return Ok(report);
    }
    let previews: Vec<_> =
        all_records(site).await?.into_iter().filter(|r| preview_of(&r.version) == Some(pr)).collect();
    report.alias_deleted = site.aliases.read(pr).await?.is_some();
    if dry_run {
        report.deleted = previews.into_iter().map(|r| r.version).collect();
        report.pool_deleted = sweep_pool(site, None, &report.deleted, Utc::now()).await?;
        return Ok(report);
    }
    let lock = DeployLock::acquire(site, lock_lease, run_url).await?;
    let result = async {
        // GitHub's own time of the close when this run is for its event, so a reopening it sent
        // later is told from a re-run of an earlier one on the same clock.
        let closed = Closed { closed_at: Some(event.closed_at.unwrap_or_else(Utc::now)), reopened_at: None };
        let body = serde_json::to_vec(&closed).expect("a closed record serialises");
        let key = closed_key(&site.layout, pr);
        site.store.put(&key, Bytes::from(body), &json_meta(), Condition::Always).await.map_err(PointerError::from)?;
        if report.alias_deleted {
            site.aliases.delete(pr).await?;
        }
        let history = site.pointer.history().await?;
        let active = site.pointer.read().await?;
        let protected: HashSet<&str> = active.as_deref().into_iter().chain(rollback_target(&history)).collect();
        for record in &previews {
            if protected.contains(record.version.as_str()) {
                report.kept.push(record.version.clone());
                continue;
            }
            delete_release(site, record, &lock).await?;
            report.deleted.push(record.version.clone());
        }
        report.pool_deleted = sweep_pool(site, Some(&lock), &report.deleted, Utc::now()).await?;
        retire().await;
        Ok::<_, PruneError>(())
    }
    .await;
    lock.release().await?;
    result.map(|()| report)
}

/// Points the alias of `pr` at its preview `version` unless it names a newer preview of `pr` in
/// the release order `status` lists (previews by record time: a re-run of a push keeps its
/// version's record and so its place), which it then keeps and returns; a preview with a recorded
/// file missing (promote's completeness guard) is refused. Read, compare, check and write hold the
/// deploy lock, so two runs finishing together cannot both write. A value that is no preview of `pr` is refused unless
/// `take_over` (it was not written by cutover, or names another pull request's preview). After a
/// close only a reopening links: GitHub's `reopened` event sent after the close (`reopened_at`,
/// see [`Event`]) or `take_over`; it records the reopening in the close record.
pub async fn point_alias(
    site: &Site,
    pr: PullRequest,
    version: &str,
    lock_lease: Duration,
    run_url: Option<&str>,
    take_over: bool,
    reopened_at: Option<DateTime<Utc>>,
) -> Result<Option<String>, PruneError> {
    let lock = DeployLock::acquire(site, lock_lease, run_url).await?;
    let result = async {
        let key = closed_key(&site.layout, pr);
        let mut reopening = None;
        if let Some(closed) = read_closed(site, pr).await?.filter(|c| c.reopened().is_none()) {
            let after = closed.closed_at;
            let reopens = take_over || reopened_at.zip(after).is_some_and(|(reopened, closed)| reopened > closed);
            if !reopens {
                let closed_at = after.map_or_else(|| "an unknown time".to_owned(), |at| at.to_rfc3339());
                return Err(Refusal(Guard::Closed { number: pr.number(), closed_at }).into());
            }
            // GitHub's time of the reopening, or this run's (`take_over`) when that is not after it.
            let at = reopened_at.filter(|r| after.is_none_or(|c| *r > c)).unwrap_or_else(Utc::now);
            reopening = Some(Closed { reopened_at: Some(at), ..closed });
        }
        let newer = match site.aliases.read(pr).await? {
            Some(named) if preview_of(&named) == Some(pr) => {
                (compare(site, &named, version).await? == Ordering::Greater).then_some(named)
            }
            Some(value) if !take_over => {
                return Err(Refusal(Guard::ForeignAlias { alias: pr.alias(), value }).into());
            }
            _ => None,
        };
        if newer.is_none() {
            // A prune or close since this run listed the pool may have deleted a file the preview
            // found there and did not upload: the link must not show a release with a hole.
            complete_record(site, version).await.map_err(|e| match e {
                PromoteError::Refused(refusal) => PruneError::Refused(refusal),
                source => PruneError::Checking { version: version.to_owned(), source },
            })?;
            lock.check()?;
            site.aliases.write(pr, version).await?;
            // The pull request was reopened: later pushes link again, and a re-run of the close
            // from before the reopening finds it.
            if let Some(reopened) = reopening {
                let body = serde_json::to_vec(&reopened).expect("a closed record serialises");
                site.store
                    .put(&key, Bytes::from(body), &json_meta(), Condition::Always)
                    .await
                    .map_err(PointerError::from)?;
            }
        }
        Ok(newer)
    }
    .await;
    lock.release().await?;
    result
}

/// Runs `announce` (a preview's GitHub calls) under the deploy lock, taken again after the alias
/// moved, while the alias of `pr` still names `version`: so racing runs' calls never interleave,
/// and only the run whose preview the link shows makes them. `None`, and no call, when the alias
/// names another preview (a newer push linked since) or none (the pull request was closed).
pub async fn while_linked<T>(
    site: &Site,
    pr: PullRequest,
    version: &str,
    lock_lease: Duration,
    run_url: Option<&str>,
    announce: impl AsyncFnOnce() -> T,
) -> Result<Option<T>, PruneError> {
    let lock = DeployLock::acquire(site, lock_lease, run_url).await?;
    let result = async {
        if site.aliases.read(pr).await?.as_deref() != Some(version) {
            return Ok(None);
        }
        Ok(Some(announce().await))
    }
    .await;
    lock.release().await?;
    result
}

/// The record `preview --close` leaves: previews of the pull request make no link after it, until
/// a reopening, which the record then keeps too.
#[derive(Default, serde::Serialize, serde::Deserialize)]
struct Closed {
    #[serde(default)]
    closed_at: Option<DateTime<Utc>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reopened_at: Option<DateTime<Utc>>,
}

impl Closed {
    /// When the pull request was reopened after the close; `None` while it stays closed.
    fn reopened(&self) -> Option<DateTime<Utc>> {
        let reopened = self.reopened_at?;
        self.closed_at.is_none_or(|closed| reopened > closed).then_some(reopened)
    }
}

/// The close record of `pr`; one that cannot be read as such counts as closed at an unknown time.
async fn read_closed(site: &Site, pr: PullRequest) -> Result<Option<Closed>, PruneError> {
    let fetched = site.store.get(&closed_key(&site.layout, pr)).await.map_err(PointerError::from)?;
    Ok(fetched.map(|c| serde_json::from_slice(&c.body).unwrap_or_default()))
}

/// `<prefix>/_cutover/previews/pr-<n>.json`, where the close of pull request `pr` is recorded.
pub fn closed_key(layout: &Layout, pr: PullRequest) -> String {
    format!("{}previews/{}.json", layout.cutover_dir(), pr.alias())
}

impl CloseReport {
    /// The lines a person reads.
    pub fn render(&self) -> String {
        if let Some(reopened) = &self.stale {
            return format!(
                "pull request {}: reopened at {reopened}, after this close: nothing deleted\n",
                self.pull_request
            );
        }
        let alias = match (self.alias_deleted, self.dry_run) {
            (false, _) => "none",
            (true, false) => "deleted",
            (true, true) => "would be deleted",
        };
        let (deleted, kept, swept) = if self.dry_run {
            ("would delete", "would keep", "pool objects it would delete")
        } else {
            ("deleted", "kept", "pool objects deleted")
        };
        format!(
            "pull request {}: alias pr-{} {alias}\n{deleted}: {:?}\n{kept}: {:?}\n{swept}: {}\n",
            self.pull_request,
            self.pull_request,
            self.deleted,
            self.kept,
            self.pool_deleted.len()
        )
    }
}
