//! The bucket layout and the release record: a release without its record does not exist.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use futures::{StreamExt, TryStreamExt};

use crate::env::Env;
use crate::store::{Condition, Store, StoreError, json_meta};
use crate::version;

/// Records read at once when listing every release.
const RECORD_READS: usize = 16;

/// The longest object key S3 accepts, in bytes.
pub const MAX_KEY_BYTES: usize = 1024;

/// Where a site's objects live under its prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Layout {
    prefix: String,
}

impl Layout {
    pub fn new(prefix: &str) -> Self {
        Self { prefix: prefix.trim_matches('/').to_owned() }
    }

    fn under_prefix(&self, rest: &str) -> String {
        if self.prefix.is_empty() { rest.to_owned() } else { format!("{}/{rest}", self.prefix) }
    }

    /// `<prefix>/<version>/`: everything a release serves.
    pub fn version_dir(&self, version: &str) -> String {
        self.under_prefix(&format!("{version}/"))
    }

    /// `<prefix>/<version>/<path>`: always the version's directory followed by the path.
    pub fn object_key(&self, version: &str, path: &str) -> String {
        self.version_dir(version) + path
    }

    /// `<prefix>/_shared/`: the site's pool of fingerprinted files, shared by every release that
    /// holds them (a version never starts with `_`, so no release's directory is this one).
    pub fn shared_dir(&self) -> String {
        self.under_prefix("_shared/")
    }

    /// `<prefix>/_shared/<path>`: where a fingerprinted file lives, whatever the release.
    pub fn shared_key(&self, path: &str) -> String {
        self.shared_dir() + path
    }

    /// `<prefix>/_cutover/`: everything cutover keeps about the site; any object here means a site.
    pub fn cutover_dir(&self) -> String {
        self.under_prefix("_cutover/")
    }

    pub fn records_dir(&self) -> String {
        self.under_prefix("_cutover/releases/")
    }

    pub fn record_key(&self, version: &str) -> String {
        self.under_prefix(&format!("_cutover/releases/{version}.json"))
    }

    /// The promotion log of pointers that keep no history themselves (CloudFront origin paths).
    pub fn promotions_key(&self) -> String {
        self.under_prefix("_cutover/promotions.json")
    }

    /// Why the release never went live, when a run found out (see [`Verdict`]).
    pub fn verdict_key(&self, version: &str) -> String {
        format!("{}{version}.json", self.verdicts_dir())
    }

    pub fn verdicts_dir(&self) -> String {
        self.under_prefix("_cutover/verdicts/")
    }

    /// Held by the one run writing `version`'s files (see [`crate::lock::StagingClaim`]).
    pub fn claim_key(&self, version: &str) -> String {
        format!("{}{version}.json", self.claims_dir())
    }

    pub fn claims_dir(&self) -> String {
        self.under_prefix("_cutover/staging/")
    }

    pub fn lock_key(&self) -> String {
        self.under_prefix("_cutover/lock")
    }

    /// The version a record key names, if it is one.
    pub fn version_of_record(&self, key: &str) -> Option<String> {
        key.strip_prefix(&self.records_dir())?.strip_suffix(".json").map(str::to_owned)
    }

    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The layouts of every prefix this one lies inside, the bucket root first.
    pub fn enclosing(&self) -> Vec<Layout> {
        if self.prefix.is_empty() {
            return Vec::new();
        }
        let segments: Vec<&str> = self.prefix.split('/').collect();
        (0..segments.len()).map(|n| Layout::new(&segments[..n].join("/"))).collect()
    }
}

/// The layout a record describes: 2 since files may live in the shared pool (`place`).
pub const LAYOUT: u32 = 2;

/// Where a recorded file is stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Place {
    /// `<prefix>/<version>/<path>`.
    Version,
    /// `<prefix>/_shared/<path>`: a fingerprinted file (`shared-assets`), shared by the releases holding it.
    Pool,
}

/// One file as recorded in a release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedFile {
    pub place: Place,
    pub md5: String,
    pub size: u64,
    pub content_type: String,
    pub cache_control: String,
    /// The ETag S3 gives the object when it was uploaded in parts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multipart_etag: Option<String>,
}

impl RecordedFile {
    /// The object key of this file of `version`, at `path`.
    pub fn key(&self, layout: &Layout, version: &str, path: &str) -> String {
        match self.place {
            Place::Version => layout.object_key(version, path),
            Place::Pool => layout.shared_key(path),
        }
    }

    /// Whether a stored object's ETag shows it holds exactly this file's bytes.
    pub fn matches_etag(&self, etag: &str) -> bool {
        let etag = etag.trim_matches('"');
        etag == self.md5 || self.multipart_etag.as_deref() == Some(etag)
    }
}

