//! Stage: put every file of the build under `<prefix>/<version>/`, or, for a fingerprinted file
//! (`shared-assets`), into the site's pool `<prefix>/_shared/` unless it is there already; then
//! write the release record.
//!
//! Three phases, one module each: [`decide`] walks the build and finds, for each file, whether a
//! killed earlier run already stored it, whether it can be copied server-side from the previous
//! release (same bytes at the same path, and large enough for a copy to pay: [`COPY_MIN_BYTES`]),
//! or whether it is uploaded; [`transfer`] hashes and writes the files, concurrently and with a
//! bound, those the pool's listing holds first so that a changed one refuses before any write;
//! [`record`] writes the record last and create-only, so a release either exists whole or
//! not at all, and a recorded release is never overwritten.

use std::path::Path;
use std::time::Duration;

use crate::backend::Site;
use crate::inputs::InputError;
use crate::lock::{Claimed, LockError, StagingClaim};
use crate::outcome::Refusal;
use crate::release::{RecordError, RunInfo, read_record};
use crate::rules::CacheRules;
use crate::shared_assets::SharedAssets;
use crate::site::WalkOptions;

mod decide;
mod record;
mod transfer;

pub use decide::Previous;
use decide::Target;
pub use transfer::{FileCause, FileError, FileFailures};

/// Unchanged files at least this large are copied server-side; smaller ones are sent again.
///
/// Measured against moto 5.2.5 (release build, 2 cores; `cutover stage` of 200 files per size,
/// then of the same files as the next version): per file, 64 KiB took 5.9 ms to upload and 7.6 ms
/// to copy, 256 KiB 6.4 ms and 7.5 ms, 1 MiB 9.7 ms and 8.0 ms, 5 MiB 40 ms and 27 ms. A copy costs
/// a request like an upload does, so it only pays once the bytes it saves outweigh its extra
/// server-side work.
pub const COPY_MIN_BYTES: u64 = 512 * 1024;

/// What to stage, and the little of the plan staging needs.
#[derive(Debug, Clone)]
pub struct StageRequest<'a> {
    pub version: &'a str,
    /// The live release, to copy unchanged files from.
    pub previous: Option<Previous>,
    /// The build directory.
    pub dist_dir: &'a Path,
    /// What the walk of the build leaves out.
    pub walk: WalkOptions,
    pub cache_rules: &'a CacheRules,
    /// Which files are fingerprinted: stored once in the pool, cached immutable.
    pub shared: &'a SharedAssets,
    /// Files hashed and written at once.
    pub concurrency: usize,
    pub lock_lease: Duration,
    /// Recorded with the release; its URL names the holder of the staging claim.
    pub run: &'a RunInfo,
    /// Hash and decide, write nothing.
    pub dry_run: bool,
}

/// What staging did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageReport {
    pub files: usize,
    pub uploaded: usize,
    pub copied: usize,
    /// Files a previous, interrupted run of this version had already stored.
    pub resumed: usize,
    /// Fingerprinted files the pool already held (another release's, or a killed run's).
    pub shared: usize,
    pub bytes_uploaded: u64,
    pub total_bytes: u64,
    /// The version was recorded before this run, with the same content.
    pub already_recorded: bool,
}

/// Why staging stopped.
#[derive(Debug, thiserror::Error)]
pub enum StageError {
    /// The build or the prefix cannot be released (exit 2).
    #[error(transparent)]
    Input(#[from] InputError),
    /// A guard refused (exit 4): another build of a recorded version, or another run's write.
    #[error(transparent)]
    Refused(#[from] Refusal),
    /// Files that could not be staged, reported together.
    #[error(transparent)]
    Files(#[from] FileFailures),
    /// The store, read or written around the files; `doing` says what staging was doing.
    #[error("{doing}")]
    Store {
        doing: String,
        #[source]
        source: crate::store::StoreError,
    },
    #[error(transparent)]
    Record(#[from] RecordError),
    /// The staging claim could not be taken, kept or given back.
    #[error(transparent)]
    Claim(#[from] LockError),
    /// A record read a moment ago is gone: someone deletes releases while this run stages.
    #[error("release record vanished while {0}")]
    Vanished(&'static str),
    /// The walk of the build stopped on a panic or a cancelled task.
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
}

/// Stages `request.version` from `request.dist_dir`.
///
/// Files are written only under the version's staging claim, and never once the version is
/// recorded: a run that finds the version recorded, before or after waiting for another run
/// staging it, only checks that its build is the recorded content.
pub async fn stage(site: &Site, request: &StageRequest<'_>) -> Result<StageReport, StageError> {
    let files = decide::files(site, request).await?;
    decide::refuse_nested_sites(site, request.version).await?;
    let record_key = site.layout.record_key(request.version);
    if request.dry_run {
        if read_record(site, &record_key).await?.is_some() {
            return record::check_recorded(site, request, files).await;
        }
        let target = Target::new(site, request, None).await?;
        return Ok(transfer::place_all(site, request, files, target).await?.report);
    }
    let claim =
        match StagingClaim::acquire(site, request.version, request.lock_lease, request.run.run_url.as_deref()).await? {
            Claimed::Recorded => return record::check_recorded(site, request, files).await,
            Claimed::Writer(claim) => claim,
        };
    let written = write_release(site, request, files, &claim).await;
    let released = claim.release().await;
    let report = written?;
    released?;
    Ok(report)
}

/// Places every file under the held claim, then records the release.
async fn write_release(
    site: &Site,
    request: &StageRequest<'_>,
    files: Vec<crate::site::SiteFile>,
    claim: &StagingClaim,
) -> Result<StageReport, StageError> {
    let target = Target::new(site, request, Some(claim.fence())).await?;
    let present: Vec<String> = target.present.keys().cloned().collect();
    let placed = transfer::place_all(site, request, files, target).await?;
    record::record(site, request, claim, present, placed).await
}
