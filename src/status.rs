//! Status: every release with its size and age, which one is live, and the promotion history.

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::backend::Site;
use crate::inputs::{Backend, InputError, Plan};
use crate::pointer::Promotion;
use crate::pointer::rollback_target;
use crate::printable::printable;
use crate::progress::human_bytes;
use crate::prune::{Kept, Retention};
use crate::release::{Verdict, all_records};

#[derive(Debug, Clone, Serialize)]
pub struct ReleaseSummary {
    pub version: String,
    pub files: usize,
    pub bytes: u64,
    pub created_at: DateTime<Utc>,
    pub active: bool,
    /// Where `rollback` without `to` goes.
    pub rollback_target: bool,
    /// Why the release never went live, if a run found out (smoke failed, or refused).
    pub verdict: Option<Verdict>,
    pub run_url: Option<String>,
    /// Why prune keeps it (empty: the next prune deletes it).
    pub kept: Vec<Kept>,
}

#[derive(Debug, Clone, Serialize)]
pub struct Status {
    pub active: Option<String>,
    /// Oldest first.
    pub releases: Vec<ReleaseSummary>,
    /// Oldest first.
    pub promotions: Vec<Promotion>,
    /// What is wrong with the pointer: a value no release of this site, or one the last promotion
    /// did not make live (a stack update moved the origin path).
    pub warnings: Vec<String>,
}

/// On the embedded store, checks there is one: a missing directory is a wrong `store-dir` (or
/// working directory), not a store without releases.
pub fn require_store(plan: &Plan) -> Result<(), InputError> {
    match &plan.backend {
        Backend::Local { dir } if !dir.is_dir() => Err(InputError::new(
            "store-dir",
            format!(
                "there is no store at {}: nothing was ever staged there; run where the store is or set store-dir",
                dir.display()
            ),
        )),
        _ => Ok(()),
    }
}

/// Why the status could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StatusError {
    #[error(transparent)]
    Pointer(#[from] crate::pointer::PointerError),
    #[error(transparent)]
    Record(#[from] crate::release::RecordError),
}

/// The status, saying why `retention` keeps each release.
pub async fn status(site: &Site, retention: &Retention) -> Result<Status, StatusError> {
    let active = site.pointer.read().await?;
    let promotions = site.pointer.history().await?;
    let target = rollback_target(&promotions).map(str::to_owned);
    let mut verdicts = Verdict::read_all(site).await?;
    let records = all_records(site).await?;
    let reasons = retention.reasons(&records, active.as_deref(), &promotions, Utc::now());
    let releases: Vec<ReleaseSummary> = records
        .into_iter()
        .zip(reasons)
        .map(|(r, kept)| {
            // A verdict stands only while the release has never been live since.
            let verdict = verdicts.remove(&r.version).filter(|_| !promotions.iter().any(|p| p.version == r.version));
            ReleaseSummary {
                files: r.files.len(),
                bytes: r.total_bytes(),
                active: active.as_deref() == Some(r.version.as_str()),
                rollback_target: target.as_deref() == Some(r.version.as_str()),
                verdict,
                version: r.version,
                created_at: r.created_at,
                run_url: r.run.run_url,
                kept,
            }
        })
        .collect();
    let warnings = pointer_warnings(&site.pointer.describe(), active.as_deref(), &releases, &promotions);
    Ok(Status { active, releases, promotions, warnings })
}

/// The pointer disagreeing with the releases or with the promotion history.
fn pointer_warnings(
    pointer: &str,
    active: Option<&str>,
    releases: &[ReleaseSummary],
    promotions: &[Promotion],
) -> Vec<String> {
    if let Some(value) = active
        && (!releases.iter().any(|r| r.active) || crate::pull_request::never_live(value))
    {
        return vec![format!(
            "{pointer} holds {:?}, which is not a release of this site: promote refuses to replace it unless `take-over-pointer` is true",
            printable(value)
        )];
    }
    match promotions.last() {
        Some(last) if active != Some(last.version.as_str()) => {
            let serves = active.map_or_else(|| "no release".to_owned(), |v| format!("version {v}"));
            vec![format!(
                "{pointer} serves {serves}, but the last promotion made {} live (a stack update without LiveVersion, or a value set by hand?); `cutover doctor` names the fix",
                last.version
            )]
        }
        _ => Vec::new(),
    }
}

impl Status {
    /// The report for people.
    pub fn render(&self) -> String {
        let warnings: String = self.warnings.iter().map(|w| format!("warning: {}\n", printable(w))).collect();
        let mut out = format!(
            "{warnings}active: {}\n\nreleases (newest first; * live, < where rollback goes):\n",
            printable(self.active.as_deref().unwrap_or("none"))
        );
        if self.releases.is_empty() {
            out.push_str("  none\n");
        }
        for r in self.releases.iter().rev() {
            let marker = match (r.active, r.rollback_target) {
                (true, _) => "*",
                (false, true) => "<",
                _ => " ",
            };
            let run = r.run_url.as_deref().unwrap_or("");
            let verdict = r.verdict.as_ref().map(|v| format!("  [{}, never live]", v.outcome)).unwrap_or_default();
            let kept = if r.kept.is_empty() {
                "none".to_owned()
            } else {
                r.kept.iter().map(ToString::to_string).collect::<Vec<_>>().join(", ")
            };
            let line = format!(
                "{marker} {:<24} {:>7} files {:>10}  {}  kept: {kept:<24} {run}{verdict}",
                r.version,
                r.files,
                human_bytes(r.bytes),
                r.created_at.format("%Y-%m-%d %H:%M:%S UTC")
            );
            out.push_str(&format!("{}\n", printable(&line)));
        }
        out.push_str("\npromotions (newest first):\n");
        if self.promotions.is_empty() {
            out.push_str("  none\n");
        }
        for p in self.promotions.iter().rev() {
            let at = p.at.map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string()).unwrap_or_default();
            out.push_str(&format!("{}\n", printable(&format!("  {:<24} {at}  {}", p.version, p.note))));
        }
        out
    }
}
