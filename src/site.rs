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

/// Names never released unless `release-secret-files` says so, matched case-insensitively against
/// every file and directory name at any depth: each holds credentials, or a repository's whole
/// history, and a static site needs none of them. `.env.*` includes `.env.example`: a template is
/// no use to visitors, and real values end up in one often enough.
const SECRET_NAMES: &[&str] = &[
    // Version control: the full source history, often with credentials in old commits.
    ".git",
    ".svn",
    ".hg",
    // Environment files (`.env.*` is matched below) and a Python virtualenv named `.env/`.
    ".env",
    // Registry and network credentials.
    ".npmrc",
    ".yarnrc.yml",
    ".pypirc",
    ".netrc",
    "_netrc",
    ".git-credentials",
    ".htpasswd",
    // Credential directories of a home directory.
    ".aws",
    ".ssh",
    ".gnupg",
    // SSH private keys (the `.pub` halves are public and released).
    "id_rsa",
    "id_dsa",
    "id_ecdsa",
    "id_ed25519",
];

/// Extensions of files that are secret when they hold a PEM private key; a certificate, or a
/// Keynote deck named `.key`, is released.
const KEY_EXTENSIONS: &[&str] = &["pem", "key"];

/// How much of a `.pem` or `.key` file is searched for a private key block.
const KEY_SNIFF_BYTES: u64 = 64 * 1024;

/// Secret entries listed in full in the warning; the rest are counted.
const SECRETS_NAMED: usize = 10;

