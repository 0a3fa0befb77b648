//! Decide: which files the release holds, and how each gets into it (left alone, copied, uploaded).

use std::collections::HashMap;

use super::{COPY_MIN_BYTES, StageError, StageRequest};
use crate::backend::Site;
use crate::inputs::InputError;
use crate::lock::Fence;
use crate::release::{Layout, MAX_KEY_BYTES, Place, RecordedFile, ReleaseRecord};
use crate::site::{self, FileDigest, SiteFile};

/// How one file gets into the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Action {
    AlreadyThere,
    /// A fingerprinted file the pool holds with the same content.
    InPool,
    Copy,
    Upload,
}

/// The files of the build, sorted by path; bad ones (or keys S3 would refuse) are bad input.
pub(super) async fn files(site: &Site, request: &StageRequest<'_>) -> Result<Vec<SiteFile>, StageError> {
    let (dist, options) = (request.dist_dir.to_owned(), request.walk.clone());
    let walked = tokio::task::spawn_blocking(move || site::walk(&dist, &options))
        .await?
        .map_err(|e| InputError::new("dist-dir", e.to_string()))?;
    if !walked.secrets_skipped.is_empty() {
        crate::say!("warning: {}", site::secrets_warning(&walked.secrets_skipped));
    }
    let files = walked.files;
    // A fingerprinted file's key is in the pool, any other's in the version's directory.
    let version_dir_bytes = site.layout.version_dir(request.version).len().max(site.layout.shared_dir().len());
    if let Some((file, bytes)) =
        files.iter().map(|f| (f, version_dir_bytes + f.path.len())).find(|(_, bytes)| *bytes > MAX_KEY_BYTES)
    {
        let problem = format!("{}: its object key would be {bytes} bytes; S3 allows {MAX_KEY_BYTES}", file.path);
        return Err(InputError::new("dist-dir", problem).into());
    }
    Ok(files)
}

/// Prefixes of two sites never nest: a site inside another's prefix could be overwritten by the
/// other's releases and deleted by its prune. Refuses (before anything is written) a prefix inside
/// one that holds releases, and a version whose directory holds another site.
pub(super) async fn refuse_nested_sites(site: &Site, version: &str) -> Result<(), StageError> {
    let listing = |doing: &'static str| move |source| StageError::Store { doing: doing.to_owned(), source };
    for outer in site.layout.enclosing() {
        let records =
            site.store.list(&outer.cutover_dir()).await.map_err(listing("looking for sites around this prefix"))?;
        if !records.is_empty() {
            let nested = Nested::Inside { prefix: site.layout.prefix().to_owned(), outer: outer.prefix().to_owned() };
            return Err(nested.into());
        }
    }
    let inner = Layout::new(site.layout.version_dir(version).trim_end_matches('/'));
    let inner_site =
        site.store.list(&inner.cutover_dir()).await.map_err(listing("looking for a site inside this version"))?;
    if !inner_site.is_empty() {
        let nested = Nested::Around {
            version: version.to_owned(),
            prefix: site.layout.prefix().to_owned(),
            inner: inner.prefix().to_owned(),
        };
        return Err(nested.into());
    }
    Ok(())
}

/// The nesting guard: how this site's prefix and another site's nest. Bad input (the `prefix`
/// chosen), so exit 2 like every other.
#[derive(Debug, thiserror::Error)]
pub enum Nested {
    #[error("{prefix:?} lies inside the site at {outer:?}; prefixes of two sites must not nest")]
    Inside { prefix: String, outer: String },
    #[error(
        "version {version} of the site at {prefix:?} would be written into the site at {inner:?}; prefixes of two sites must not nest"
    )]
    Around { version: String, prefix: String, inner: String },
}

impl From<Nested> for StageError {
    fn from(nested: Nested) -> Self {
        StageError::Input(InputError::new("prefix", nested.to_string()))
    }
}

