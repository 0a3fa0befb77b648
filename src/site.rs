//! The build output: which files a release holds, and their streamed MD5 digests.

use std::fs::{self, File};
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use bytes::Bytes;
use md5::{Digest, Md5};

/// Files above this size are uploaded in parts.
pub const MULTIPART_THRESHOLD: u64 = 16 * 1024 * 1024;
/// Size of each part of a multipart upload.
pub const PART_SIZE: u64 = 8 * 1024 * 1024;
/// Files up to this size are read into memory once, then hashed and uploaded from those bytes;
/// larger ones are hashed in a streamed pass and uploaded from disk. At most `concurrency` files
/// are held at once, so this bounds staging's buffers (32 x 256 KiB = 8 MiB by default).
pub const IN_MEMORY_MAX: u64 = 256 * 1024;

/// One file of the build output.
#[derive(Debug, Clone)]
pub struct SiteFile {
    /// Release-relative path with `/` separators, e.g. `assets/app.js`; on disk, under the root.
    pub path: String,
    pub size: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{0} holds no files")]
    Empty(PathBuf),
    #[error("{path}: symlink leads outside the build directory (to {target})")]
    EscapingLink { path: PathBuf, target: PathBuf },
    #[error("{0}: not a regular file (a FIFO, socket or device cannot be released)")]
    NotAFile(PathBuf),
    #[error("{0}: file name is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("walking the build directory: {0}")]
    Walk(#[from] ignore::Error),
}

/// Lists every file to release, sorted by path.
///
/// Hidden files are released (`.well-known/`), ignore files are not honoured (a `dist/` is often
/// git-ignored), symlinks are followed only while they stay inside `root`.
pub fn walk(root: &Path) -> Result<Vec<SiteFile>, WalkError> {
    fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalkError + '_ {
        move |source| WalkError::Io { path: path.to_owned(), source }
    }
    let canonical_root = root.canonicalize().map_err(io_err(root))?;
    let walker = ignore::WalkBuilder::new(&canonical_root)
        .standard_filters(false)
        .follow_links(true)
        .sort_by_file_name(|a, b| a.cmp(b))
        .build();
    let mut files = Vec::new();
    for entry in walker {
        let entry = entry?;
        let path = entry.path();
        let Some(kind) = entry.file_type() else { continue };
        if kind.is_dir() {
            continue;
        }
        if !kind.is_file() {
            return Err(WalkError::NotAFile(path.to_owned()));
        }
        let target = path.canonicalize().map_err(io_err(path))?;
        if !target.starts_with(&canonical_root) {
            return Err(WalkError::EscapingLink { path: path.to_owned(), target });
        }
        let relative = path.strip_prefix(&canonical_root).expect("walked paths are under the root");
        let relative = relative.to_str().ok_or_else(|| WalkError::NotUtf8(path.to_owned()))?;
        let size = entry.metadata()?.len();
        File::open(path).map_err(io_err(path))?;
        files.push(SiteFile { path: relative.replace(std::path::MAIN_SEPARATOR, "/"), size });
    }
    if files.is_empty() {
        return Err(WalkError::Empty(root.to_owned()));
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// A file's MD5 and, for multipart-sized files, each part's MD5 and the ETag S3 gives the upload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileDigest {
    pub md5: [u8; 16],
    /// The MD5 of each [`PART_SIZE`] part, for files above [`MULTIPART_THRESHOLD`].
    pub part_md5s: Vec<[u8; 16]>,
    pub multipart_etag: Option<String>,
}

impl FileDigest {
    pub fn md5_hex(&self) -> String {
        hex::encode(self.md5)
    }

