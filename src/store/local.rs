//! The embedded default store: a directory on disk, so the whole flow runs without AWS.
//!
//! `objects/<key>` holds each body and `meta/<key>` its headers and MD5 (the ETag). Every write
//! lands in `tmp/` first and is renamed into place, so a reader never sees half a file; conditional
//! writes of one key serialise on a file lock so separate processes get S3's create-only and
//! If-Match rules.
//! Temp files are removed when a signal stops the run, and swept once stale when a run was killed
//! outright; a deletion removes the directories it leaves empty.

use std::fs::{self, File};
use std::io::{self, Write};
use std::ops::Range;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Once};
use std::time::{Duration, SystemTime};

use async_trait::async_trait;
use bytes::Bytes;
use futures::StreamExt;
use md5::{Digest, Md5};
use serde::{Deserialize, Serialize};

use super::{Chunks, Condition, Fetched, Listed, ObjectMeta, Opened, Store, StoreError, StoreResult};
use crate::interrupt::{CLEANUP, TempFile};
use crate::site::{Contents, ReadFile};

/// A temp file lives from its creation to its rename, and its modification time moves while its
/// bytes are written; one untouched this long was left by a run killed outright.
const STALE_TEMP: Duration = Duration::from_secs(60 * 60);

/// Bytes read per step when a file is streamed. `cutover serve` queues about one per connection
/// (its connection buffer is as large), so a client that stops reading holds about 32 KiB; at
/// 128 KiB hyper queued 16 of them. Four 5 GiB downloads still run at about 0.8 GB/s here.
const CHUNK: u64 = 32 * 1024;

/// Lock files conditional writes are spread over (see [`LocalStore::exclusive`]).
const LOCK_STRIPES: u64 = 64;

#[derive(Clone)]
pub struct LocalStore {
    root: PathBuf,
    /// Whether this run swept the stale temp files yet: once, before its first write.
    swept: Arc<Once>,
}

#[derive(Serialize, Deserialize)]
struct MetaFile {
    md5: String,
    content_type: String,
    cache_control: String,
}

impl LocalStore {
    pub fn new(root: &Path) -> Self {
        Self { root: root.to_owned(), swept: Arc::new(Once::new()) }
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    fn path_in(&self, tree: &str, key: &str) -> io::Result<PathBuf> {
        let mut path = self.root.join(tree);
        for part in key.split('/') {
            if part.is_empty() || part == "." || part == ".." {
                return Err(io::Error::new(io::ErrorKind::InvalidInput, format!("unsafe key {key:?}")));
            }
            path.push(part);
        }
        Ok(path)
    }

    /// Writes `body` then its meta, each through a temp file and a rename.
    /// Writes `body` and its meta to temp files, then, if `condition` holds, renames both into
    /// place; a conditional write checks and renames under the store-wide lock, so separate
    /// processes get S3's create-only and If-Match rules.
    fn write(
        &self,
        key: &str,
        condition: &Condition,
        body: impl FnOnce(&mut File) -> io::Result<()>,
        meta: &MetaFile,
    ) -> StoreResult<()> {
        let tmp_dir = self.root.join("tmp");
        fs::create_dir_all(&tmp_dir).map_err(other(key))?;
        self.swept.call_once(|| sweep_stale(&tmp_dir, STALE_TEMP));
        let temp_file = || CLEANUP.temp_file(tmp_dir.join(format!("{:016x}", rand::random::<u64>())));
        let (mut file, body_tmp) = temp_file().map_err(other(key))?;
        body(&mut file).map_err(other(key))?;
        let (mut file, meta_tmp) = temp_file().map_err(other(key))?;
        file.write_all(&serde_json::to_vec(meta).map_err(io::Error::other).map_err(other(key))?).map_err(other(key))?;
        let _guard = if condition == &Condition::Always { None } else { Some(self.exclusive(key)?) };
        let current = self.read_meta(key).map_err(other(key))?.map(|m| m.md5);
        let allowed = match condition {
            Condition::Always => true,
            Condition::IfAbsent => current.is_none(),
            Condition::IfMatch(etag) => current.as_deref() == Some(etag.trim_matches('"')),
        };
        if !allowed {
            return Err(StoreError::PreconditionFailed);
        }
        place(&body_tmp, &self.path_in("objects", key).map_err(other(key))?).map_err(other(key))?;
        place(&meta_tmp, &self.path_in("meta", key).map_err(other(key))?).map_err(other(key))
    }

    /// Removes the directories a deletion left empty, up to the tree's root.
    fn remove_empty_parents(&self, tree: &str, deleted: &Path) {
        let top = self.root.join(tree);
        let mut dir = deleted.parent();
        while let Some(current) = dir.filter(|d| d.starts_with(&top) && *d != top) {
            match fs::remove_dir(current) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return,
                _ => dir = current.parent(),
            }
        }
    }

