//! The routing index: the list of a release's files that the edge routes from (which paths name a
//! file, which directories have an index page, whether there is a not-found page), written by stage
//! next to the release record so the CloudFront router never asks S3 per request. It also says
//! which of them live in the site's shared pool.

use std::collections::HashSet;

use anyhow::Context;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::release::{Layout, ReleaseRecord, read_record};
use crate::shared_assets::SharedAssets;
use crate::store::{Condition, Store, StoreError, json_meta};

/// The format a reader must understand; the router checks it too.
const FORMAT: u32 = 2;

/// The files of one release, as the edge needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteIndex {
    files: HashSet<String>,
    /// The files stored in the pool (`<prefix>/_shared/`) rather than the version's directory.
    pooled: HashSet<String>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    files: Vec<String>,
    pooled: Vec<String>,
}

impl RouteIndex {
    pub fn new<S: Into<String>>(files: impl IntoIterator<Item = S>) -> Self {
        Self { files: files.into_iter().map(Into::into).collect(), pooled: HashSet::new() }
    }

    /// The index of a recorded release, its pooled files marked.
    pub fn of_record(record: &ReleaseRecord) -> Self {
        Self { files: record.files.keys().cloned().collect(), pooled: record.pooled().map(str::to_owned).collect() }
    }

    /// Whether the file at `path` is served from the pool: a pooled file of this release, or a
    /// fingerprinted path this release does not hold (another release's, asked for by a page of
    /// that release after this one went live).
    pub fn in_pool(&self, path: &str, shared: &SharedAssets) -> bool {
        self.pooled.contains(path) || (!self.files.contains(path) && shared.matches(path))
    }

    /// Whether the release holds a file at this release-relative path.
    pub fn contains(&self, path: &str) -> bool {
        self.files.contains(path)
    }

    /// `{"format":2,"files":[...],"pooled":[...]}`, sorted so the same release always writes the
    /// same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let sorted = |set: &HashSet<String>| {
            let mut list: Vec<String> = set.iter().cloned().collect();
            list.sort();
            list
        };
        let stored = Stored { format: FORMAT, files: sorted(&self.files), pooled: sorted(&self.pooled) };
        serde_json::to_vec(&stored).expect("strings always serialise")
    }

    pub fn from_json(bytes: &[u8]) -> anyhow::Result<Self> {
        let stored: Stored = serde_json::from_slice(bytes).context("reading a routing index")?;
        anyhow::ensure!(stored.format == FORMAT, "routing index format {} is not {FORMAT}", stored.format);
        Ok(Self { files: stored.files.into_iter().collect(), pooled: stored.pooled.into_iter().collect() })
    }
}

/// `<prefix>/_cutover/routes/<version>.json`.
pub fn key(layout: &Layout, version: &str) -> String {
    format!("{}routes/{version}.json", layout.cutover_dir())
}

/// Writes the index of a just-recorded release. Written after the record: a release read before
/// its index lands is routed from the record (see [`read`]).
pub async fn write(
    site: &(impl AsRef<dyn Store> + AsRef<Layout>),
    version: &str,
    index: &RouteIndex,
) -> Result<(), StoreError> {
    let (store, layout): (&dyn Store, &Layout) = (site.as_ref(), site.as_ref());
    store.put(&key(layout, version), Bytes::from(index.to_json()), &json_meta(), Condition::Always).await
}

/// The index of a recorded release: its index, else (staged by an older cutover, the index not
/// written yet, or damaged: logged) its record's file list; `None` when the version is not a
/// recorded release.
pub async fn read(site: &(impl AsRef<dyn Store> + AsRef<Layout>), version: &str) -> anyhow::Result<Option<RouteIndex>> {
    let (store, layout): (&dyn Store, &Layout) = (site.as_ref(), site.as_ref());
    if let Some(object) = store.get(&key(layout, version)).await? {
        match RouteIndex::from_json(&object.body) {
            Ok(index) => return Ok(Some(index)),
            Err(e) => crate::say!("the routing index of {version} is damaged, routing from its record: {e:#}"),
        }
    }
    let record = read_record(site, &layout.record_key(version)).await?;
    Ok(record.as_ref().map(RouteIndex::of_record))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_round_trips_sorted() {
        let mut index = RouteIndex::new(["b/index.html", "a.txt", "CNAME", "assets/x-BxK3a9Qz.js"]);
        index.pooled.insert("assets/x-BxK3a9Qz.js".into());
        assert_eq!(
            String::from_utf8(index.to_json()).unwrap(),
            r#"{"format":2,"files":["CNAME","a.txt","assets/x-BxK3a9Qz.js","b/index.html"],"pooled":["assets/x-BxK3a9Qz.js"]}"#
        );
        assert_eq!(RouteIndex::from_json(&index.to_json()).unwrap(), index);
        assert!(RouteIndex::from_json(br#"{"format":1,"files":[]}"#).is_err());
        assert_eq!(key(&Layout::new("site"), "41"), "site/_cutover/routes/41.json");
        let shared = SharedAssets::parse("assets/*-<base64url:8>.*").unwrap();
        assert!(index.in_pool("assets/x-BxK3a9Qz.js", &shared), "its own pooled file");
        assert!(index.in_pool("assets/y-AbCd1234.js", &shared), "another release's");
        assert!(!index.in_pool("a.txt", &shared));
        assert!(index.in_pool("assets/x-BxK3a9Qz.js", &SharedAssets::default()), "as recorded, whatever the rule");
    }
}