#[derive(Debug, thiserror::Error)]
pub enum WalkError {
    #[error("{path} holds no files to release{}", skipped_note(skipped))]
    Empty { path: PathBuf, skipped: Vec<String> },
    #[error("{0} is the store directory: a build cannot hold the store it is released into; set store-dir outside it")]
    IsStore(PathBuf),
    #[error("{path}: symlink leads outside the build directory (to {target})")]
    EscapingLink { path: PathBuf, target: PathBuf },
    #[error("{0}: not a regular file (a FIFO, socket or device cannot be released)")]
    NotAFile(PathBuf),
    #[error("{0}: file name is not valid UTF-8")]
    NotUtf8(PathBuf),
    #[error("{0:?}: a name holding a control character (a newline, a tab) cannot be released")]
    ControlCharacter(String),
    #[error("{path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("walking the build directory: {0}")]
    Walk(#[from] walkdir::Error),
}

fn skipped_note(skipped: &[String]) -> String {
    if skipped.is_empty() { String::new() } else { format!(" ({})", secrets_warning(skipped)) }
}

/// What the walk leaves out besides what it always refuses.
#[derive(Debug, Clone, Default)]
pub struct WalkOptions {
    /// The embedded store's directory: cutover's own, never part of a release, wherever it is.
    pub store_dir: Option<PathBuf>,
    /// Release the secret files (see [`SECRET_NAMES`]) instead of leaving them out.
    pub release_secret_files: bool,
}

/// The files to release, and the secret ones left out.
#[derive(Debug, Clone)]
pub struct Walked {
    /// Sorted by path.
    pub files: Vec<SiteFile>,
    /// Release-relative paths of the secret files and directories (ending in `/`) left out.
    pub secrets_skipped: Vec<String>,
}

/// Lists every file to release, sorted by path.
///
/// Hidden files are released (`.well-known/`), ignore files are not honoured (a `dist/` is often
/// git-ignored), symlinks are followed only while they stay inside `root`. The store directory is
/// never entered, and secret files are left out unless `options` says to release them.
pub fn walk(root: &Path, options: &WalkOptions) -> Result<Walked, WalkError> {
    fn io_err(path: &Path) -> impl FnOnce(io::Error) -> WalkError + '_ {
        move |source| WalkError::Io { path: path.to_owned(), source }
    }
    let canonical_root = root.canonicalize().map_err(io_err(root))?;
    // A store that does not exist yet cannot be in the build: nothing is written before the walk.
    let store = options.store_dir.as_deref().and_then(|dir| dir.canonicalize().ok());
    if store.as_deref() == Some(canonical_root.as_path()) {
        return Err(WalkError::IsStore(root.to_owned()));
    }
    let mut entries = walkdir::WalkDir::new(&canonical_root).follow_links(true).sort_by_file_name().into_iter();
    let (mut files, mut secrets_skipped) = (Vec::new(), Vec::new());
    while let Some(entry) = entries.next() {
        let entry = entry?;
        if entry.depth() == 0 {
            continue;
        }
        let path = entry.path();
        let relative = path.strip_prefix(&canonical_root).expect("walked paths are under the root");
        let relative = relative.to_str().ok_or_else(|| WalkError::NotUtf8(path.to_owned()))?;
        let relative = relative.replace(std::path::MAIN_SEPARATOR, "/");
        // A newline in a key would let a file name write lines of its own into CI logs.
        if relative.chars().any(char::is_control) {
            return Err(WalkError::ControlCharacter(relative));
        }
        let kind = entry.file_type();
        if kind.is_dir() {
            let target = path.canonicalize().ok();
            if store.is_some() && target == store {
                entries.skip_current_dir();
            } else if !options.release_secret_files
                && (is_secret_name(&entry.file_name().to_string_lossy())
                    || target.is_some_and(|t| reaches_secret(&canonical_root, &t)))
            {
                entries.skip_current_dir();
                secrets_skipped.push(format!("{relative}/"));
            }
            continue;
        }
        if !kind.is_file() {
            return Err(WalkError::NotAFile(path.to_owned()));
        }
        let target = path.canonicalize().map_err(io_err(path))?;
        if !target.starts_with(&canonical_root) {
            return Err(WalkError::EscapingLink { path: path.to_owned(), target });
        }
        let size = entry.metadata()?.len();
        let file = File::open(path).map_err(io_err(path))?;
        // A link is as secret as what it leads to: by the target's names and, for a key file, its content.
        let secret = || -> io::Result<bool> {
            let linked = target.strip_prefix(&canonical_root).ok().and_then(Path::to_str).filter(|t| *t != relative);
            Ok(reaches_secret(&canonical_root, &target)
                || is_secret_file(&relative, file)?
                || linked.map(|t| is_secret_file(t, File::open(&target)?)).transpose()?.unwrap_or(false))
        };
        if !options.release_secret_files && secret().map_err(io_err(path))? {
            secrets_skipped.push(relative);
            continue;
        }
        files.push(SiteFile { path: relative, size });
    }
    if files.is_empty() {
        return Err(WalkError::Empty { path: root.to_owned(), skipped: secrets_skipped });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(Walked { files, secrets_skipped })
}

/// Whether a symlink's target (canonical, inside `root`) is or lies inside a secret file or
/// directory: `ln -s .git repo` releases `.git` as surely as `.git` itself would.
fn reaches_secret(root: &Path, target: &Path) -> bool {
    let inside = target.strip_prefix(root).unwrap_or(target);
    inside.components().any(|part| is_secret_name(&part.as_os_str().to_string_lossy()))
}

/// Whether a file or directory name is one of [`SECRET_NAMES`], or `.env.<anything>`.
fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_NAMES.contains(&name.as_str()) || name.starts_with(".env.")
}

/// Whether the file at `relative` (open as `file`) is secret by its name or, for a `.pem` or `.key`
/// file, by holding a private key.
fn is_secret_file(relative: &str, file: File) -> io::Result<bool> {
    let name = relative.rsplit('/').next().unwrap_or(relative);
    if is_secret_name(name) {
        return Ok(true);
    }
    let extension = name.rsplit_once('.').map(|(_, ext)| ext.to_ascii_lowercase());
    if !extension.is_some_and(|ext| KEY_EXTENSIONS.contains(&ext.as_str())) {
        return Ok(false);
    }
    let mut head = Vec::new();
    file.take(KEY_SNIFF_BYTES).read_to_end(&mut head)?;
    Ok(head.windows(b"PRIVATE KEY-----".len()).any(|w| w == b"PRIVATE KEY-----"))
}

