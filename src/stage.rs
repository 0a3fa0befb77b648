//! Stage: put every file of the build under `<prefix>/<version>/`, then write the release record.
//!
//! Each file is hashed and then, concurrently and with a bound: left alone if a killed earlier run
//! already stored it, copied server-side if the previous release holds the same bytes at the same
//! path and the file is large enough for a copy to pay ([`COPY_MIN_BYTES`]), or uploaded. The
//! record is written last and create-only, so a release either exists whole or not at all, and a
//! recorded release is never overwritten.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use bytes::Bytes;
use chrono::Utc;
use futures::StreamExt;

use crate::backend::Site;
use crate::inputs::{Backend, InputError, Plan};
use crate::lock::{Claimed, Fence, StagingClaim};
use crate::outcome::Refusal;
use crate::progress::Progress;
use crate::release::{Layout, MAX_KEY_BYTES, RecordedFile, ReleaseRecord, read_record};
use crate::route_index::{self, RouteIndex};
use crate::rules;
use crate::site::{self, FileDigest, ReadFile, SiteFile};
use crate::store::{Condition, ObjectMeta, StoreError, json_meta};

/// Unchanged files at least this large are copied server-side; smaller ones are sent again.
///
/// Measured against moto 5.2.5 (release build, 2 cores; `cutover stage` of 200 files per size,
/// then of the same files as the next version): per file, 64 KiB took 5.9 ms to upload and 7.6 ms
/// to copy, 256 KiB 6.4 ms and 7.5 ms, 1 MiB 9.7 ms and 8.0 ms, 5 MiB 40 ms and 27 ms. A copy costs
/// a request like an upload does, so it only pays once the bytes it saves outweigh its extra
/// server-side work.
pub const COPY_MIN_BYTES: u64 = 512 * 1024;

/// Errors listed in full when many files fail; the rest are counted.
const ERRORS_SHOWN: usize = 10;

/// What staging did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StageReport {
    pub files: usize,
    pub uploaded: usize,
    pub copied: usize,
    /// Files a previous, interrupted run of this version had already stored.
    pub resumed: usize,
    pub bytes_uploaded: u64,
    pub total_bytes: u64,
    /// The version was recorded before this run, with the same content.
    pub already_recorded: bool,
}

/// How one file gets into the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Action {
    AlreadyThere,
    Copy,
    Upload,
}

/// Stages `version` from `plan.dist_dir`; `previous` is the release to copy unchanged files from.
///
/// Files are written only under the version's staging claim, and never once the version is
/// recorded: a run that finds the version recorded, before or after waiting for another run
/// staging it, only checks that its build is the recorded content.
pub async fn stage(site: &Site, plan: &Plan, version: &str, previous: Option<&str>) -> anyhow::Result<StageReport> {
    let dist = plan.dist_dir.clone();
    let options = site::WalkOptions {
        store_dir: match &plan.backend {
            Backend::Local { dir } => Some(dir.clone()),
            Backend::Aws(_) => None,
        },
        release_secret_files: plan.release_secret_files,
    };
    let walked = tokio::task::spawn_blocking(move || site::walk(&dist, &options))
        .await?
        .map_err(|e| InputError::new("dist-dir", e.to_string()))?;
    if !walked.secrets_skipped.is_empty() {
        crate::say!("warning: {}", site::secrets_warning(&walked.secrets_skipped));
    }
    let files = walked.files;
    let version_dir_bytes = site.layout.version_dir(version).len();
    if let Some((file, bytes)) =
        files.iter().map(|f| (f, version_dir_bytes + f.path.len())).find(|(_, bytes)| *bytes > MAX_KEY_BYTES)
    {
        let problem = format!("{}: its object key would be {bytes} bytes; S3 allows {MAX_KEY_BYTES}", file.path);
        return Err(InputError::new("dist-dir", problem).into());
    }
    refuse_nested_sites(site, version).await?;
    let record_key = site.layout.record_key(version);
    if plan.dry_run {
        if read_record(site, &record_key).await?.is_some() {
            return check_recorded(site, plan, version, files).await;
        }
        let target = Target::new(site, version, previous, None).await?;
        return Ok(place_all(site, plan, version, files, target).await?.report);
    }
    let claim = match StagingClaim::acquire(site, version, plan.lock_lease, plan.run.run_url.as_deref()).await? {
        Claimed::Recorded => return check_recorded(site, plan, version, files).await,
        Claimed::Writer(claim) => claim,
    };
    let written = write_release(site, plan, version, previous, files, &claim).await;
    let released = claim.release().await;
    let report = written?;
    released?;
    Ok(report)
}

