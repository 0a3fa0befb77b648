//! Transfer: hash every file and, when writing, put it in place, a bounded number at once.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use futures::StreamExt;

use super::decide::{Action, Target};
use super::{StageError, StageReport, StageRequest};
use crate::aws_error::causes;
use crate::backend::Site;
use crate::lock::Fence;
use crate::outcome::{Guard, Lapsed, Refusal};
use crate::progress::Progress;
use crate::release::{Place, RecordedFile};
use crate::rules::{self, CacheRules};
use crate::shared_assets::SharedAssets;
use crate::site::{self, ReadFile, SiteFile};
use crate::store::{Condition, ObjectMeta, StoreError};

/// Errors listed in full when many files fail; the rest are counted.
const ERRORS_SHOWN: usize = 10;

/// Files that could not be staged, reported together: the first [`ERRORS_SHOWN`] in full, the
/// rest counted.
#[derive(Debug)]
pub struct FileFailures {
    pub failed: usize,
    pub shown: Vec<FileError>,
}

impl fmt::Display for FileFailures {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} files could not be staged:", self.failed)?;
        for failure in &self.shown {
            // Each with its causes, as the run's error line gives them.
            let said: Vec<String> = causes(failure).map(ToString::to_string).collect();
            write!(f, "\n  {}", said.join(": "))?;
        }
        if self.failed > self.shown.len() {
            write!(f, "\n  ... and {} more", self.failed - self.shown.len())?;
        }
        Ok(())
    }
}

impl std::error::Error for FileFailures {}

/// One file that could not be staged.
#[derive(Debug, thiserror::Error)]
#[error("staging {path}")]
pub struct FileError {
    pub path: String,
    #[source]
    pub cause: FileCause,
}

