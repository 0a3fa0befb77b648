//! Releases in an S3 bucket (or any S3-compatible store) through the AWS SDK.

use std::path::Path;
use std::time::SystemTime;

use async_trait::async_trait;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::put_object::builders::PutObjectFluentBuilder;
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, Delete, MetadataDirective, ObjectIdentifier};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use bytes::Bytes;
use futures::future::BoxFuture;
use futures::{StreamExt, TryStreamExt};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use super::{Condition, Fetched, Listed, ObjectMeta, Opened, Store, StoreError, StoreResult};
use crate::aws_error::AwsError;
use crate::interrupt::CLEANUP;
use crate::site::{Contents, FileDigest, MULTIPART_THRESHOLD, PART_SIZE, ReadFile};

/// Parts of one file uploaded at once.
const PART_CONCURRENCY: usize = 4;

/// Characters left as they are in `x-amz-copy-source`.
const COPY_SOURCE_KEEP: &AsciiSet = &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

pub struct S3Store {
    client: Client,
    bucket: String,
}

/// Adds a write condition to any S3 request that takes one (PutObject, CopyObject,
/// CompleteMultipartUpload): `If-None-Match: *` or `If-Match: <etag>`.
macro_rules! on_condition {
    ($request:expr, $condition:expr) => {
        match $condition {
            Condition::Always => $request,
            Condition::IfAbsent => $request.if_none_match("*"),
            Condition::IfMatch(etag) => $request.if_match(etag.clone()),
        }
    };
}

impl S3Store {
    pub fn new(client: Client, bucket: &str) -> Self {
        Self { client, bucket: bucket.to_owned() }
    }

    /// An object of this bucket as messages name it.
    fn url(&self, key: &str) -> String {
        format!("s3://{}/{key}", self.bucket)
    }

    /// A failed call on `key` as a store error; `resource` names it in messages.
    fn failure<E>(&self, operation: &str, key: &str, resource: String, err: SdkError<E, HttpResponse>) -> StoreError
    where
        E: ProvideErrorMetadata + std::error::Error + Send + Sync + 'static,
    {
        store_error(&format!("S3 {operation}"), key, resource, &err)
    }

    /// A PutObject with the body's MD5 (so S3 verifies it) and the headers it is served with.
    fn put_request(&self, key: &str, body: ByteStream, md5: &[u8], meta: &ObjectMeta) -> PutObjectFluentBuilder {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(body)
            .content_md5(BASE64.encode(md5))
            .content_type(&meta.content_type)
            .cache_control(&meta.cache_control)
    }

    /// A failed read of `key`, unless it was refused and the key is surely not in the bucket:
    /// without `s3:ListBucket` on the whole bucket, S3 answers a GetObject or HeadObject of a
    /// missing key 403, not 404, and the template grants ListBucket only under `s3:prefix`
    /// conditions, which a read does not carry. A one-key listing from the key itself does carry
    /// one. When the listing fails too, or finds the key, the refusal stands.
    async fn missing_unless_listed<T>(&self, failed: StoreError, key: &str) -> StoreResult<Option<T>> {
        if !matches!(&failed, StoreError::Aws(aws) if aws.is_access_denied()) {
            return Err(failed);
        }
        let listed = self.client.list_objects_v2().bucket(&self.bucket).prefix(key).max_keys(1).send().await;
        match listed {
            Ok(page) if !page.contents().iter().any(|object| object.key() == Some(key)) => Ok(None),
            _ => Err(failed),
        }
    }