/// Prefixes of two sites never nest: a site inside another's prefix could be overwritten by the
/// other's releases and deleted by its prune. Refuses (before anything is written) a prefix inside
/// one that holds releases, and a version whose directory holds another site.
async fn refuse_nested_sites(site: &Site, version: &str) -> anyhow::Result<()> {
    for outer in site.layout.enclosing() {
        let records = site.store.list(&outer.cutover_dir()).await.context("looking for sites around this prefix")?;
        if !records.is_empty() {
            let problem = format!(
                "{:?} lies inside the site at {:?}; prefixes of two sites must not nest",
                site.layout.prefix(),
                outer.prefix()
            );
            return Err(InputError::new("prefix", problem).into());
        }
    }
    let inner = Layout::new(site.layout.version_dir(version).trim_end_matches('/'));
    let inner_site = site.store.list(&inner.cutover_dir()).await.context("looking for a site inside this version")?;
    if !inner_site.is_empty() {
        let problem = format!(
            "version {version} of the site at {:?} would be written into the site at {:?}; prefixes of two sites must not nest",
            site.layout.prefix(),
            inner.prefix()
        );
        return Err(InputError::new("prefix", problem).into());
    }
    Ok(())
}

/// Places every file under the held claim, removes what no file of this build explains (left by
/// an earlier run of the version that never recorded it), then writes the record.
async fn write_release(
    site: &Site,
    plan: &Plan,
    version: &str,
    previous: Option<&str>,
    files: Vec<SiteFile>,
    claim: &StagingClaim,
) -> anyhow::Result<StageReport> {
    let target = Target::new(site, version, previous, Some(claim.fence())).await?;
    let present: Vec<String> = target.present.keys().cloned().collect();
    let Placed { report, record } = place_all(site, plan, version, files, target).await?;
    // A site that began at a nesting prefix while this run staged: the two must not both stand,
    // so this release is not recorded. What it wrote stays: the other site may have taken an
    // identical file into its own release, and deleting it would break that release.
    refuse_nested_sites(site, version).await?;
    let version_dir = site.layout.version_dir(version);
    let stale: Vec<String> = present
        .into_iter()
        .filter(|key| key.strip_prefix(&version_dir).is_none_or(|path| !record.files.contains_key(path)))
        .collect();
    if !stale.is_empty() {
        site.store.delete(&stale).await.context("removing files an earlier, unrecorded run left")?;
    }
    claim.confirm().await?;
    let record_key = site.layout.record_key(version);
    match site.store.put(&record_key, Bytes::from(record.to_json()), &json_meta(), Condition::IfAbsent).await {
        Ok(()) => route_index::write(site, version, &RouteIndex::new(record.files.into_keys())).await.map(|()| report),
        Err(StoreError::PreconditionFailed) => {
            let existing = read_record(site, &record_key).await?.context("release record vanished while writing it")?;
            same_or_refuse(&existing, &record).map(|()| StageReport { already_recorded: true, ..report })
        }
        Err(StoreError::Other(e)) => Err(e.context(format!("writing release record {record_key}"))),
    }
}

/// A recorded version: hashes the build without writing and refuses other content.
async fn check_recorded(site: &Site, plan: &Plan, version: &str, files: Vec<SiteFile>) -> anyhow::Result<StageReport> {
    let record_key = site.layout.record_key(version);
    let existing = read_record(site, &record_key).await?.context("release record vanished while reading it")?;
    let target = Target { writing: None, present: HashMap::new(), reuse: None };
    let Placed { report, record, .. } = place_all(site, plan, version, files, target).await?;
    same_or_refuse(&existing, &record)?;
    // Nothing was written: every file is already in the recorded release.
    Ok(StageReport {
        files: report.files,
        total_bytes: report.total_bytes,
        resumed: report.files,
        already_recorded: true,
        ..StageReport::default()
    })
}