/// Facts about the CI run, recorded with each release and promotion.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunInfo {
    pub git_sha: Option<String>,
    pub git_ref: Option<String>,
    pub run_url: Option<String>,
}

impl RunInfo {
    /// What the CI system tells about this run.
    pub fn from_env(env: &Env) -> RunInfo {
        let github_run = match (env.get("GITHUB_SERVER_URL"), env.get("GITHUB_REPOSITORY"), env.get("GITHUB_RUN_ID")) {
            (Some(server), Some(repo), Some(id)) => Some(format!("{server}/{repo}/actions/runs/{id}")),
            _ => None,
        };
        let first = |names: &[&str]| names.iter().find_map(|n| env.get(n)).map(str::to_owned);
        RunInfo {
            git_sha: first(&["GITHUB_SHA", "CIRCLE_SHA1", "BUILD_VCS_NUMBER"]),
            git_ref: first(&["GITHUB_REF", "CIRCLE_TAG", "CIRCLE_BRANCH", "CUTOVER_GIT_REF"]),
            run_url: github_run.or_else(|| first(&["CIRCLE_BUILD_URL", "BUILD_URL"])),
        }
    }
}

/// Everything known about a release; written last and create-only.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReleaseRecord {
    /// [`LAYOUT`] when written by this cutover.
    pub layout: u32,
    pub version: String,
    pub created_at: DateTime<Utc>,
    pub cutover_version: String,
    #[serde(flatten)]
    pub run: RunInfo,
    pub files: BTreeMap<String, RecordedFile>,
}

impl ReleaseRecord {
    /// The paths of the files that live in the shared pool.
    pub fn pooled(&self) -> impl Iterator<Item = &str> {
        self.files.iter().filter(|(_, f)| f.place == Place::Pool).map(|(path, _)| path.as_str())
    }

    pub fn total_bytes(&self) -> u64 {
        self.files.values().map(|f| f.size).sum()
    }

    /// Whether two records describe the same content (paths, digests and headers).
    pub fn same_content(&self, other: &ReleaseRecord) -> bool {
        self.files == other.files
    }

    /// Compact JSON: a record of 100,000 files is a few MB smaller than pretty-printed.
    pub fn to_json(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a release record always serialises")
    }

    pub fn from_json(key: &str, bytes: &[u8]) -> Result<Self, RecordError> {
        serde_json::from_slice(bytes).map_err(|e| RecordError::Damaged { key: key.to_owned(), problem: e.to_string() })
    }
}

/// Why a recorded release did not go live: its smoke test failed, or a guard refused it. Kept for
/// `status`, so such a release is not mistaken for one waiting to be promoted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verdict {
    /// `smoke failed` or `refused`.
    pub outcome: String,
    pub reason: String,
    pub at: DateTime<Utc>,
    pub run_url: Option<String>,
}

impl Verdict {
    pub async fn write(&self, site: &(impl AsRef<dyn Store> + AsRef<Layout>), version: &str) -> Result<(), StoreError> {
        let (store, layout): (&dyn Store, &Layout) = (site.as_ref(), site.as_ref());
        let body = bytes::Bytes::from(serde_json::to_vec(self).expect("a verdict always serialises"));
        store.put(&layout.verdict_key(version), body, &json_meta(), Condition::Always).await
    }

    /// Drops the verdict of `version`: a later run's smoke test passed (a preview pushed again).
    pub async fn clear(site: &(impl AsRef<dyn Store> + AsRef<Layout>), version: &str) -> Result<(), StoreError> {
        let (store, layout): (&dyn Store, &Layout) = (site.as_ref(), site.as_ref());
        store.delete(&[layout.verdict_key(version)]).await
    }

    /// Every verdict of the site, by version; unreadable ones are skipped.
    pub async fn read_all(
        site: &(impl AsRef<dyn Store> + AsRef<Layout>),
    ) -> Result<std::collections::HashMap<String, Verdict>, RecordError> {
        let (store, layout): (&dyn Store, &Layout) = (site.as_ref(), site.as_ref());
        let dir = layout.verdicts_dir();
        let listed = store.list(&dir).await.map_err(RecordError::store("listing release verdicts"))?;
        let mut verdicts = std::collections::HashMap::new();
        for key in listed.into_iter().map(|l| l.key) {
            let Some(version) = key.strip_prefix(&dir).and_then(|k| k.strip_suffix(".json")) else { continue };
            if let Some(fetched) = store.get(&key).await.map_err(RecordError::store("reading a release verdict"))?
                && let Ok(verdict) = serde_json::from_slice(&fetched.body)
            {
                verdicts.insert(version.to_owned(), verdict);
            }
        }
        Ok(verdicts)
    }
}

