//! The routing index: the list of a release's files that the edge routes from (which paths name a
//! file, which directories have an index page, whether there is a not-found page), written by stage
//! next to the release record so the CloudFront router never asks S3 per request.

use std::collections::HashSet;

use anyhow::Context;
use bytes::Bytes;
use serde::{Deserialize, Serialize};

use crate::backend::Site;
use crate::release::{Layout, read_record};
use crate::store::{Condition, StoreError, json_meta};

/// The format a reader must understand; the router checks it too.
const FORMAT: u32 = 1;

/// The files of one release, as the edge needs them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RouteIndex {
    files: HashSet<String>,
}

#[derive(Serialize, Deserialize)]
struct Stored {
    format: u32,
    files: Vec<String>,
}

impl RouteIndex {
    pub fn new<S: Into<String>>(files: impl IntoIterator<Item = S>) -> Self {
        Self { files: files.into_iter().map(Into::into).collect() }
    }

    /// Whether the release holds a file at this release-relative path.
    pub fn contains(&self, path: &str) -> bool {
        self.files.contains(path)
    }

    /// `{"format":1,"files":[...]}`, the files sorted so the same release always writes the same bytes.
    pub fn to_json(&self) -> Vec<u8> {
        let mut files: Vec<String> = self.files.iter().cloned().collect();
        files.sort();
        serde_json::to_vec(&Stored { format: FORMAT, files }).expect("strings always serialise")
    }

    pub fn from_json(bytes: &[u8]) -> anyhow::Result<Self> {
        let stored: Stored = serde_json::from_slice(bytes).context("reading a routing index")?;
        anyhow::ensure!(stored.format == FORMAT, "routing index format {} is not {FORMAT}", stored.format);
        Ok(Self::new(stored.files))
    }
}

/// `<prefix>/_cutover/routes/<version>.json`.
pub fn key(layout: &Layout, version: &str) -> String {
    format!("{}routes/{version}.json", layout.cutover_dir())
}

/// Writes the index of a just-recorded release. Written after the record: a release read before
/// its index lands is routed from the record (see [`read`]).
pub async fn write(site: &Site, version: &str, index: &RouteIndex) -> Result<(), StoreError> {
    site.store.put(&key(&site.layout, version), Bytes::from(index.to_json()), &json_meta(), Condition::Always).await
}

/// The index of a recorded release: its index, else (staged by an older cutover, the index not
/// written yet, or damaged: logged) its record's file list; `None` when the version is not a
/// recorded release.
pub async fn read(site: &Site, version: &str) -> anyhow::Result<Option<RouteIndex>> {
    if let Some(object) = site.store.get(&key(&site.layout, version)).await? {
        match RouteIndex::from_json(&object.body) {
            Ok(index) => return Ok(Some(index)),
            Err(e) => crate::say!("the routing index of {version} is damaged, routing from its record: {e:#}"),
        }
    }
    let record = read_record(site, &site.layout.record_key(version)).await?;
    Ok(record.map(|r| RouteIndex::new(r.files.into_keys())))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_index_round_trips_sorted() {
        let index = RouteIndex::new(["b/index.html", "a.txt", "CNAME"]);
        assert_eq!(
            String::from_utf8(index.to_json()).unwrap(),
            r#"{"format":1,"files":["CNAME","a.txt","b/index.html"]}"#
        );
        assert_eq!(RouteIndex::from_json(&index.to_json()).unwrap(), index);
        assert!(RouteIndex::from_json(br#"{"format":2,"files":[]}"#).is_err());
        assert_eq!(key(&Layout::new("site"), "41"), "site/_cutover/routes/41.json");
    }
}