/// What the version's directory holds already, where unchanged files can be copied from, and
/// whether anything is written.
struct Target {
    /// Set when files are written: the staging claim's fence.
    writing: Option<Fence>,
    /// Objects already under the version's prefix: key -> ETag.
    present: HashMap<String, String>,
    reuse: Option<Previous>,
}

impl Target {
    async fn new(site: &Site, version: &str, previous: Option<&str>, writing: Option<Fence>) -> anyhow::Result<Target> {
        let reuse = match previous.filter(|p| *p != version) {
            Some(previous) => {
                let record = read_record(site, &site.layout.record_key(previous)).await?;
                // Only files a copy pays for are looked up; the rest of the record is let go at once.
                let copyable = record.into_iter().flat_map(|r| r.files).filter(|(_, f)| f.size >= COPY_MIN_BYTES);
                Some(Previous {
                    version: previous.to_owned(),
                    copyable: copyable.map(|(path, f)| (path, (f.md5, f.size))).collect(),
                })
            }
            None => None,
        };
        let listed = site.store.list(&site.layout.version_dir(version)).await.context("listing the staged release")?;
        let present = listed.into_iter().map(|l| (l.key, l.etag)).collect();
        Ok(Target { writing, present, reuse })
    }
}

/// What placing the files did: the report and the record describing the build.
struct Placed {
    report: StageReport,
    record: ReleaseRecord,
}

/// Hashes and (when `target.writing`) stores every file, `concurrency` at once.
async fn place_all(
    site: &Site,
    plan: &Plan,
    version: &str,
    files: Vec<SiteFile>,
    target: Target,
) -> anyhow::Result<Placed> {
    let progress = Progress::new("staging", files.len() as u64);
    let jobs = Arc::new(Jobs {
        site: site.clone(),
        dist: plan.dist_dir.clone(),
        version: version.to_owned(),
        rules: plan.cache_rules.clone(),
        present: target.present,
        reuse: target.reuse,
        writing: target.writing,
    });
    let mut placed = futures::stream::iter(files)
        .map(|file| {
            let (jobs, progress) = (Arc::clone(&jobs), &progress);
            async move {
                let result = jobs.place(&file).await.with_context(|| format!("staging {}", file.path));
                if let Ok((_, action, _)) = &result {
                    progress.advance(if *action == Action::Upload { file.size } else { 0 });
                }
                result
            }
        })
        .buffer_unordered(plan.concurrency);
    // Each result goes straight into the record as it arrives: nothing per file is kept twice.
    let mut report = StageReport::default();
    let mut entries = BTreeMap::new();
    let (mut failed, mut failures, mut refused) = (0, Vec::new(), false);
    while let Some(result) = placed.next().await {
        match result {
            Ok((path, action, recorded_file)) => {
                report.files += 1;
                report.total_bytes += recorded_file.size;
                match action {
                    Action::AlreadyThere => report.resumed += 1,
                    Action::Copy => report.copied += 1,
                    Action::Upload => {
                        report.uploaded += 1;
                        report.bytes_uploaded += recorded_file.size;
                    }
                }
                entries.insert(path, recorded_file);
            }
            Err(e) => {
                failed += 1;
                refused |= e.chain().any(|cause| cause.is::<Refusal>());
                if failures.len() < ERRORS_SHOWN {
                    failures.push(format!("{e:#}"));
                }
            }
        }
    }
    drop(placed);
    progress.finish();
    if failed > 0 {
        let mut message = failures.join("\n  ");
        if failed > ERRORS_SHOWN {
            message.push_str(&format!("\n  ... and {} more", failed - ERRORS_SHOWN));
        }
        let problem = format!("{failed} files could not be staged:\n  {message}");
        // Another run writing the same version is a refusal (exit 4), not a failure to retry.
        return Err(if refused { Refusal::new(problem).into() } else { anyhow::anyhow!(problem) });
    }
    let record = ReleaseRecord {
        version: version.to_owned(),
        created_at: Utc::now(),
        cutover_version: env!("CARGO_PKG_VERSION").to_owned(),
        run: plan.run.clone(),
        files: entries,
    };
    Ok(Placed { report, record })
}