/// The one warning line naming the secret files a walk left out.
pub fn secrets_warning(skipped: &[String]) -> String {
    // Quoted: a name is the build's to choose, and must not read as anything but a name.
    let mut named = skipped.iter().take(SECRETS_NAMED).map(|name| format!("{name:?}")).collect::<Vec<_>>().join(", ");
    if skipped.len() > SECRETS_NAMED {
        named.push_str(&format!(" and {} more", skipped.len() - SECRETS_NAMED));
    }
    format!("not released, as they may hold secrets: {named} (set release-secret-files to true to release them)")
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
            let take = chunk.len().min(usize::try_from(PART_SIZE - part_len).unwrap_or(usize::MAX));
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
        assert_eq!(
            paths(dir.path(), &WalkOptions::default()),
            [".gitignore", ".ignore", ".well-known/security.txt", "assets/app.js", "index.html"]
        );
    }

    fn paths(root: &Path, options: &WalkOptions) -> Vec<String> {
        walk(root, options).unwrap().files.into_iter().map(|f| f.path).collect()
    }

    const PRIVATE_KEY: &str = "-----BEGIN PRIVATE KEY-----\nMIIEv\n-----END PRIVATE KEY-----\n";
    const CERTIFICATE: &str = "-----BEGIN CERTIFICATE-----\nMIIDd\n-----END CERTIFICATE-----\n";

    #[test]
    fn secret_files_are_left_out_and_named_unless_asked_for() {
        let dir = tree(&[
            ("index.html", "hi"),
            (".git/HEAD", "ref: refs/heads/main"),
            (".git/objects/ab/cdef", "x"),
            (".env", "TOKEN=s3cr3t"),
            (".env.production.local", "TOKEN=s3cr3t"),
            (".ENV.example", "TOKEN="),
            ("docs/.npmrc", "//registry.npmjs.org/:_authToken=x"),
            ("vendor/lib/.git", "gitdir: ../../.git/modules/lib"),
            ("venv/.env/bin/python", "x"),
            (".ssh/id_ed25519", "key"),
            ("keys/id_rsa", "key"),
            ("keys/id_rsa.pub", "ssh-rsa AAAA"),
            ("tls/server.pem", PRIVATE_KEY),
            ("tls/chain.pem", CERTIFICATE),
            ("talks/deck.key", "a Keynote deck"),
            (".htpasswd", "admin:$apr1$x"),
            (".well-known/security.txt", "Contact: x"),
            (".gitignore", "*"),
            (".environment.js", "not an env file"),
            (".DS_Store", "x"),
        ]);
        let walked = walk(dir.path(), &WalkOptions::default()).unwrap();
        let released: Vec<_> = walked.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            released,
            [
                ".DS_Store",
                ".environment.js",
                ".gitignore",
                ".well-known/security.txt",
                "index.html",
                "keys/id_rsa.pub",
                "talks/deck.key",
                "tls/chain.pem"
            ]
        );
        assert_eq!(
            walked.secrets_skipped,
            [
                ".ENV.example",
                ".env",
                ".env.production.local",
                ".git/",
                ".htpasswd",
                ".ssh/",
                "docs/.npmrc",
                "keys/id_rsa",
                "tls/server.pem",
                "vendor/lib/.git",
                "venv/.env/"
            ]
        );
        let warning = secrets_warning(&walked.secrets_skipped);
        assert!(
            warning.starts_with("not released, as they may hold secrets: \".ENV.example\", \".env\","),
            "{warning}"
        );
        assert!(warning.contains("\"vendor/lib/.git\" and 1 more (set release-secret-files to true"), "{warning}");

        let all = WalkOptions { release_secret_files: true, ..WalkOptions::default() };
        let walked = walk(dir.path(), &all).unwrap();
        assert!(walked.secrets_skipped.is_empty());
        assert_eq!(walked.files.len(), 20);
    }

    #[test]
    fn a_link_to_a_secret_is_as_secret_as_what_it_names() {
        let dir = tree(&[
            ("index.html", "hi"),
            (".git/config", "[remote]"),
            (".ENV", "TOKEN=s3cr3t"),
            (".aws/credentials", "k"),
        ]);
        for (target, link) in
            [(".git", "repo"), (".ENV", "public.env.txt"), (".aws", "awsdir"), (".git/config", "gitconfig")]
        {
            std::os::unix::fs::symlink(dir.path().join(target), dir.path().join(link)).unwrap();
        }
        let walked = walk(dir.path(), &WalkOptions::default()).unwrap();
        let released: Vec<_> = walked.files.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(released, ["index.html"]);
        assert_eq!(
            walked.secrets_skipped,
            [".ENV", ".aws/", ".git/", "awsdir/", "gitconfig", "public.env.txt", "repo/"]
        );
    }

    #[test]
    fn names_with_control_characters_are_refused_and_never_printed_raw() {
        for name in [".env.a\n::warning::INJECTED", ".git\n::error::GITDIR/config", "tab\there.html"] {
            let dir = tree(&[("index.html", "hi"), (name, "x")]);
            let err = walk(dir.path(), &WalkOptions::default()).unwrap_err();
            assert!(matches!(err, WalkError::ControlCharacter(_)), "{name:?}: {err}");
            assert!(!err.to_string().contains(['\n', '\t']), "{err}");
        }
        let warning = secrets_warning(&[".env.b']##teamcity[buildStatus text='x".to_owned()]);
        assert!(warning.contains("\".env.b']##teamcity[buildStatus text='x\""), "{warning}");
    }

    #[test]
    fn a_build_of_nothing_but_secrets_says_what_it_left_out() {
        let dir = tree(&[(".env", "TOKEN=s3cr3t")]);
        let err = walk(dir.path(), &WalkOptions::default()).unwrap_err();
        assert!(err.to_string().ends_with("holds no files to release (not released, as they may hold secrets: \".env\" (set release-secret-files to true to release them))"), "{err}");
    }

    #[test]
    fn the_store_directory_is_never_released_wherever_it_is() {
        let dir = tree(&[
            ("index.html", "hi"),
            (".cutover/objects/site/1/index.html", "old"),
            ("nested/store/meta/site/1/index.html", "{}"),
        ]);
        std::os::unix::fs::symlink(dir.path().join(".cutover"), dir.path().join("alias")).unwrap();
        let options = |store: &str| WalkOptions { store_dir: Some(dir.path().join(store)), ..WalkOptions::default() };
        assert_eq!(paths(dir.path(), &options(".cutover")), ["index.html", "nested/store/meta/site/1/index.html"]);
        assert_eq!(
            paths(dir.path(), &options("nested/store")),
            [".cutover/objects/site/1/index.html", "alias/objects/site/1/index.html", "index.html"]
        );
        assert_eq!(paths(dir.path(), &options("not/there")).len(), 4);
        let err = walk(dir.path(), &options(".")).unwrap_err();
        assert!(matches!(err, WalkError::IsStore(_)), "{err}");
        assert!(err.to_string().contains("set store-dir outside it"), "{err}");
    }

    #[test]
    fn empty_directory_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::create_dir(dir.path().join("sub")).unwrap();
        assert!(matches!(walk(dir.path(), &WalkOptions::default()), Err(WalkError::Empty { .. })));
    }

    #[test]
    fn symlinks_inside_are_followed_and_outside_refused() {
        let outside = tree(&[("secret", "s")]);
        let dir = tree(&[("index.html", "hi")]);
        std::os::unix::fs::symlink(dir.path().join("index.html"), dir.path().join("alias.html")).unwrap();
        assert_eq!(paths(dir.path(), &WalkOptions::default()).len(), 2);
        std::os::unix::fs::symlink(outside.path().join("secret"), dir.path().join("leak")).unwrap();
        let err = walk(dir.path(), &WalkOptions::default()).unwrap_err();
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
        let part_size = usize::try_from(PART_SIZE).unwrap();
        let parts: Vec<u8> = body.chunks(part_size).flat_map(|c| Md5::digest(c).to_vec()).collect();
        let expected = format!("{}-{}", hex::encode(Md5::digest(&parts)), parts.len() / 16);
        assert_eq!(digest.multipart_etag.as_deref(), Some(expected.as_str()));
        assert!(digest.matches_etag(&format!("\"{expected}\"")));
        let small = hash_file(&dir.path().join("big.bin"), 10).unwrap();
        assert!(small.multipart_etag.is_none() && small.part_md5s.is_empty());
        assert_eq!(digest.part_md5s.len(), 3);
        assert_eq!(digest.part_md5s[2], <[u8; 16]>::from(Md5::digest(&body[2 * part_size..])));
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
