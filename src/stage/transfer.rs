//! Transfer: hash every file and, when writing, put it in place, a bounded number at once.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use futures::StreamExt;

use super::decide::{Action, Target};
use super::{StageReport, StageRequest};
use crate::backend::Site;
use crate::lock::Fence;
use crate::outcome::Refusal;
use crate::progress::Progress;
use crate::release::RecordedFile;
use crate::rules::{self, CacheRules};
use crate::site::{self, ReadFile, SiteFile};
use crate::store::{Condition, ObjectMeta, StoreError};

/// Errors listed in full when many files fail; the rest are counted.
const ERRORS_SHOWN: usize = 10;

/// What placing the files did: the report, and each file as the record lists it.
pub(super) struct Placed {
    pub report: StageReport,
    pub files: BTreeMap<String, RecordedFile>,
}

/// Hashes and (when `target.writing`) stores every file, `request.concurrency` at once.
pub(super) async fn place_all(
    site: &Site,
    request: &StageRequest<'_>,
    files: Vec<SiteFile>,
    target: Target,
) -> anyhow::Result<Placed> {
    let progress = Progress::new("staging", files.len() as u64);
    let jobs = Arc::new(Jobs {
        site: site.clone(),
        dist: request.dist_dir.to_owned(),
        version: request.version.to_owned(),
        rules: request.cache_rules.clone(),
        target,
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
        .buffer_unordered(request.concurrency);
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
    Ok(Placed { report, files: entries })
}

/// What every file's job needs to know.
struct Jobs {
    site: Site,
    /// The build directory the walked paths are relative to.
    dist: PathBuf,
    version: String,
    rules: CacheRules,
    target: Target,
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
        let action = self.target.choose(&self.site.layout, &key, &file.path, &recorded, &read.digest);
        if let Some(fence) = &self.target.writing {
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
            Ok(()) => fence.check(),
            Err(StoreError::PreconditionFailed) => Err(Refusal::new(format!(
                "{key} was written by another run while this run staged version {}",
                self.version
            ))
            .into()),
            Err(e) => Err(e.into()),
        }
    }
}