/// Why a release record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The store failed; `doing` says what the run was reading.
    #[error("{doing}")]
    Store {
        doing: String,
        #[source]
        source: StoreError,
    },
    #[error("release record {key} is damaged: {problem}")]
    Damaged { key: String, problem: String },
}

impl RecordError {
    fn store(doing: impl Into<String>) -> impl FnOnce(StoreError) -> RecordError {
        move |source| RecordError::Store { doing: doing.into(), source }
    }
}

/// Reads and parses a release record; `None` when the release does not exist.
pub async fn read_record(store: &impl AsRef<dyn Store>, key: &str) -> Result<Option<ReleaseRecord>, RecordError> {
    match store.as_ref().get(key).await {
        Ok(Some(fetched)) => ReleaseRecord::from_json(key, &fetched.body).map(Some),
        Ok(None) => Ok(None),
        Err(source) => Err(RecordError::store(format!("reading release record {key}"))(source)),
    }
}

/// Every recorded release of the site, oldest first in the release order ([`version::places`]).
pub async fn all_records(site: &(impl AsRef<dyn Store> + AsRef<Layout>)) -> Result<Vec<ReleaseRecord>, RecordError> {
    let records = records_where(site, |_| true).await?;
    let places = version::places(&records.iter().map(|r| (r.version.as_str(), r.created_at)).collect::<Vec<_>>());
    let mut placed: Vec<_> = places.into_iter().zip(records).collect();
    placed.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(placed.into_iter().map(|(_, record)| record).collect())
}

/// How release `a` stands against release `b` in the release order that [`all_records`] lists,
/// reading only the records that can move either. A version without a record counts as recorded
/// before any other.
pub async fn compare(
    site: &(impl AsRef<dyn Store> + AsRef<Layout>),
    a: &str,
    b: &str,
) -> Result<Ordering, RecordError> {
    let records = records_where(site, |v| version::can_move(v, a) || version::can_move(v, b)).await?;
    let mut releases: Vec<(String, DateTime<Utc>)> = records.into_iter().map(|r| (r.version, r.created_at)).collect();
    let mut index_of = |version: &str| match releases.iter().position(|(v, _)| v == version) {
        Some(i) => i,
        None => {
            releases.push((version.to_owned(), DateTime::<Utc>::MIN_UTC));
            releases.len() - 1
        }
    };
    let (a, b) = (index_of(a), index_of(b));
    let places = version::places(&releases);
    Ok(places[a].cmp(&places[b]))
}

/// The records of the versions `wanted` accepts, in no particular order.
async fn records_where(
    site: &(impl AsRef<dyn Store> + AsRef<Layout>),
    wanted: impl Fn(&str) -> bool,
) -> Result<Vec<ReleaseRecord>, RecordError> {
    let (store, layout): (&dyn Store, &Layout) = (site.as_ref(), site.as_ref());
    let listed = store.list(&layout.records_dir()).await.map_err(RecordError::store("listing release records"))?;
    let keys =
        listed.into_iter().filter(|l| layout.version_of_record(&l.key).is_some_and(|v| wanted(&v))).map(|l| l.key);
    futures::stream::iter(keys)
        .map(|key| async move { read_record(site, &key).await })
        .buffer_unordered(RECORD_READS)
        .try_filter_map(|record| async move { Ok(record) })
        .try_collect()
        .await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_keys() {
        let site = Layout::new("site");
        assert_eq!(site.object_key("41", "assets/app.js"), "site/41/assets/app.js");
        assert_eq!(site.record_key("41"), "site/_cutover/releases/41.json");
        assert_eq!(site.version_of_record("site/_cutover/releases/41.json").as_deref(), Some("41"));
        assert_eq!(site.version_of_record("site/41/index.html"), None);
        let enclosing: Vec<String> = Layout::new("a/b/c").enclosing().iter().map(|l| l.prefix().to_owned()).collect();
        assert_eq!(enclosing, ["", "a", "a/b"]);
        assert!(Layout::new("").enclosing().is_empty());
        let root = Layout::new("");
        assert_eq!(root.object_key("1", "index.html"), "1/index.html");
        assert_eq!(root.lock_key(), "_cutover/lock");
        assert_eq!(site.shared_key("assets/a-BxK3a9Qz.js"), "site/_shared/assets/a-BxK3a9Qz.js");
        assert_eq!(root.shared_key("assets/a-BxK3a9Qz.js"), "_shared/assets/a-BxK3a9Qz.js");
    }
}