    /// Removes one object and the directories it leaves empty; a missing one is not an error.
    fn remove(&self, key: &str) -> StoreResult<()> {
        for tree in ["meta", "objects"] {
            let path = self.path_in(tree, key).map_err(other(key))?;
            match fs::remove_file(&path) {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(other(key)(e)),
                _ => self.remove_empty_parents(tree, &path),
            }
        }
        Ok(())
    }

    fn read_meta(&self, key: &str) -> io::Result<Option<MetaFile>> {
        match fs::read(self.path_in("meta", key)?) {
            Ok(bytes) => Ok(serde_json::from_slice(&bytes).ok()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn get_blocking(&self, key: &str) -> io::Result<Option<Fetched>> {
        let Some(meta) = self.read_meta(key)? else { return Ok(None) };
        let modified = fs::metadata(self.path_in("meta", key)?).and_then(|m| m.modified()).ok().map(Into::into);
        match fs::read(self.path_in("objects", key)?) {
            Ok(body) => Ok(Some(Fetched {
                body: Bytes::from(body),
                etag: meta.md5,
                meta: ObjectMeta { content_type: meta.content_type, cache_control: meta.cache_control },
                modified,
            })),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    fn open_blocking(&self, key: &str) -> io::Result<Option<Opened>> {
        // A key running into or through a file (`a.txt/b`) or naming a directory does not exist.
        let absent = |e: &io::Error| {
            matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::IsADirectory)
        };
        let meta = match self.read_meta(key) {
            Ok(Some(meta)) => meta,
            Err(e) if !absent(&e) => return Err(e),
            _ => return Ok(None),
        };
        let file = match File::open(self.path_in("objects", key)?) {
            Ok(file) => file,
            Err(e) if absent(&e) => return Ok(None),
            Err(e) => return Err(e),
        };
        let stat = file.metadata()?;
        if !stat.is_file() {
            return Ok(None);
        }
        Ok(Some(Opened {
            size: stat.len(),
            etag: meta.md5,
            meta: ObjectMeta { content_type: meta.content_type, cache_control: meta.cache_control },
            modified: stat.modified().ok(),
            read: Box::new(move |range| chunks(file, range)),
        }))
    }

    fn put_blocking(&self, key: &str, body: &[u8], meta: &ObjectMeta, condition: &Condition) -> StoreResult<()> {
        let md5 = hex::encode(Md5::digest(body));
        self.write(key, condition, |file| file.write_all(body), &meta_file(md5, meta))
    }

    /// Holds the lock that makes a conditional write of `key` atomic across processes. S3 promises
    /// no more than per-key atomicity, so keys share [`LOCK_STRIPES`] lock files by hash: a stage's
    /// create-only file writes rarely wait for each other, and one key always meets one lock.
    fn exclusive(&self, key: &str) -> StoreResult<File> {
        let stripe = u64::from_le_bytes(Md5::digest(key.as_bytes())[..8].try_into().expect("8 bytes")) % LOCK_STRIPES;
        let dir = self.root.join("locks");
        fs::create_dir_all(&dir).map_err(other("lock"))?;
        let file = File::create(dir.join(format!("{stripe:02}"))).map_err(other("lock"))?;
        file.lock().map_err(other("lock"))?;
        Ok(file)
    }

    fn list_blocking(&self, prefix: &str) -> io::Result<Vec<Listed>> {
        let start = prefix.rsplit_once('/').map_or("", |(dir, _)| dir);
        let base = self.root.join("objects");
        let dir = if start.is_empty() { base.clone() } else { self.path_in("objects", start)? };
        let mut found = Vec::new();
        let mut pending = vec![dir];
        while let Some(dir) = pending.pop() {
            let entries = match fs::read_dir(&dir) {
                Ok(entries) => entries,
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(e),
            };
            for entry in entries {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    pending.push(entry.path());
                    continue;
                }
                let path = entry.path();
                let Some(key) = path.strip_prefix(&base).ok().and_then(Path::to_str) else { continue };
                if !key.starts_with(prefix) {
                    continue;
                }
                if let Some(meta) = self.read_meta(key)? {
                    let stat = entry.metadata()?;
                    let modified = stat.modified().ok().map(Into::into);
                    found.push(Listed { key: key.to_owned(), size: stat.len(), etag: meta.md5, modified });
                }
            }
        }
        found.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(found)
    }
}

fn meta_file(md5: String, meta: &ObjectMeta) -> MetaFile {
    MetaFile { md5, content_type: meta.content_type.clone(), cache_control: meta.cache_control.clone() }
}

/// Renames a temp file into place, creating its directory; again when a deletion emptying that
/// directory removed it in between.
fn place(tmp: &TempFile, target: &Path) -> io::Result<()> {
    let parent = target.parent().unwrap_or(target);
    let mut attempts = 0;
    loop {
        match fs::create_dir_all(parent).and_then(|()| fs::rename(tmp.path(), target)) {
            Err(e) if e.kind() == io::ErrorKind::NotFound && tmp.path().exists() && attempts < 3 => attempts += 1,
            placed => return placed,
        }
    }
}

/// Reads `range` of an open file a [`CHUNK`] at a time, each read off the async threads. The open
/// file keeps its bytes even if the key is deleted or replaced meanwhile.
fn chunks(file: File, range: Range<u64>) -> Chunks {
    let file = Arc::new(file);
    futures::stream::try_unfold(range, move |range| {
        let file = file.clone();
        async move {
            if range.is_empty() {
                return Ok(None);
            }
            let start = range.start;
            let want = usize::try_from(range.end.saturating_sub(start).min(CHUNK)).unwrap_or(0);
            let read = tokio::task::spawn_blocking(move || {
                let mut chunk = vec![0; want];
                let read = file.read_at(&mut chunk, start)?;
                chunk.truncate(read);
                Ok::<_, io::Error>(chunk)
            });
            let chunk = read.await.map_err(io::Error::other)??;
            if chunk.is_empty() {
                return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "the file is shorter than it was"));
            }
            let next = start + chunk.len() as u64..range.end;
            Ok(Some((Bytes::from(chunk), next)))
        }
    })
    .boxed()
}

/// Removes the temp files nothing has touched for `age`.
fn sweep_stale(tmp_dir: &Path, age: Duration) {
    let Some(cutoff) = SystemTime::now().checked_sub(age) else { return };
    for entry in fs::read_dir(tmp_dir).into_iter().flatten().flatten() {
        if entry.metadata().and_then(|m| m.modified()).is_ok_and(|modified| modified < cutoff) {
            let _ = fs::remove_file(entry.path());
        }
    }
}

fn other(key: &str) -> impl Fn(io::Error) -> StoreError + '_ {
    move |source| StoreError::Local { key: key.to_owned(), source }
}