    async fn upload_in_parts(
        &self,
        key: &str,
        file: &Path,
        size: u64,
        digest: &FileDigest,
        meta: &ObjectMeta,
        condition: &Condition,
    ) -> StoreResult<()> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .content_type(&meta.content_type)
            .cache_control(&meta.cache_control)
            .send()
            .await
            .map_err(|e| self.failure("CreateMultipartUpload", key, self.url(key), e))?;
        let upload_id = created.upload_id().unwrap_or_default().to_owned();
        // Aborted if a signal stops the run while the parts go up: S3 keeps (and bills) the parts
        // of an upload nobody completes or aborts.
        let _abort_on_stop = CLEANUP.on_stop({
            let abort = self.abort(key, &upload_id);
            move || abort
        });
        let part_md5 = |index: u64| usize::try_from(index).ok().and_then(|i| digest.part_md5s.get(i));
        let parts = futures::stream::iter(0..size.div_ceil(PART_SIZE))
            .map(|index| self.upload_part(key, &upload_id, file, index, size, part_md5(index)))
            .buffered(PART_CONCURRENCY)
            .try_collect::<Vec<_>>()
            .await;
        let parts = match parts {
            Ok(parts) => parts,
            Err(e) => {
                self.abort(key, &upload_id).await;
                return Err(e);
            }
        };
        let complete = self
            .client
            .complete_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(&upload_id)
            .multipart_upload(CompletedMultipartUpload::builder().set_parts(Some(parts)).build());
        on_condition!(complete, condition)
            .send()
            .await
            .map_err(|e| self.failure("CompleteMultipartUpload", key, self.url(key), e))?;
        Ok(())
    }

    /// Aborts a multipart upload, as best it can: what it misses, the bucket's lifecycle rule does.
    fn abort(&self, key: &str, upload_id: &str) -> BoxFuture<'static, ()> {
        let request = self.client.abort_multipart_upload().bucket(&self.bucket).key(key).upload_id(upload_id);
        Box::pin(async move {
            let _ = request.send().await;
        })
    }

    async fn upload_part(
        &self,
        key: &str,
        upload_id: &str,
        file: &Path,
        index: u64,
        size: u64,
        md5: Option<&[u8; 16]>,
    ) -> StoreResult<CompletedPart> {
        let offset = index * PART_SIZE;
        let length = PART_SIZE.min(size - offset);
        let body = ByteStream::read_from()
            .path(file)
            .offset(offset)
            .length(Length::Exact(length))
            .build()
            .await
            .map_err(|e| StoreError::Read { path: file.display().to_string(), problem: e.to_string() })?;
        // Past S3's 10,000 parts the call itself is refused, with S3's own message.
        let number = i32::try_from(index + 1).unwrap_or(i32::MAX);
        let part = self
            .client
            .upload_part()
            .bucket(&self.bucket)
            .key(key)
            .upload_id(upload_id)
            .part_number(number)
            .body(body)
            .set_content_md5(md5.map(|md5| BASE64.encode(md5)))
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| self.failure("UploadPart", key, format!("part {number} of {}", self.url(key)), e))?;
        Ok(CompletedPart::builder().part_number(number).set_e_tag(part.e_tag().map(str::to_owned)).build())
    }
}

/// What a failed S3 call on `key` means to the store: a failed condition and a missing object are
/// told apart from every other failure, which is kept whole, as one [`AwsError`].
fn store_error<E>(call: &str, key: &str, resource: String, err: &SdkError<E, HttpResponse>) -> StoreError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let status = err.raw_response().map(|r| r.status().as_u16());
    match err.code() {
        Some("PreconditionFailed" | "ConditionalRequestConflict") => StoreError::PreconditionFailed,
        // A bucket missing (`NoSuchBucket`, also a 404) is not a missing object.
        Some("NoSuchKey" | "NotFound") | None if status == Some(404) || err.code() == Some("NoSuchKey") => {
            StoreError::NotFound { key: key.to_owned(), aws: Some(Box::new(AwsError::new(call, resource, err))) }
        }
        _ => AwsError::new(call, resource, err).into(),
    }
}

#[async_trait]
impl Store for S3Store {
    async fn upload(&self, key: &str, file: &ReadFile, meta: &ObjectMeta, condition: &Condition) -> StoreResult<()> {
        let body = match &file.contents {
            Contents::Memory(bytes) => ByteStream::from(bytes.clone()),
            Contents::Disk(path) if file.size > MULTIPART_THRESHOLD => {
                return self.upload_in_parts(key, path, file.size, &file.digest, meta, condition).await;
            }
            Contents::Disk(path) => ByteStream::from_path(path)
                .await
                .map_err(|e| StoreError::Read { path: path.display().to_string(), problem: e.to_string() })?,
        };
        let request = self
            .put_request(key, body, &file.digest.md5, meta)
            .content_length(i64::try_from(file.size).unwrap_or(i64::MAX));
        on_condition!(request, condition)
            // Content-MD5 already lets S3 check every byte; signing the payload too would read the
            // file a second time for a SHA-256 nobody needs.
            .customize()
            .disable_payload_signing()
            .send()
            .await
            .map_err(|e| self.failure("PutObject", key, self.url(key), e))?;
        Ok(())
    }