    /// Whether a stored object's ETag shows it holds exactly this content.
    pub fn matches_etag(&self, etag: &str) -> bool {
        let etag = etag.trim_matches('"');
        etag == self.md5_hex() || self.multipart_etag.as_deref() == Some(etag)
    }
}

/// Where an upload reads a file's bytes from.
#[derive(Debug, Clone)]
pub enum Contents {
    Memory(Bytes),
    Disk(PathBuf),
}

/// A file read for staging: its size and digest as read, and where its bytes are.
#[derive(Debug, Clone)]
pub struct ReadFile {
    pub size: u64,
    pub digest: FileDigest,
    pub contents: Contents,
}

/// Reads a file for staging: whole when it is small (one read serves hash and upload, and the
/// upload sends exactly the bytes hashed), else streamed through the hash and left on disk.
pub fn read_file(path: &Path, size: u64) -> io::Result<ReadFile> {
    if size <= IN_MEMORY_MAX {
        let bytes = Bytes::from(fs::read(path)?);
        let digest = FileDigest { md5: Md5::digest(&bytes).into(), part_md5s: Vec::new(), multipart_etag: None };
        return Ok(ReadFile { size: bytes.len() as u64, digest, contents: Contents::Memory(bytes) });
    }
    Ok(ReadFile { size, digest: hash_file(path, size)?, contents: Contents::Disk(path.to_owned()) })
}

/// Hashes a file in fixed-size chunks; the file is never held in memory whole.
pub fn hash_file(path: &Path, size: u64) -> io::Result<FileDigest> {
    let mut file = File::open(path)?;
    let mut whole = Md5::new();
    let multipart = size > MULTIPART_THRESHOLD;
    let (mut part, mut part_len, mut part_md5s) = (Md5::new(), 0u64, Vec::<[u8; 16]>::new());
    let mut buffer = vec![0u8; 256 * 1024];
    loop {
        let read = file.read(&mut buffer)?;
        if read == 0 {
            break;
        }
        let mut chunk = &buffer[..read];
        whole.update(chunk);
        while multipart && !chunk.is_empty() {
            let take = chunk.len().min((PART_SIZE - part_len) as usize);
            part.update(&chunk[..take]);
            part_len += take as u64;
            chunk = &chunk[take..];
            if part_len == PART_SIZE {
                part_md5s.push(part.finalize_reset().into());
                part_len = 0;
            }
        }
    }
    if multipart && part_len > 0 {
        part_md5s.push(part.finalize().into());
    }
    let multipart_etag =
        multipart.then(|| format!("{}-{}", hex::encode(Md5::digest(part_md5s.concat())), part_md5s.len()));
    Ok(FileDigest { md5: whole.finalize().into(), part_md5s, multipart_etag })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tree(files: &[(&str, &str)]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (path, body) in files {
            let full = dir.path().join(path);
            fs::create_dir_all(full.parent().unwrap()).unwrap();
            fs::write(full, body).unwrap();
        }
        dir
    }

    #[test]
    fn hidden_files_are_released_and_ignore_files_are_not_honoured() {
        let dir = tree(&[
            ("index.html", "hi"),
            (".well-known/security.txt", "x"),
            (".gitignore", "*\n"),
            (".ignore", "*.js\n"),
            ("assets/app.js", "js"),
        ]);
        let paths: Vec<_> = walk(dir.path()).unwrap().into_iter().map(|f| f.path).collect();
        assert_eq!(paths, [".gitignore", ".ignore", ".well-known/security.txt", "assets/app.js", "index.html"]);
    }

    #[test]
    fn empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(matches!(walk(dir.path()), Err(WalkError::Empty(_))));
    }

    #[test]
    fn symlinks_inside_are_followed_and_outside_refused() {
        let outside = tree(&[("secret", "s")]);
        let dir = tree(&[("index.html", "hi")]);
        std::os::unix::fs::symlink(dir.path().join("index.html"), dir.path().join("alias.html")).unwrap();
        assert_eq!(walk(dir.path()).unwrap().len(), 2);
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak")).unwrap();
        let err = walk(dir.path()).unwrap_err();
        assert!(matches!(err, WalkError::EscapingLink { .. }), "{err}");
        assert!(err.to_string().contains("leak"), "{err}");
    }

    #[test]
    fn md5_is_streamed_and_multipart_etag_matches_s3s_scheme() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big.bin");
        let body: Vec<u8> = (0..MULTIPART_THRESHOLD + 1234).map(|i| (i % 251) as u8).collect();
        fs::write(&path, &body).unwrap();
        let digest = hash_file(&path, body.len() as u64).unwrap();
        assert_eq!(digest.md5, <[u8; 16]>::from(Md5::digest(&body)));
        let parts: Vec<u8> = body.chunks(PART_SIZE as usize).flat_map(|c| Md5::digest(c).to_vec()).collect();
        let expected = format!("{}-{}", hex::encode(Md5::digest(&parts)), parts.len() / 16);
        assert_eq!(digest.multipart_etag.as_deref(), Some(expected.as_str()));
        assert!(digest.matches_etag(&format!("\"{expected}\"")));
        let small = hash_file(&dir.path().join("big.bin"), 10).unwrap();
        assert!(small.multipart_etag.is_none() && small.part_md5s.is_empty());
        assert_eq!(digest.part_md5s.len(), 3);
        assert_eq!(digest.part_md5s[2], <[u8; 16]>::from(Md5::digest(&body[2 * PART_SIZE as usize..])));
    }

    #[test]
    fn small_files_are_read_once_into_memory_and_large_ones_stay_on_disk() {
        let dir = tempfile::tempdir().unwrap();
        for size in [0, IN_MEMORY_MAX, IN_MEMORY_MAX + 1] {
            let path = dir.path().join(format!("f{size}"));
            let body: Vec<u8> = (0..size).map(|i| (i % 253) as u8).collect();
            fs::write(&path, &body).unwrap();
            let read = read_file(&path, size).unwrap();
            assert_eq!(read.digest, hash_file(&path, size).unwrap(), "{size} bytes");
            assert_eq!(read.size, size);
            match read.contents {
                Contents::Memory(bytes) => assert!(size <= IN_MEMORY_MAX && bytes == body, "{size} bytes"),
                Contents::Disk(on_disk) => assert!(size > IN_MEMORY_MAX && on_disk == path, "{size} bytes"),
            }
        }
    }
}