/// Runs blocking file work off the async threads.
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> StoreResult<T> + Send + 'static) -> StoreResult<T> {
    tokio::task::spawn_blocking(work).await?
}

#[async_trait]
impl Store for LocalStore {
    async fn upload(&self, key: &str, file: &ReadFile, meta: &ObjectMeta, condition: &Condition) -> StoreResult<()> {
        let (store, key, contents, condition) =
            (self.clone(), key.to_owned(), file.contents.clone(), condition.clone());
        let meta = meta_file(file.digest.md5_hex(), meta);
        let body = move |file: &mut File| match &contents {
            Contents::Memory(bytes) => file.write_all(bytes),
            Contents::Disk(path) => io::copy(&mut File::open(path)?, file).map(drop),
        };
        blocking(move || store.write(&key, &condition, body, &meta)).await
    }

    async fn copy(&self, from: &str, to: &str, meta: &ObjectMeta, condition: &Condition) -> StoreResult<()> {
        let (store, from, to, meta, condition) =
            (self.clone(), from.to_owned(), to.to_owned(), meta.clone(), condition.clone());
        blocking(move || {
            let source = store.read_meta(&from).map_err(other(&from))?;
            let source = source.ok_or_else(|| StoreError::NotFound { key: from.clone(), aws: None })?;
            let body = store.path_in("objects", &from).map_err(other(&from))?;
            let copy = |file: &mut File| io::copy(&mut File::open(&body)?, file).map(drop);
            store.write(&to, &condition, copy, &meta_file(source.md5, &meta))
        })
        .await
    }