    async fn copy(&self, from: &str, to: &str, meta: &ObjectMeta, condition: &Condition) -> StoreResult<()> {
        let source = format!("{}/{}", self.bucket, utf8_percent_encode(from, COPY_SOURCE_KEEP));
        let request = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            .metadata_directive(MetadataDirective::Replace)
            .content_type(&meta.content_type)
            .cache_control(&meta.cache_control);
        on_condition!(request, condition)
            .send()
            .await
            .map_err(|e| self.failure("CopyObject", from, format!("{} from {from}", self.url(to)), e))?;
        Ok(())
    }

    async fn put(&self, key: &str, body: Bytes, meta: &ObjectMeta, condition: Condition) -> StoreResult<()> {
        let md5 = <md5::Md5 as md5::Digest>::digest(&body);
        let request = self.put_request(key, ByteStream::from(body), &md5, meta);
        on_condition!(request, &condition)
            .send()
            .await
            .map_err(|e| self.failure("PutObject", key, self.url(key), e))?;
        Ok(())
    }

    async fn get(&self, key: &str) -> StoreResult<Option<Fetched>> {
        let response = match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(response) => response,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => return Ok(None),
            Err(e) => return self.missing_unless_listed(self.failure("GetObject", key, self.url(key), e), key).await,
        };
        let etag = response.e_tag().unwrap_or_default().trim_matches('"').to_owned();
        let meta = ObjectMeta {
            content_type: response.content_type().unwrap_or("application/octet-stream").to_owned(),
            cache_control: response.cache_control().unwrap_or_default().to_owned(),
        };
        let modified =
            response.last_modified().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos()));
        let body = response
            .body
            .collect()
            .await
            .map_err(|e| AwsError::failed("S3 GetObject", self.url(key), &e))?
            .into_bytes();
        Ok(Some(Fetched { body, etag, meta, modified }))
    }

    async fn open(&self, key: &str) -> StoreResult<Option<Opened>> {
        let head = match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(head) => head,
            Err(e) if e.as_service_error().is_some_and(|e| e.is_not_found()) => return Ok(None),
            Err(e) => return self.missing_unless_listed(self.failure("HeadObject", key, self.url(key), e), key).await,
        };
        let quoted_etag = head.e_tag().unwrap_or_default().to_owned();
        let (client, bucket, key, resource) = (self.client.clone(), self.bucket.clone(), key.to_owned(), self.url(key));
        // One ranged GetObject when the body is wanted, only of the version the HEAD described.
        let read = move |range: std::ops::Range<u64>| {
            let get = async move {
                let response = client
                    .get_object()
                    .bucket(bucket)
                    .key(key)
                    .range(format!("bytes={}-{}", range.start, range.end - 1))
                    .if_match(quoted_etag)
                    .send()
                    .await
                    .map_err(|e| std::io::Error::other(AwsError::new("S3 GetObject", resource, &e)))?;
                let chunks = futures::stream::try_unfold(response.body, |mut body| async move {
                    Ok(body.try_next().await.map_err(std::io::Error::other)?.map(|chunk| (chunk, body)))
                });
                std::io::Result::Ok(chunks)
            };
            if range.is_empty() {
                futures::stream::empty().boxed()
            } else {
                futures::stream::once(get).try_flatten().boxed()
            }
        };
        Ok(Some(Opened {
            size: u64::try_from(head.content_length().unwrap_or_default()).unwrap_or(0),
            etag: head.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
            meta: ObjectMeta {
                content_type: head.content_type().unwrap_or("application/octet-stream").to_owned(),
                cache_control: head.cache_control().unwrap_or_default().to_owned(),
            },
            modified: head.last_modified().and_then(|t| SystemTime::try_from(*t).ok()),
            read: Box::new(read),
        }))
    }

    async fn list(&self, prefix: &str) -> StoreResult<Vec<Listed>> {
        let mut pages = self.client.list_objects_v2().bucket(&self.bucket).prefix(prefix).into_paginator().send();
        let mut found = Vec::new();
        while let Some(page) =
            pages.try_next().await.map_err(|e| self.failure("ListObjectsV2", prefix, self.url(prefix), e))?
        {
            found.extend(page.contents().iter().map(|object| Listed {
                key: object.key().unwrap_or_default().to_owned(),
                size: u64::try_from(object.size().unwrap_or_default()).unwrap_or(0),
                etag: object.e_tag().unwrap_or_default().trim_matches('"').to_owned(),
                modified:
                    object.last_modified().and_then(|t| chrono::DateTime::from_timestamp(t.secs(), t.subsec_nanos())),
            }));
        }
        Ok(found)
    }

    async fn delete(&self, keys: &[String]) -> StoreResult<()> {
        for batch in keys.chunks(1000) {
            let objects =
                batch.iter().map(|key| ObjectIdentifier::builder().key(key).build()).collect::<Result<Vec<_>, _>>()?;
            let delete = Delete::builder().set_objects(Some(objects)).quiet(true).build()?;
            let result =
                self.client.delete_objects().bucket(&self.bucket).delete(delete).send().await.map_err(|e| {
                    let resource = format!("{} keys in s3://{}", batch.len(), self.bucket);
                    self.failure("DeleteObjects", &self.bucket, resource, e)
                })?;
            if let Some(error) = result.errors().first() {
                let resource = self.url(error.key().unwrap_or_default());
                let failed = AwsError::reported("S3 DeleteObjects", resource, error.code(), error.message());
                return Err(failed.into());
            }
        }
        Ok(())
    }

    async fn delete_if_match(&self, key: &str, etag: &str) -> StoreResult<()> {
        let request = self.client.delete_object().bucket(&self.bucket).key(key).if_match(etag);
        match request.send().await {
            Ok(_) => Ok(()),
            // A conditional delete of an object that is gone answers 404: nothing was deleted.
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(()),
            Err(e) => Err(self.failure("DeleteObject", key, self.url(key), e)),
        }
    }

    fn describe(&self) -> String {
        format!("s3://{}", self.bucket)
    }
}