/// Why a file could not be staged.
#[derive(Debug, thiserror::Error)]
pub enum FileCause {
    #[error("reading {path}")]
    Read {
        path: String,
        #[source]
        source: io::Error,
    },
    #[error(transparent)]
    Task(#[from] tokio::task::JoinError),
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The staging claim may have lapsed: this run writes no more.
    #[error(transparent)]
    Lapsed(#[from] Lapsed),
    /// Another run wrote the file (a refusal: exit 4).
    #[error(transparent)]
    Refused(#[from] Refusal),
}

/// What placing the files did: the report, and each file as the record lists it.
pub(super) struct Placed {
    pub report: StageReport,
    pub files: BTreeMap<String, RecordedFile>,
}

/// Hashes and (when `target.writing`) stores every file, `request.concurrency` at once.
///
/// The fingerprinted files the pool listing holds come first, and nothing is written until each
/// matched its pooled copy: a name whose content changed refuses the stage before any write, so a
/// refused stage leaves nothing behind (prune deletes only files a record lists).
pub(super) async fn place_all(
    site: &Site,
    request: &StageRequest<'_>,
    files: Vec<SiteFile>,
    target: Target,
) -> Result<Placed, StageError> {
    let progress = Progress::new("staging", files.len() as u64);
    let (listed, rest): (Vec<SiteFile>, Vec<SiteFile>) = files.into_iter().partition(|file| {
        request.shared.matches(&file.path) && target.pool.contains_key(&site.layout.shared_key(&file.path))
    });
    let jobs = Arc::new(Jobs {
        site: site.clone(),
        dist: request.dist_dir.to_owned(),
        version: request.version.to_owned(),
        rules: request.cache_rules.clone(),
        shared: request.shared.clone(),
        target,
    });
    let mut outcome = Outcome::default();
    for batch in [listed, rest] {
        outcome.take(&jobs, batch, request.concurrency, &progress).await;
        if outcome.failed > 0 {
            break;
        }
    }
    progress.finish();
    let Outcome { report, entries, failed, shown, refused } = outcome;
    if failed > 0 {
        let failures = FileFailures { failed, shown };
        // Another run writing the same version is a refusal (exit 4), not a failure to retry.
        return Err(if refused { Refusal(Guard::Staging(Box::new(failures))).into() } else { failures.into() });
    }
    Ok(Placed { report, files: entries })
}

/// What placing files did so far: each result goes straight into the record as it arrives, so
/// nothing per file is kept twice.
#[derive(Default)]
struct Outcome {
    report: StageReport,
    entries: BTreeMap<String, RecordedFile>,
    failed: usize,
    shown: Vec<FileError>,
    refused: bool,
}

impl Outcome {
    /// Places `files`, `concurrency` at once.
    async fn take(&mut self, jobs: &Arc<Jobs>, files: Vec<SiteFile>, concurrency: usize, progress: &Progress) {
        let mut placed = futures::stream::iter(files)
            .map(|file| {
                let jobs = Arc::clone(jobs);
                async move {
                    let result = jobs.place(&file).await.map_err(|cause| FileError { path: file.path.clone(), cause });
                    if let Ok((_, action, _)) = &result {
                        progress.advance(if *action == Action::Upload { file.size } else { 0 });
                    }
                    result
                }
            })
            .buffer_unordered(concurrency);
        while let Some(result) = placed.next().await {
            match result {
                Ok((path, action, recorded_file)) => {
                    let report = &mut self.report;
                    report.files += 1;
                    report.total_bytes += recorded_file.size;
                    match action {
                        Action::AlreadyThere => report.resumed += 1,
                        Action::InPool => report.shared += 1,
                        Action::Copy => report.copied += 1,
                        Action::Upload => {
                            report.uploaded += 1;
                            report.bytes_uploaded += recorded_file.size;
                        }
                    }
                    self.entries.insert(path, recorded_file);
                }
                Err(e) => {
                    self.failed += 1;
                    self.refused |= matches!(e.cause, FileCause::Refused(_));
                    if self.shown.len() < ERRORS_SHOWN {
                        self.shown.push(e);
                    }
                }
            }
        }
    }
}

/// What every file's job needs to know.
struct Jobs {
    site: Site,
    /// The build directory the walked paths are relative to.
    dist: PathBuf,
    version: String,
    rules: CacheRules,
    shared: SharedAssets,
    target: Target,
}

impl Jobs {
    async fn place(&self, file: &SiteFile) -> Result<(String, Action, RecordedFile), FileCause> {
        let path = self.dist.join(&file.path);
        let read = tokio::task::spawn_blocking({
            let (path, size) = (path.clone(), file.size);
            move || site::read_file(&path, size)
        })
        .await?
        .map_err(|source| FileCause::Read { path: path.display().to_string(), source })?;
        // One rule decides both: a fingerprinted file is shared through the pool and immutable.
        let rule = self.shared.rule_for(&file.path);
        let (place, cache_control) = match rule {
            Some(_) => (Place::Pool, rules::IMMUTABLE.to_owned()),
            None => (Place::Version, self.rules.cache_control(&file.path)),
        };
        let meta = ObjectMeta { content_type: rules::content_type(&file.path), cache_control };
        let recorded = RecordedFile {
            place,
            md5: read.digest.md5_hex(),
            size: read.size,
            content_type: meta.content_type.clone(),
            cache_control: meta.cache_control.clone(),
            multipart_etag: read.digest.multipart_etag.clone(),
        };
        let key = recorded.key(&self.site.layout, &self.version, &file.path);
        let Some(action) = self.target.choose(&self.site.layout, &key, &file.path, &recorded, &read.digest) else {
            return Err(changed_in_pool(&file.path, rule.unwrap_or_default(), key).into());
        };
        let fence = self.target.writing.as_ref();
        if place == Place::Pool && (fence.is_some() || self.target.repair_pool) {
            return self.write_pooled(fence, &key, &file.path, &read, &meta, recorded, action.0).await;
        }
        if let Some(fence) = fence {
            self.write(fence, &key, &action, &read, &meta).await?;
        }
        Ok((file.path.clone(), action.0, recorded))
    }

    /// Writes a fingerprinted file into the pool, create-only, under the staging claim's `fence`
    /// (none when putting back a recorded release's file); another run (of any version) that wrote
    /// the same name meanwhile is fine when its content is this file's.
    #[expect(clippy::too_many_arguments, reason = "one call site; each argument is a different fact of the file")]
    async fn write_pooled(
        &self,
        fence: Option<&Fence>,
        key: &str,
        path: &str,
        read: &ReadFile,
        meta: &ObjectMeta,
        recorded: RecordedFile,
        action: Action,
    ) -> Result<(String, Action, RecordedFile), FileCause> {
        if action == Action::InPool {
            return Ok((path.to_owned(), action, recorded));
        }
        if let Some(fence) = fence {
            fence.check()?;
        }
        match self.site.store.upload(key, read, meta, &Condition::IfAbsent).await {
            Ok(()) => Ok((path.to_owned(), Action::Upload, recorded)),
            Err(StoreError::PreconditionFailed) => {
                let listed = self.site.store.list(key).await?;
                match listed.iter().find(|l| l.key == key) {
                    Some(l) if recorded.matches_etag(&l.etag) => Ok((path.to_owned(), Action::InPool, recorded)),
                    // Gone again (pruned meanwhile) or another content: refused, nothing recorded.
                    _ => {
                        let rule = self.shared.rule_for(path).unwrap_or_default();
                        Err(changed_in_pool(path, rule, key.to_owned()).into())
                    }
                }
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Writes one file as `action` says, never over another run's write.
    async fn write(
        &self,
        fence: &Fence,
        key: &str,
        action: &(Action, Option<String>),
        read: &ReadFile,
        meta: &ObjectMeta,
    ) -> Result<(), FileCause> {
        // Replace only what the listing showed, create only what it did not: another run's write
        // since then (one that took over a lapsed claim) is never overwritten.
        let condition = match self.target.present.get(key) {
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
            Ok(()) => Ok(fence.check()?),
            Err(StoreError::PreconditionFailed) => {
                Err(Refusal(Guard::WrittenMeanwhile { key: key.to_owned(), version: self.version.clone() }).into())
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// The refusal for a fingerprinted name whose content changed.
fn changed_in_pool(path: &str, rule: &str, key: String) -> Refusal {
    Refusal(Guard::SharedChanged { path: path.to_owned(), rule: rule.to_owned(), key })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn unreadable(path: &str) -> FileError {
        let source = io::Error::new(io::ErrorKind::PermissionDenied, "permission denied");
        FileError { path: path.into(), cause: FileCause::Read { path: format!("dist/{path}"), source } }
    }

    #[test]
    fn failed_files_are_reported_together_with_their_causes() {
        let failures =
            FileFailures { failed: 12, shown: (0..ERRORS_SHOWN).map(|i| unreadable(&format!("{i}.js"))).collect() };
        let text = failures.to_string();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "12 files could not be staged:");
        assert_eq!(lines[1], "  staging 0.js: reading dist/0.js: permission denied");
        assert_eq!(lines.len(), 2 + ERRORS_SHOWN);
        assert_eq!(lines[ERRORS_SHOWN + 1], "  ... and 2 more");
        let written = FileError {
            path: "a.js".into(),
            cause: Refusal(Guard::WrittenMeanwhile { key: "s/1/a.js".into(), version: "1".into() }).into(),
        };
        let one = FileFailures { failed: 1, shown: vec![written] }.to_string();
        assert_eq!(
            one,
            "1 files could not be staged:\n  staging a.js: refused: s/1/a.js was written by another run while this run staged version 1"
        );
    }
}