/// What the version's directory holds already, where unchanged files can be copied from, and
/// whether anything is written.
pub(super) struct Target {
    /// Set when files are written: the staging claim's fence, checked before each write.
    pub writing: Option<Fence>,
    /// Objects already under the version's prefix: key -> ETag.
    pub present: HashMap<String, String>,
    /// Objects in the site's pool (listed once, only when sharing is on): key -> ETag.
    pub pool: HashMap<String, String>,
    /// A recorded version staged again: pooled files missing from the pool (pruned before the
    /// release went live) are put back, create-only; nothing else is written.
    pub repair_pool: bool,
    /// A recorded version: the files of its directory are in place already.
    recorded: bool,
    reuse: Option<Previous>,
}

/// The previous release, as far as copying unchanged files from it goes.
#[derive(Debug, Clone)]
pub struct Previous {
    version: String,
    /// MD5 and size of each file large enough for a copy to pay.
    copyable: HashMap<String, (String, u64)>,
}

impl Previous {
    /// What a copy can be made from in the live release's `record`: only files a copy pays for are
    /// kept; the rest of the record is let go at once.
    pub fn of(record: ReleaseRecord) -> Previous {
        let copyable = record.files.into_iter().filter(|(_, f)| f.size >= COPY_MIN_BYTES);
        Previous { version: record.version, copyable: copyable.map(|(path, f)| (path, (f.md5, f.size))).collect() }
    }
}

impl Target {
    pub async fn new(site: &Site, request: &StageRequest<'_>, writing: Option<Fence>) -> Result<Target, StageError> {
        let reuse = request.previous.as_ref().filter(|p| p.version != request.version).cloned();
        let listed = site
            .store
            .list(&site.layout.version_dir(request.version))
            .await
            .map_err(|source| StageError::Store { doing: "listing the staged release".into(), source })?;
        let present = listed.into_iter().map(|l| (l.key, l.etag)).collect();
        let pool = list_pool(site, request).await?;
        Ok(Target { writing, present, pool, repair_pool: false, recorded: false, reuse })
    }

    /// A target for a recorded version: only the pool is listed, and (unless a dry run) a pooled
    /// file missing from it is put back.
    pub async fn recorded(site: &Site, request: &StageRequest<'_>) -> Result<Target, StageError> {
        let pool = list_pool(site, request).await?;
        Ok(Target {
            writing: None,
            present: HashMap::new(),
            pool,
            repair_pool: !request.dry_run,
            recorded: true,
            reuse: None,
        })
    }

    /// How the file at `path` (stored at `key`) gets into the release, and the key a copy is
    /// made from; `None` for a fingerprinted file the pool holds with other content (refused).
    pub fn choose(
        &self,
        layout: &Layout,
        key: &str,
        path: &str,
        file: &RecordedFile,
        digest: &FileDigest,
    ) -> Option<(Action, Option<String>)> {
        if file.place == Place::Pool {
            return match self.pool.get(key) {
                Some(etag) if digest.matches_etag(etag) => Some((Action::InPool, None)),
                Some(_) => None,
                None => Some((Action::Upload, None)),
            };
        }
        if self.recorded || self.present.get(key).is_some_and(|etag| digest.matches_etag(etag)) {
            return Some((Action::AlreadyThere, None));
        }
        Some(match &self.reuse {
            Some(previous)
                if file.size >= COPY_MIN_BYTES
                    && previous
                        .copyable
                        .get(path)
                        .is_some_and(|(md5, size)| *md5 == file.md5 && *size == file.size) =>
            {
                (Action::Copy, Some(layout.object_key(&previous.version, path)))
            }
            _ => (Action::Upload, None),
        })
    }
}

/// The site's pool, listed once for the whole stage (not a request per file); nothing to list when
/// sharing is off.
async fn list_pool(site: &Site, request: &StageRequest<'_>) -> Result<HashMap<String, String>, StageError> {
    if request.shared.pattern().is_none() {
        return Ok(HashMap::new());
    }
    let listed = site
        .store
        .list(&site.layout.shared_dir())
        .await
        .map_err(|source| StageError::Store { doing: "listing the shared pool".into(), source })?;
    Ok(listed.into_iter().map(|l| (l.key, l.etag)).collect())
}
