//! Closing a pull request's previews: its alias goes first, so the stable link stops naming a
//! release being deleted, then each of its preview releases, record first (as prune deletes),
//! under the deploy lock. A preview that is live or the rollback target (neither can be made so
//! by cutover, but a pointer can be written by hand) is never touched.

use std::collections::HashSet;
use std::time::Duration;

use crate::backend::Site;
use crate::lock::DeployLock;
use crate::pointer::rollback_target;
use crate::prune::{PruneError, delete_release};
use crate::pull_request::{PullRequest, preview_of};
use crate::release::all_records;

/// What closing a pull request deleted, and what it left because it is live or the one before.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct CloseReport {
    pub pull_request: u64,
    pub alias_deleted: bool,
    pub deleted: Vec<String>,
    pub kept: Vec<String>,
}

/// Deletes the alias and every preview release of `pr`; a dry run only reports.
pub async fn close(
    site: &Site,
    pr: PullRequest,
    lock_lease: Duration,
    run_url: Option<&str>,
    dry_run: bool,
) -> Result<CloseReport, PruneError> {
    let mut report = CloseReport { pull_request: pr.number(), ..CloseReport::default() };
    let previews: Vec<_> =
        all_records(site).await?.into_iter().filter(|r| preview_of(&r.version) == Some(pr)).collect();
    report.alias_deleted = site.aliases.read(pr).await?.is_some();
    if dry_run {
        report.deleted = previews.into_iter().map(|r| r.version).collect();
        return Ok(report);
    }
    let lock = DeployLock::acquire(site, lock_lease, run_url).await?;
    let result = async {
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
        Ok::<_, PruneError>(())
    }
    .await;
    lock.release().await?;
    result.map(|()| report)
}

impl CloseReport {
    /// The lines a person reads.
    pub fn render(&self) -> String {
        let alias = if self.alias_deleted { "deleted" } else { "none" };
        format!(
            "pull request {}: alias pr-{} {alias}\ndeleted: {:?}\nkept: {:?}\n",
            self.pull_request, self.pull_request, self.deleted, self.kept
        )
    }
}