#[cfg(test)]
mod tests {
    use aws_sdk_s3::operation::copy_object::CopyObjectError;

    use super::*;
    use crate::aws_error::service_answer;

    fn mapped(status: u16, code: Option<&str>) -> StoreError {
        let err = service_answer(status, code, "m", &[], CopyObjectError::generic);
        store_error("S3 CopyObject", "site/1/a.js", "s3://b/site/2/a.js from site/1/a.js".into(), &err)
    }

    #[test]
    fn failed_conditions_and_missing_objects_are_told_apart() {
        assert!(matches!(mapped(412, Some("PreconditionFailed")), StoreError::PreconditionFailed));
        assert!(matches!(mapped(409, Some("ConditionalRequestConflict")), StoreError::PreconditionFailed));
        for (status, code) in [(404, Some("NoSuchKey")), (404, None), (404, Some("NotFound"))] {
            let StoreError::NotFound { key, aws: Some(aws) } = mapped(status, code) else {
                panic!("{status} {code:?} is a missing object")
            };
            assert_eq!((key.as_str(), aws.call.as_str()), ("site/1/a.js", "S3 CopyObject"));
        }
        // A missing bucket is no missing object: it keeps its hint.
        let StoreError::Aws(aws) = mapped(404, Some("NoSuchBucket")) else {
            panic!("a missing bucket is an AWS error")
        };
        assert!(aws.to_string().contains("hint: the bucket does not exist"), "{aws}");
        assert!(matches!(mapped(403, Some("AccessDenied")), StoreError::Aws(_)));
    }
}
