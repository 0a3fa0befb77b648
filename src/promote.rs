//! Promote: under the deploy lock, check every guard, then flip the pointer. Rollback is the same
//! flip, allowed to go to an older version.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::time::Duration;

use crate::backend::Site;
use crate::lock::{DeployLock, LockError};
use crate::outcome::{Guard, Overtaking, PutBack, Refusal};
use crate::pointer::{PointerError, Promotion, ROLLED_BACK};
use crate::printable::printable;
use crate::release::{self, RecordError, ReleaseRecord, RunInfo, read_record};
use crate::store::StoreError;
use crate::version;

/// Which way a promotion may move.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// Only to a version newer than the active one.
    Forward,
    /// To any recorded version, older ones included.
    Rollback,
}

/// What to promote and what the run believes is live.
#[derive(Debug, Clone)]
pub struct PromoteRequest<'a> {
    pub version: &'a str,
    pub direction: Direction,
    /// The active version when the run started; promotion is refused if a rollback changed it since.
    pub expected_active: Option<Option<String>>,
    pub lock_lease: Duration,
    pub run: &'a RunInfo,
    /// Replace a pointer value that is not a release of this site instead of refusing.
    pub take_over_pointer: bool,
    pub dry_run: bool,
}

/// Why a promotion stopped.
#[derive(Debug, thiserror::Error)]
pub enum PromoteError {
    /// A guard refused (exit 4); nothing was changed.
    #[error(transparent)]
    Refused(#[from] Refusal),
    #[error(transparent)]
    Pointer(#[from] PointerError),
    /// The pointer write failed; `doing` says which (the flip, or putting a version back).
    #[error("{doing}")]
    Write {
        doing: String,
        #[source]
        source: PointerError,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
    #[error("listing release {version}")]
    Listing {
        version: String,
        #[source]
        source: StoreError,
    },
    #[error(transparent)]
    Lock(LockError),
}

/// A deploy lock held by another run stays a refusal.
impl From<LockError> for PromoteError {
    fn from(err: LockError) -> Self {
        match err {
            LockError::Refused(refusal) => PromoteError::Refused(refusal),
            other => PromoteError::Lock(other),
        }
    }
}

/// What the pointer holds, as far as this site's releases go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Active {
    None,
    /// A version this site recorded.
    Known(String),
    /// A value cutover did not write: not a version, a preview, or one this site has no record of.
    Foreign(String),
}

impl Active {
    /// Reads the pointer and tells a recorded release from a value someone else wrote.
    pub async fn read(site: &Site) -> Result<Active, PromoteError> {
        Ok(Active::read_with_record(site).await?.0)
    }

    /// [`Active::read`], with the live release's record the test read: staging takes what it can
    /// copy from that record, so a run reads it once.
    pub async fn read_with_record(site: &Site) -> Result<(Active, Option<ReleaseRecord>), PromoteError> {
        Ok(Active::recorded(site, site.pointer.read().await?).await?)
    }

    /// What a value the pointer read holds: the one test of a pointer value, which promote's
    /// guards and `doctor` both apply.
    pub async fn of(site: &Site, value: Option<String>) -> Result<Active, RecordError> {
        Ok(Active::recorded(site, value).await?.0)
    }

    /// [`Active::of`], with the record of a known value.
    async fn recorded(site: &Site, value: Option<String>) -> Result<(Active, Option<ReleaseRecord>), RecordError> {
        let Some(value) = value else { return Ok((Active::None, None)) };
        // A preview never goes live by cutover: one in the pointer was set by hand.
        let releasable = version::is_valid(&value) && !crate::pull_request::never_live(&value);
        let record = if releasable { read_record(site, &site.layout.record_key(&value)).await? } else { None };
        Ok(match record {
            Some(record) => (Active::Known(value), Some(record)),
            None => (Active::Foreign(value), None),
        })
    }

    /// The live release before a promotion: a foreign value is refused, unless `take_over`
    /// says to replace it, when it counts as no release.
    pub fn before_promotion(self, site: &Site, take_over: bool) -> Result<Option<String>, Refusal> {
        match self {
            Active::None => Ok(None),
            Active::Known(version) => Ok(Some(version)),
            Active::Foreign(value) if take_over => {
                crate::say!("taking over {}: it held {value:?}, not a release of this site", site.pointer.describe());
                Ok(None)
            }
            Active::Foreign(value) => Err(Guard::ForeignPointer { pointer: site.pointer.describe(), value }.into()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PromoteReport {
    pub version: String,
    /// The live release the guards weighed (a value taken over counts as none).
    pub previous: Option<String>,
    /// What the pointer held before, printable: `previous`, or the value taken over. The
    /// `previous-version` output and the promotion's note.
    pub replaced: Option<String>,
    pub promoted: bool,
    pub invalidation_id: Option<String>,
    /// The flip landed (this run's, or an earlier one's whose invalidation is sent again), but
    /// the invalidation failed: why.
    pub invalidation_failed: Option<String>,
}

/// Flips the pointer to `request.version` if every guard passes; a refusal changes nothing.
pub async fn promote(site: &Site, request: &PromoteRequest<'_>) -> Result<PromoteReport, PromoteError> {
    if request.dry_run {
        let report = check_guards(site, request).await?.report;
        return Ok(PromoteReport { promoted: false, ..report });
    }
    let lock = DeployLock::acquire(site, request.lock_lease, request.run.run_url.as_deref()).await?;
    let result = flip(site, request, &lock).await;
    let released = lock.release().await;
    let (report, flipped) = result?;
    released?;
    if let Some(flipped) = flipped {
        verify_flip(site, request, &report, &flipped).await?;
    }
    Ok(report)
}

/// What the guards saw: the report, and the last promotion logged when the pointer was read.
struct Guarded {
    report: PromoteReport,
    /// Only promotions logged after it can have landed in between (none: the history was empty).
    seen: Option<Promotion>,
}

/// A flip this run made: the note it logged, and the last promotion logged before it read the
/// pointer.
struct Flip {
    note: String,
    seen: Option<Promotion>,
}

/// Checks and flips; returns the report and, if it flipped, what the read-back needs.
async fn flip(
    site: &Site,
    request: &PromoteRequest<'_>,
    lock: &DeployLock,
) -> Result<(PromoteReport, Option<Flip>), PromoteError> {
    let Guarded { mut report, seen } = check_guards(site, request).await?;
    if !report.promoted {
        if report.previous.as_deref() == Some(request.version) {
            lock.check()?;
            let finished = site.pointer.finish_flip(request.version).await?;
            report.invalidation_id = finished.invalidation_id;
            report.invalidation_failed = finished.invalidation_failed;
        }
        return Ok((report, None));
    }
    let note = note(request.direction, request.run.run_url.as_deref(), report.replaced.as_deref());
    lock.check()?;
    let flipped = site.pointer.write(request.version, &note).await.map_err(|source| PromoteError::Write {
        doing: format!("flipping {} to {}", site.pointer.describe(), request.version),
        source,
    })?;
    report.invalidation_id = flipped.invalidation_id;
    report.invalidation_failed = flipped.invalidation_failed;
    Ok((report, Some(Flip { note, seen })))
}

/// The read-back after the flip. This run's write may have landed late (the run paused, or the
/// write delayed, past the lock's lease), so what other runs did meanwhile is checked: the version
/// made live must still have its record (a prune that took the lapsed lock may have deleted it),
/// and a forward promotion must not have undone a newer version or a rollback that landed in
/// between: logged after the last promotion this run saw when it read the pointer (one logged
/// before it, such as a rollback before the pointer was set to the placeholder `-` by hand or by a
/// stack update, was there when the guards passed). A pointer has no compare-and-swap (SSM), so this is checked after the write; if it
/// fails, the run takes the lock again and, if its own write is still the last, puts back what was
/// live before it; either way the run is refused. A read-back that cannot run leaves the flip
/// standing, reported, with a warning: it landed, and exit 1 would say nothing live changed.
async fn verify_flip(
    site: &Site,
    request: &PromoteRequest<'_>,
    report: &PromoteReport,
    flipped: &Flip,
) -> Result<(), PromoteError> {
    let found = match read_back(site, request, report, flipped).await {
        Ok(found) => found,
        Err(e) => {
            crate::say!(
                "warning: {} is live, but the check after the flip could not run, so a prune or promotion racing it is not ruled out: {:#}",
                request.version,
                anyhow::Error::from(e)
            );
            return Ok(());
        }
    };
    let Some((by, restore)) = found else { return Ok(()) };
    let put_back = put_back(site, request, &flipped.note, &by, restore).await?;
    Err(Refusal(Guard::Overtaken { version: request.version.to_owned(), by, put_back }).into())
}

/// Whether this run's flip must be undone: what overtook it, and the value to put back (none:
/// nothing was live before it).
async fn read_back(
    site: &Site,
    request: &PromoteRequest<'_>,
    report: &PromoteReport,
    flipped: &Flip,
) -> Result<Option<(Overtaking, Option<String>)>, PromoteError> {
    if read_record(site, &site.layout.record_key(request.version)).await?.is_none() {
        return Ok(Some((Overtaking::Pruned, report.previous.clone())));
    }
    if request.direction != Direction::Forward {
        return Ok(None);
    }
    let ours = |p: &Promotion| p.version == request.version && p.note == flipped.note;
    let history = site.pointer.history().await?;
    let Some(at) = history.iter().rposition(ours) else { return Ok(None) };
    // The first entry this run had not seen; all of them if the one it saw is gone (trimmed).
    let unseen = match &flipped.seen {
        None => 0,
        Some(seen) => history[..at].iter().rposition(|p| p == seen).map_or(0, |i| i + 1),
    };
    let Some(between) = at.checked_sub(1).filter(|i| *i >= unseen).map(|i| history[i].clone()) else {
        return Ok(None);
    };
    if Some(&between.version) == report.previous.as_ref() || between.version == request.version {
        return Ok(None);
    }
    let by = if between.is_rollback() {
        Overtaking::RolledBack { between: between.version.clone() }
    } else if release::compare(site, request.version, &between.version).await? == Ordering::Less {
        Overtaking::Promoted { between: between.version.clone() }
    } else {
        return Ok(None);
    };
    Ok(Some((by, Some(between.version))))
}

/// Puts `restore` back under a fresh lock, if this run's write is still the last.
async fn put_back(
    site: &Site,
    request: &PromoteRequest<'_>,
    note: &str,
    by: &Overtaking,
    restore: Option<String>,
) -> Result<PutBack, PromoteError> {
    let Some(restore) = restore else { return Ok(PutBack::NothingWasLive) };
    let lock = DeployLock::acquire(site, request.lock_lease, request.run.run_url.as_deref()).await?;
    let repaired = async {
        // Only this run's write is undone: a promotion made since stands.
        let ours = |p: &Promotion| p.version == request.version && p.note == note;
        if !site.pointer.history().await?.last().is_some_and(ours) {
            return Ok(PutBack::MovedOn);
        }
        lock.check()?;
        // Logged as a rollback, so the rollback target is what it was before this run's version.
        let run = request.run.run_url.as_deref().unwrap_or("cutover");
        let logged = format!("{ROLLED_BACK} by {run} from {}: {}", request.version, by.logged());
        site.pointer
            .write(&restore, &logged)
            .await
            .map_err(|source| PromoteError::Write { doing: format!("putting {restore} back"), source })?;
        crate::say!("{}: put {restore} back", by.describe(request.version));
        Ok::<_, PromoteError>(PutBack::Done(restore))
    }
    .await;
    lock.release().await?;
    repaired
}

/// How reports show an empty pointer value (an origin path set to nothing): an empty
/// `previous-version` would read as "nothing was live".
const EMPTY_VALUE: &str = "(empty)";

/// A pointer value as the report, the log and the note show it.
fn shown(value: &str) -> String {
    if value.is_empty() { EMPTY_VALUE.to_owned() } else { printable(value) }
}

/// The note a promotion is logged with: which way, by which run, from which version.
fn note(direction: Direction, run_url: Option<&str>, from: Option<&str>) -> String {
    let verb = match direction {
        Direction::Forward => "promoted",
        Direction::Rollback => ROLLED_BACK,
    };
    format!("{verb} by {} from {}", run_url.unwrap_or("cutover"), from.unwrap_or("nothing"))
}

/// Checks the guards; `promoted` in the report says whether a flip is due.
async fn check_guards(site: &Site, request: &PromoteRequest<'_>) -> Result<Guarded, PromoteError> {
    let version = request.version;
    if crate::pull_request::never_live(version) {
        return Err(Refusal(Guard::Preview { version: version.to_owned() }).into());
    }
    complete_record(site, version).await?;
    // Read before the pointer: a flip landing between the two reads is then unseen, and the
    // read-back weighs it.
    let seen = site.pointer.history().await?.pop();
    let read = Active::read(site).await?;
    let replaced = match &read {
        Active::None => None,
        Active::Known(value) | Active::Foreign(value) => Some(shown(value)),
    };
    let active = read.before_promotion(site, request.take_over_pointer)?;
    if let Some(expected) = &request.expected_active
        && expected != &active
    {
        // A forward deploy that raced this run is superseded if this version is newer (the order
        // guard below decides); a rollback this run did not see is never undone.
        let history = site.pointer.history().await?;
        let rolled_back = history.last().is_some_and(|p| Some(&p.version) == active.as_ref() && p.is_rollback());
        if rolled_back || active.is_none() {
            let guard = Guard::RolledBackMeanwhile { expected: expected.clone(), active: active.clone() };
            return Err(Refusal(guard).into());
        }
    }
    let report = |promoted| Guarded {
        report: PromoteReport {
            version: version.to_owned(),
            previous: active.clone(),
            replaced: replaced.clone(),
            promoted,
            invalidation_id: None,
            invalidation_failed: None,
        },
        seen: seen.clone(),
    };
    let Some(current) = active.as_deref() else { return Ok(report(true)) };
    if current == version {
        return Ok(report(false));
    }
    if request.direction == Direction::Forward && release::compare(site, version, current).await? == Ordering::Less {
        return Err(Refusal(Guard::Older { version: version.to_owned(), active: current.to_owned() }).into());
    }
    Ok(report(true))
}

/// The release record of `version`, once every file it lists is in the store with its content
/// (the listed ETag is the recorded MD5, or the recorded multipart ETag): the version's directory
/// and, when the release has fingerprinted files, the shared pool, each listed once.
pub(crate) async fn complete_record(site: &Site, version: &str) -> Result<ReleaseRecord, PromoteError> {
    let Some(record) = read_record(site, &site.layout.record_key(version)).await? else {
        return Err(Refusal(Guard::NotStaged { version: version.to_owned(), store: site.store.describe() }).into());
    };
    let mut dirs = vec![site.layout.version_dir(version)];
    if record.pooled().next().is_some() {
        dirs.push(site.layout.shared_dir());
    }
    let mut stored: HashMap<String, String> = HashMap::new();
    for dir in dirs {
        let listed = site
            .store
            .list(&dir)
            .await
            .map_err(|source| PromoteError::Listing { version: version.to_owned(), source })?;
        stored.extend(listed.into_iter().map(|l| (l.key, l.etag)));
    }
    let missing: Vec<&str> = record
        .files
        .iter()
        .filter(|(path, file)| {
            !stored.get(&file.key(&site.layout, version, path)).is_some_and(|etag| file.matches_etag(etag))
        })
        .map(|(path, _)| path.as_str())
        .collect();
    if let Some(first) = missing.first() {
        let guard =
            Guard::Incomplete { version: version.to_owned(), missing: missing.len(), first: (*first).to_owned() };
        return Err(Refusal(guard).into());
    }
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notes_say_which_way_a_promotion_went() {
        let promotion = |note: String| Promotion { version: "1".into(), note, ..Promotion::default() };
        let forward = note(Direction::Forward, Some("https://ci/run/1"), Some("41"));
        assert_eq!(forward, "promoted by https://ci/run/1 from 41");
        assert!(!promotion(forward).is_rollback());
        let back = note(Direction::Rollback, None, None);
        assert_eq!(back, "rolled back by cutover from nothing");
        assert!(promotion(back).is_rollback());
    }
}