    async fn put(&self, key: &str, body: Bytes, meta: &ObjectMeta, condition: Condition) -> StoreResult<()> {
        let (store, key, meta) = (self.clone(), key.to_owned(), meta.clone());
        blocking(move || store.put_blocking(&key, &body, &meta, &condition)).await
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Fetched>> {
        let (store, key) = (self.clone(), key.to_owned());
        blocking(move || store.get_blocking(&key).map_err(other(&key))).await
    }

    async fn open(&self, key: &str) -> StoreResult<Option<Opened>> {
        let (store, key) = (self.clone(), key.to_owned());
        blocking(move || store.open_blocking(&key).map_err(other(&key))).await
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<Listed>> {
        let (store, prefix) = (self.clone(), prefix.to_owned());
        blocking(move || store.list_blocking(&prefix).map_err(other(&prefix))).await
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<()> {
        let (store, keys) = (self.clone(), keys.to_vec());
        blocking(move || keys.iter().try_for_each(|key| store.remove(key))).await
    }

    async fn delete_if_match(&self, key: &str, etag: &str) -> StoreResult<()> {
        let (store, key, etag) = (self.clone(), key.to_owned(), etag.trim_matches('"').to_owned());
        blocking(move || {
            // Checked and removed under the key's stripe lock, as a conditional write is.
            let _guard = store.exclusive(&key)?;
            match store.read_meta(&key).map_err(other(&key))? {
                Some(meta) if meta.md5 != etag => Err(StoreError::PreconditionFailed),
                _ => store.remove(&key),
            }
        })
        .await
    }

    /// Absolute, so the same store is described alike however its path was written (`.cutover`,
    /// `./.cutover`): the GitHub comment's marker names it.
    fn describe(&self) -> String {
        let root = std::path::absolute(&self.root).unwrap_or_else(|_| self.root.clone());
        let root: PathBuf = root.components().collect();
        format!("local store {}", root.display())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta() -> ObjectMeta {
        ObjectMeta { content_type: "text/plain".into(), cache_control: "no-cache".into() }
    }

    #[test]
    fn a_store_is_described_alike_however_its_path_is_written() {
        let here = std::env::current_dir().unwrap().join(".cutover");
        let described = |path: &Path| LocalStore::new(path).describe();
        for written in [Path::new(".cutover"), Path::new("./.cutover"), Path::new("./.cutover/"), here.as_path()] {
            assert_eq!(described(written), format!("local store {}", here.display()), "{written:?}");
        }
    }

    #[tokio::test]
    async fn conditional_puts_follow_s3_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store.put("a/lock", Bytes::from("one"), &meta(), Condition::IfAbsent).await.unwrap();
        let again = store.put("a/lock", Bytes::from("two"), &meta(), Condition::IfAbsent).await;
        assert!(matches!(again, Err(StoreError::PreconditionFailed)));
        let stale = store.put("a/lock", Bytes::from("two"), &meta(), Condition::IfMatch("nope".into())).await;
        assert!(matches!(stale, Err(StoreError::PreconditionFailed)));
        let etag = store.get("a/lock").await.unwrap().unwrap().etag;
        store.put("a/lock", Bytes::from("two"), &meta(), Condition::IfMatch(etag)).await.unwrap();
        assert_eq!(store.get("a/lock").await.unwrap().unwrap().body, "two");
    }

    #[tokio::test]
    async fn conditional_deletes_follow_s3_rules() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store.put("a/lock", Bytes::from("one"), &meta(), Condition::Always).await.unwrap();
        let other = store.delete_if_match("a/lock", "nope").await;
        assert!(matches!(other, Err(StoreError::PreconditionFailed)));
        assert!(store.get("a/lock").await.unwrap().is_some(), "another holder's object stays");
        let etag = store.get("a/lock").await.unwrap().unwrap().etag;
        store.delete_if_match("a/lock", &format!("\"{etag}\"")).await.unwrap();
        assert!(store.get("a/lock").await.unwrap().is_none());
        store.delete_if_match("a/lock", &etag).await.unwrap();
    }

    #[tokio::test]
    async fn list_copy_delete() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        store.put("s/1/a.txt", Bytes::from("a"), &meta(), Condition::Always).await.unwrap();
        store.put("s/1/d/b.txt", Bytes::from("bb"), &meta(), Condition::Always).await.unwrap();
        store.put("s/10/c.txt", Bytes::from("c"), &meta(), Condition::Always).await.unwrap();
        store.copy("s/1/a.txt", "s/2/a.txt", &meta(), &Condition::IfAbsent).await.unwrap();
        let again = store.copy("s/1/a.txt", "s/2/a.txt", &meta(), &Condition::IfAbsent).await;
        assert!(matches!(again, Err(StoreError::PreconditionFailed)), "a create-only copy never overwrites");
        let missing = store.copy("s/9/a.txt", "s/3/a.txt", &meta(), &Condition::IfAbsent).await.unwrap_err();
        assert!(matches!(&missing, StoreError::NotFound { key, aws: None } if key == "s/9/a.txt"), "{missing}");
        assert_eq!(missing.to_string(), "local store: s/9/a.txt does not exist");
        let keys: Vec<_> = store.list("s/1/").await.unwrap().into_iter().map(|l| (l.key, l.size)).collect();
        assert_eq!(keys, [("s/1/a.txt".to_owned(), 1), ("s/1/d/b.txt".to_owned(), 2)]);
        assert_eq!(store.get("s/2/a.txt").await.unwrap().unwrap().etag, hex::encode(Md5::digest(b"a")));
        store.delete(&["s/1/a.txt".into(), "s/1/missing".into()]).await.unwrap();
        assert!(store.get("s/1/a.txt").await.unwrap().is_none());
        assert!(store.put("../x", Bytes::new(), &meta(), Condition::Always).await.is_err());
    }

    #[tokio::test]
    async fn open_streams_a_range_and_finds_no_object_through_a_file_or_at_a_directory() {
        use futures::TryStreamExt;
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        let body: Vec<u8> = (0..300_000u32).map(|i| i.to_le_bytes()[0]).collect();
        store.put("s/1/d/a.bin", Bytes::from(body.clone()), &meta(), Condition::Always).await.unwrap();
        let opened = store.open("s/1/d/a.bin").await.unwrap().unwrap();
        assert_eq!((opened.size, opened.etag.as_str()), (300_000, hex::encode(Md5::digest(&body)).as_str()));
        let chunks: Vec<Bytes> = (opened.read)(1..290_001).try_collect().await.unwrap();
        assert_eq!(
            chunks.iter().map(Bytes::len).collect::<Vec<_>>(),
            [32_768, 32_768, 32_768, 32_768, 32_768, 32_768, 32_768, 32_768, 27_856],
            "read a chunk at a time"
        );
        assert_eq!(chunks.concat(), body[1..290_001]);
        for absent in ["s/1/d/a.bin/x", "s/1/d", "s/1/d/missing"] {
            assert!(store.open(absent).await.unwrap().is_none(), "{absent}");
        }
    }

    #[tokio::test]
    async fn a_deletion_leaves_no_empty_directories() {
        let dir = tempfile::tempdir().unwrap();
        let store = LocalStore::new(dir.path());
        for key in ["s/1/a.txt", "s/1/d/e/b.txt", "s/2/c.txt"] {
            store.put(key, Bytes::from("x"), &meta(), Condition::Always).await.unwrap();
        }
        store.delete(&["s/1/a.txt".into(), "s/1/d/e/b.txt".into()]).await.unwrap();
        for tree in ["objects", "meta"] {
            assert!(!dir.path().join(tree).join("s/1").exists(), "{tree}/s/1 is left behind");
            assert!(dir.path().join(tree).join("s/2/c.txt").exists());
        }
        store.delete(&["s/2/c.txt".into()]).await.unwrap();
        for tree in ["objects", "meta"] {
            assert_eq!(fs::read_dir(dir.path().join(tree)).unwrap().count(), 0, "{tree} is emptied, not removed");
        }
        assert!(store.list("s/").await.unwrap().is_empty());
    }

    #[tokio::test]
    async fn the_first_write_sweeps_stale_temp_files_and_leaves_fresh_ones() {
        let dir = tempfile::tempdir().unwrap();
        let tmp = dir.path().join("tmp");
        fs::create_dir_all(&tmp).unwrap();
        let stale = File::create(tmp.join("stale")).unwrap();
        stale.set_modified(SystemTime::now() - STALE_TEMP - Duration::from_secs(60)).unwrap();
        fs::write(tmp.join("fresh"), "a run still writing").unwrap();
        let store = LocalStore::new(dir.path());
        store.put("s/1/a.txt", Bytes::from("a"), &meta(), Condition::Always).await.unwrap();
        let left: Vec<_> = fs::read_dir(&tmp).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(left, ["fresh"], "the stale temp file is swept, the fresh one and none of this run's remain");
    }
}
