//! Record: the release record, written last and create-only, or checked against when the version
//! is recorded already.

use bytes::Bytes;
use chrono::Utc;

use super::decide::{self, Target};
use super::transfer::{self, Placed};
use super::{StageError, StageReport, StageRequest};
use crate::backend::Site;
use crate::lock::StagingClaim;
use crate::outcome::{Guard, Refusal};
use crate::release::{LAYOUT, Place, ReleaseRecord, read_record};
use crate::route_index::{self, RouteIndex};
use crate::site::SiteFile;
use crate::store::{Condition, StoreError, json_meta};

/// Records the placed release under the held claim: removes what no file of this build explains
/// (`present` lists what the version's directory held before: an earlier run of the version that
/// never recorded it), then writes the record, create-only.
pub(super) async fn record(
    site: &Site,
    request: &StageRequest<'_>,
    claim: &StagingClaim,
    present: Vec<String>,
    placed: Placed,
) -> Result<StageReport, StageError> {
    let Placed { report, files } = placed;
    let record = describe(request, files);
    // A site that began at a nesting prefix while this run staged: the two must not both stand,
    // so this release is not recorded. What it wrote stays: the other site may have taken an
    // identical file into its own release, and deleting it would break that release.
    decide::refuse_nested_sites(site, request.version).await?;
    let version_dir = site.layout.version_dir(request.version);
    let stale: Vec<String> = present
        .into_iter()
        .filter(|key| {
            key.strip_prefix(&version_dir)
                .is_none_or(|path| record.files.get(path).is_none_or(|f| f.place != Place::Version))
        })
        .collect();
    if !stale.is_empty() {
        site.store.delete(&stale).await.map_err(|source| StageError::Store {
            doing: "removing files an earlier, unrecorded run left".into(),
            source,
        })?;
    }
    claim.confirm().await?;
    let record_key = site.layout.record_key(request.version);
    match site.store.put(&record_key, Bytes::from(record.to_json()), &json_meta(), Condition::IfAbsent).await {
        Ok(()) => {
            let index = RouteIndex::of_record(&record);
            route_index::write(site, request.version, &index).await.map_err(|source| StageError::Store {
                doing: format!("writing the routing index of {}", request.version),
                source,
            })?;
            Ok(report)
        }
        Err(StoreError::PreconditionFailed) => {
            let existing = read_record(site, &record_key).await?.ok_or(StageError::Vanished("writing it"))?;
            same_or_refuse(&existing, &record)?;
            Ok(StageReport { already_recorded: true, ..report })
        }
        Err(source) => Err(StageError::Store { doing: format!("writing release record {record_key}"), source }),
    }
}

/// A recorded version: hashes the build and refuses other content; writes nothing but the pooled
/// files missing from the pool (pruned before the release went live), put back and counted as
/// uploaded.
pub(super) async fn check_recorded(
    site: &Site,
    request: &StageRequest<'_>,
    files: Vec<SiteFile>,
) -> Result<StageReport, StageError> {
    let record_key = site.layout.record_key(request.version);
    let existing = read_record(site, &record_key).await?.ok_or(StageError::Vanished("reading it"))?;
    let target = Target::recorded(site, request).await?;
    let Placed { report, files } = transfer::place_all(site, request, files, target).await?;
    same_or_refuse(&existing, &describe(request, files))?;
    // Every other file is already in the recorded release.
    Ok(StageReport {
        files: report.files,
        uploaded: report.uploaded,
        bytes_uploaded: report.bytes_uploaded,
        total_bytes: report.total_bytes,
        resumed: report.files - report.uploaded,
        already_recorded: true,
        ..StageReport::default()
    })
}

/// The record describing the build.
fn describe(
    request: &StageRequest<'_>,
    files: std::collections::BTreeMap<String, crate::release::RecordedFile>,
) -> ReleaseRecord {
    ReleaseRecord {
        layout: LAYOUT,
        version: request.version.to_owned(),
        created_at: Utc::now(),
        cutover_version: env!("CARGO_PKG_VERSION").to_owned(),
        run: request.run.clone(),
        files,
    }
}

/// Releases are immutable: another build of a recorded version is refused.
fn same_or_refuse(existing: &ReleaseRecord, staged: &ReleaseRecord) -> Result<(), Refusal> {
    if existing.same_content(staged) {
        return Ok(());
    }
    let changed = staged.files.iter().filter(|(path, file)| existing.files.get(*path) != Some(file)).count();
    let removed = existing.files.keys().filter(|path| !staged.files.contains_key(*path)).count();
    Err(Guard::Recorded { version: existing.version.clone(), changed, removed }.into())
}