fn same_or_refuse(existing: &ReleaseRecord, staged: &ReleaseRecord) -> anyhow::Result<()> {
    if existing.same_content(staged) {
        return Ok(());
    }
    let changed = staged.files.iter().filter(|(path, file)| existing.files.get(*path) != Some(file)).count();
    let removed = existing.files.keys().filter(|path| !staged.files.contains_key(*path)).count();
    Err(Refusal::new(format!(
        "version {} is already released with different content ({changed} files differ, {removed} missing); releases are immutable, so choose a new version",
        existing.version
    ))
    .into())
}

/// The previous release, as far as copying unchanged files from it goes.
struct Previous {
    version: String,
    /// MD5 and size of each file large enough for a copy to pay.
    copyable: HashMap<String, (String, u64)>,
}

/// What every file's job needs to know.
struct Jobs {
    site: Site,
    /// The build directory the walked paths are relative to.
    dist: PathBuf,
    version: String,
    rules: rules::CacheRules,
    /// Objects already under the version's prefix: key -> ETag.
    present: HashMap<String, String>,
    reuse: Option<Previous>,
    /// Set when files are written: the staging claim's fence, checked before each write.
    writing: Option<Fence>,
}

impl Jobs {
    async fn place(&self, file: &SiteFile) -> anyhow::Result<(String, Action, RecordedFile)> {
        let path = self.dist.join(&file.path);
        let read = tokio::task::spawn_blocking({
            let (path, size) = (path.clone(), file.size);
            move || site::read_file(&path, size)
        })
        .await?
        .with_context(|| format!("reading {}", path.display()))?;
        let meta = ObjectMeta {
            content_type: rules::content_type(&file.path),
            cache_control: self.rules.cache_control(&file.path),
        };
        let recorded = RecordedFile {
            md5: read.digest.md5_hex(),
            size: read.size,
            content_type: meta.content_type.clone(),
            cache_control: meta.cache_control.clone(),
            multipart_etag: read.digest.multipart_etag.clone(),
        };
        let key = self.site.layout.object_key(&self.version, &file.path);
        let action = self.choose(&key, &file.path, &recorded, &read.digest);
        if let Some(fence) = &self.writing {
            self.write(fence, &key, &action, &read, &meta).await?;
        }
        Ok((file.path.clone(), action.0, recorded))
    }

    /// Writes one file as `action` says, never over another run's write.
    async fn write(
        &self,
        fence: &Fence,
        key: &str,
        action: &(Action, Option<String>),
        read: &ReadFile,
        meta: &ObjectMeta,
    ) -> anyhow::Result<()> {
        // Replace only what the listing showed, create only what it did not: another run's write
        // since then (one that took over a lapsed claim) is never overwritten.
        let condition = match self.present.get(key) {
            Some(etag) => Condition::IfMatch(etag.clone()),
            None => Condition::IfAbsent,
        };
        let written = match action {
            (Action::AlreadyThere, _) => return Ok(()),
            (Action::Copy, Some(from)) => {
                fence.check()?;
                self.site.store.copy(from, key, meta, &condition).await
            }
            _ => {
                fence.check()?;
                self.site.store.upload(key, read, meta, &condition).await
            }
        };
        match written {
            // A write that ended after the claim lapsed is left where it is: the run that took
            // over may already have taken it into its release, so deleting it could break that
            // release; it never replaced anything (the write was conditional).
            Ok(()) => fence.check(),
            Err(StoreError::PreconditionFailed) => Err(Refusal::new(format!(
                "{key} was written by another run while this run staged version {}",
                self.version
            ))
            .into()),
            Err(StoreError::Other(e)) => Err(e),
        }
    }

    fn choose(&self, key: &str, path: &str, file: &RecordedFile, digest: &FileDigest) -> (Action, Option<String>) {
        if self.present.get(key).is_some_and(|etag| digest.matches_etag(etag)) {
            return (Action::AlreadyThere, None);
        }
        match &self.reuse {
            Some(previous)
                if file.size >= COPY_MIN_BYTES
                    && previous
                        .copyable
                        .get(path)
                        .is_some_and(|(md5, size)| *md5 == file.md5 && *size == file.size) =>
            {
                (Action::Copy, Some(self.site.layout.object_key(&previous.version, path)))
            }
            _ => (Action::Upload, None),
        }
    }
}
