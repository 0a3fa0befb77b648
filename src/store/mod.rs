//! Where releases live: one narrow seam, implemented for S3 and for a local directory.

use std::ops::Range;
use std::time::SystemTime;

use async_trait::async_trait;
use bytes::Bytes;
use futures::stream::BoxStream;

use std::io;

use crate::aws_error::AwsError;
use crate::site::ReadFile;

pub mod local;
pub mod s3;

/// Headers an object is served with.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ObjectMeta {
    pub content_type: String,
    pub cache_control: String,
}

/// An object as a listing shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Listed {
    pub key: String,
    pub size: u64,
    pub etag: String,
    /// When the object was written, if the store says (prune spares pool objects younger than an hour).
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// A small object read whole (records, the lock).
#[derive(Debug, Clone)]
pub struct Fetched {
    pub body: Bytes,
    pub etag: String,
    pub meta: ObjectMeta,
    /// When the object was last written, if the store says.
    pub modified: Option<chrono::DateTime<chrono::Utc>>,
}

/// An object's bytes, read lazily in chunks as the consumer polls.
pub type Chunks = BoxStream<'static, std::io::Result<Bytes>>;

/// An object opened to be streamed: what an HTTP answer says about it before any byte is read,
/// and a reader of one byte range (end exclusive, within `size`), called at most once.
pub struct Opened {
    pub size: u64,
    pub etag: String,
    pub meta: ObjectMeta,
    pub modified: Option<SystemTime>,
    pub read: Box<dyn FnOnce(Range<u64>) -> Chunks + Send>,
}

/// When a write may happen.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Condition {
    Always,
    /// Create-only (`If-None-Match: *`).
    IfAbsent,
    /// Replace only the object with this ETag (`If-Match`).
    IfMatch(String),
}

/// How a store call failed: what callers act on (a failed condition, a missing object) apart
/// from what they only report.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A conditional write found the object changed, or present (S3's 412).
    #[error("the object changed or exists already (precondition failed)")]
    PreconditionFailed,
    /// An object the call needs does not exist (a copy's source); S3 says which call it was.
    #[error("{}", not_found(key, aws.as_deref()))]
    NotFound { key: String, aws: Option<Box<AwsError>> },
    /// Any other failed AWS call, naming the call and the key.
    #[error(transparent)]
    Aws(Box<AwsError>),
    /// The local store could not read or write its files.
    #[error("local store, {key}")]
    Local {
        key: String,
        #[source]
        source: io::Error,
    },
    #[error("local store task")]
    Task(#[from] tokio::task::JoinError),
    /// A file to upload could not be read.
    #[error("reading {path}: {problem}")]
    Read { path: String, problem: String },
    /// A request the SDK would not build.
    #[error(transparent)]
    Request(#[from] aws_smithy_types::error::operation::BuildError),
}

fn not_found(key: &str, aws: Option<&AwsError>) -> String {
    aws.map_or_else(|| format!("local store: {key} does not exist"), ToString::to_string)
}

impl From<AwsError> for StoreError {
    fn from(err: AwsError) -> Self {
        StoreError::Aws(Box::new(err))
    }
}

pub type StoreResult<T> = Result<T, StoreError>;

/// The calls cutover makes on a release store, and no others.
#[async_trait]
pub trait Store: Send + Sync {
    /// Uploads a file from memory or streamed from disk, under a condition; in parts above
    /// [`crate::site::MULTIPART_THRESHOLD`].
    async fn upload(&self, key: &str, file: &ReadFile, meta: &ObjectMeta, condition: &Condition) -> StoreResult<()>;
    /// Copies an object inside the store under a condition, giving the copy `meta`.
    async fn copy(&self, from: &str, to: &str, meta: &ObjectMeta, condition: &Condition) -> StoreResult<()>;
    /// Writes a small object under a condition.
    async fn put(&self, key: &str, body: Bytes, meta: &ObjectMeta, condition: Condition) -> StoreResult<()>;
    /// Reads a whole object; `None` when it does not exist.
    async fn get(&self, key: &str) -> StoreResult<Option<Fetched>>;
    /// Opens an object to stream a range of it, holding no more than a chunk in memory; `None`
    /// when it does not exist.
    async fn open(&self, key: &str) -> StoreResult<Option<Opened>>;
    /// Every object whose key starts with `prefix`.
    async fn list(&self, prefix: &str) -> StoreResult<Vec<Listed>>;
    /// Deletes objects; missing ones are not an error.
    async fn delete(&self, keys: &[String]) -> StoreResult<()>;
    /// Deletes one object only while its ETag is `etag` (`If-Match`); a missing object is not an
    /// error, another ETag is [`StoreError::PreconditionFailed`].
    async fn delete_if_match(&self, key: &str, etag: &str) -> StoreResult<()>;
    /// Where this store is, for messages: `s3://bucket` or a directory.
    fn describe(&self) -> String;
}

/// Metadata for small JSON objects cutover writes itself.
pub fn json_meta() -> ObjectMeta {
    ObjectMeta { content_type: "application/json".into(), cache_control: "no-store".into() }
}
