//! The S3 side of `/v1/files` and `/v1/batches`: one account's batch bucket and prefix, reached
//! with aws-sdk-s3 on the proxy's HTTP stack (hyper 1, rustls/ring) and the account's own
//! credentials. Path-style addressing whenever the endpoint is not AWS's (moto, MinIO).
//!
//! Objects are written whole ([`Store::put`]) or in parts ([`Upload`], S3 multipart) so large
//! uploads are never held in memory; the gateway's metadata travels as S3 user metadata.

use std::collections::HashMap;
use std::time::Duration;

use api::config::{Account, Batch, Endpoints};
use aws_config::BehaviorVersion;
use aws_sdk_s3::config::{
    Region, RequestChecksumCalculation, ResponseChecksumValidation, SharedCredentialsProvider,
};
use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart, MetadataDirective};
use aws_smithy_runtime_api::client::http::SharedHttpClient;
use aws_smithy_types::retry::RetryConfig;
use aws_smithy_types::timeout::TimeoutConfig;
use bytes::{Bytes, BytesMut};

use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};

use crate::credentials::AccountCredentials;
use crate::error::ApiError;

/// What `x-amz-copy-source` leaves unencoded in a key: `/` separates its segments.
const COPY_SOURCE: &AsciiSet =
    &NON_ALPHANUMERIC.remove(b'/').remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// One account's batch location.
#[derive(Clone, Debug)]
pub struct Store {
    client: aws_sdk_s3::Client,
    /// Bucket name.
    pub bucket: String,
    /// Key prefix (may be empty; ends with `/` when not).
    pub prefix: String,
    account: String,
}

/// What a HEAD of an object tells.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Size in bytes.
    pub size: u64,
    /// User metadata (`x-amz-meta-*`, names lower case).
    pub metadata: HashMap<String, String>,
}

/// One entry of a listing.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Listed {
    /// Full key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last change, Unix seconds.
    pub modified: u64,
}

impl Store {
    /// The store of `account` (which has a `batch` block), signed with `credentials`. A 400 for
    /// an account S3 cannot be reached with (no `spec.batch`, Bedrock API key).
    pub fn for_account(
        http: &SharedHttpClient,
        account: &Account,
        credentials: &AccountCredentials,
    ) -> Result<Store, ApiError> {
        let batch = batch_of(account)?;
        if !credentials.sigv4() {
            return Err(ApiError::invalid_request(format!(
                "The account `{}` authenticates with a Bedrock API key, which cannot reach S3; files and \
                 batches need an account with AWS credentials (accessKey, podIdentity or assumeRole).",
                account.name
            ))
            .with_code("batch_not_available"));
        }
        let region = account.default_region.clone();
        let endpoint = Endpoints::for_region(&account.endpoints.s3, &region);
        let aws = endpoint.contains(".amazonaws.com");
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new(region))
            .endpoint_url(endpoint)
            .force_path_style(!aws)
            .http_client(http.clone())
            .credentials_provider(SharedCredentialsProvider::new(credentials.clone()))
            // Plain Content-MD5-free bodies: S3-compatible stores do not all take aws-chunked trailers.
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .retry_config(RetryConfig::standard().with_max_attempts(3))
            .timeout_config(TimeoutConfig::builder().connect_timeout(Duration::from_secs(5)).build())
            .build();
        Ok(Store {
            client: aws_sdk_s3::Client::from_conf(config),
            bucket: batch.bucket.clone(),
            prefix: normalized_prefix(&batch.prefix),
            account: account.name.clone(),
        })
    }

    /// `s3://bucket/<prefix><rest>`.
    pub fn uri(&self, rest: &str) -> String {
        format!("s3://{}/{}{rest}", self.bucket, self.prefix)
    }

    /// `<prefix><rest>`.
    pub fn key(&self, rest: &str) -> String {
        format!("{}{rest}", self.prefix)
    }

    /// Writes a whole object.
    pub async fn put(
        &self,
        key: &str,
        body: Bytes,
        metadata: HashMap<String, String>,
    ) -> Result<(), ApiError> {
        self.client
            .put_object()
            .bucket(&self.bucket)
            .key(key)
            .body(ByteStream::from(body))
            .set_metadata(Some(metadata))
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error("PutObject", &e))
    }

    /// Creates the empty object `key` unless it exists (`If-None-Match: *`): `true` for the one
    /// caller that created it, however many proxies race.
    pub async fn create_once(&self, key: &str) -> Result<bool, ApiError> {
        let put = self.client.put_object().bucket(&self.bucket).key(key).if_none_match("*").send().await;
        match put {
            Ok(_) => Ok(true),
            // 412: it exists; 409: a concurrent conditional write of the same key won.
            Err(e) if e.raw_response().is_some_and(|r| matches!(r.status().as_u16(), 409 | 412)) => Ok(false),
            Err(e) => Err(self.error("PutObject", &e)),
        }
    }

    /// Copies `from` to `to` inside the bucket (server-side, no bytes through the gateway; S3
    /// copies up to 5 GB this way), without `from`'s metadata; `false` when `from` is gone.
    pub async fn copy(&self, from: &str, to: &str) -> Result<bool, ApiError> {
        let source = format!("{}/{}", self.bucket, utf8_percent_encode(from, COPY_SOURCE));
        let copied = self
            .client
            .copy_object()
            .bucket(&self.bucket)
            .key(to)
            .copy_source(source)
            .metadata_directive(MetadataDirective::Replace)
            .send()
            .await;
        match copied {
            Ok(_) => Ok(true),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(false),
            Err(e) => Err(self.error("CopyObject", &e)),
        }
    }

    /// Starts a multipart upload of `key`.
    pub async fn upload(&self, key: &str, metadata: HashMap<String, String>) -> Result<Upload, ApiError> {
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&self.bucket)
            .key(key)
            .set_metadata(Some(metadata))
            .send()
            .await
            .map_err(|e| self.error("CreateMultipartUpload", &e))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| ApiError::bad_gateway("S3 started a multipart upload without an upload id."))?
            .to_owned();
        Ok(Upload { store: self.clone(), key: key.to_owned(), upload_id, parts: Vec::new() })
    }

    /// Size and metadata of `key`; `None` when there is no such object.
    pub async fn head(&self, key: &str) -> Result<Option<ObjectInfo>, ApiError> {
        match self.client.head_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(ObjectInfo {
                size: out.content_length().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                metadata: out.metadata().cloned().unwrap_or_default(),
            })),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(self.error("HeadObject", &e)),
        }
    }

    /// The body of `key` as a stream; `None` when there is no such object.
    pub async fn get(&self, key: &str) -> Result<Option<ByteStream>, ApiError> {
        match self.client.get_object().bucket(&self.bucket).key(key).send().await {
            Ok(out) => Ok(Some(out.body)),
            Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 404) => Ok(None),
            Err(e) => Err(self.error("GetObject", &e)),
        }
    }

    /// The whole body of a small object (records, manifests); `None` when there is none.
    pub async fn get_bytes(&self, key: &str) -> Result<Option<Bytes>, ApiError> {
        let Some(body) = self.get(key).await? else { return Ok(None) };
        body.collect()
            .await
            .map(|b| Some(b.into_bytes()))
            .map_err(|_| ApiError::bad_gateway("The S3 object ended before it was complete."))
    }

    /// Keys under `<prefix><under>` after `start_after`, in key order, at most `max` (1-1000).
    pub async fn list(
        &self,
        under: &str,
        start_after: Option<&str>,
        max: i32,
    ) -> Result<(Vec<Listed>, bool), ApiError> {
        let out = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(self.key(under))
            .set_start_after(start_after.map(str::to_owned))
            .max_keys(max)
            .send()
            .await
            .map_err(|e| self.error("ListObjectsV2", &e))?;
        let listed = out
            .contents()
            .iter()
            .filter_map(|o| {
                Some(Listed {
                    key: o.key()?.to_owned(),
                    size: o.size().and_then(|n| u64::try_from(n).ok()).unwrap_or(0),
                    modified: o.last_modified().and_then(|t| u64::try_from(t.secs()).ok()).unwrap_or(0),
                })
            })
            .collect();
        Ok((listed, out.is_truncated().unwrap_or(false)))
    }

    /// Deletes `key` (no error when it is already gone).
    pub async fn delete(&self, key: &str) -> Result<(), ApiError> {
        self.client
            .delete_object()
            .bucket(&self.bucket)
            .key(key)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.error("DeleteObject", &e))
    }

    /// A 502 naming the S3 call and S3's error code; logged with the details.
    fn error<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
        &self,
        operation: &str,
        e: &SdkError<E, R>,
    ) -> ApiError {
        let code = e.as_service_error().and_then(|s| s.code()).unwrap_or("no answer");
        tracing::warn!(
            account = %self.account,
            bucket = %self.bucket,
            operation,
            error = %aws_smithy_types::error::display::DisplayErrorContext(e),
            "S3 call failed"
        );
        ApiError::bad_gateway(format!(
            "The gateway's {operation} call to the batch bucket `{}` of account `{}` failed ({code}).",
            self.bucket, self.account
        ))
        .with_code("storage_error")
    }
}

/// An S3 multipart upload in progress: parts go up as they fill, nothing else is kept.
pub struct Upload {
    store: Store,
    key: String,
    upload_id: String,
    parts: Vec<CompletedPart>,
}

impl Upload {
    /// Uploads the next part (at least 5 MiB, except the last).
    pub async fn part(&mut self, body: Bytes) -> Result<(), ApiError> {
        let number = i32::try_from(self.parts.len() + 1).unwrap_or(i32::MAX);
        let out = self
            .store
            .client
            .upload_part()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .part_number(number)
            .body(ByteStream::from(body))
            .send()
            .await
            .map_err(|e| self.store.error("UploadPart", &e))?;
        self.parts.push(
            CompletedPart::builder().set_e_tag(out.e_tag().map(str::to_owned)).part_number(number).build(),
        );
        Ok(())
    }

    /// Completes the object.
    pub async fn complete(self) -> Result<(), ApiError> {
        let parts = CompletedMultipartUpload::builder().set_parts(Some(self.parts)).build();
        self.store
            .client
            .complete_multipart_upload()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .multipart_upload(parts)
            .send()
            .await
            .map(drop)
            .map_err(|e| self.store.error("CompleteMultipartUpload", &e))
    }

    /// Drops the parts uploaded so far (the upload was refused); failures are only logged.
    pub async fn abort(self) {
        let aborted = self
            .store
            .client
            .abort_multipart_upload()
            .bucket(&self.store.bucket)
            .key(&self.key)
            .upload_id(&self.upload_id)
            .send()
            .await;
        if let Err(e) = aborted {
            self.store.error("AbortMultipartUpload", &e);
        }
    }
}

/// Writes one object from pieces of any size: a single PutObject when it stays under
/// [`PART_BYTES`], an S3 multipart upload of [`PART_BYTES`] parts otherwise, so at most one part
/// is in memory.
pub struct Writer {
    store: Store,
    key: String,
    metadata: HashMap<String, String>,
    buffer: BytesMut,
    upload: Option<Upload>,
    bytes: u64,
}

/// Size of multipart upload parts (S3 takes 5 MiB and more, except for the last part).
pub const PART_BYTES: usize = 8 * 1024 * 1024;

impl Writer {
    /// A writer of `key` with `metadata`; nothing is sent before the first full part.
    pub fn new(store: Store, key: String, metadata: HashMap<String, String>) -> Self {
        Writer { store, key, metadata, buffer: BytesMut::new(), upload: None, bytes: 0 }
    }

    /// The key being written.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Bytes written so far.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Appends `data`, sending a part when one is full.
    pub async fn write(&mut self, data: &[u8]) -> Result<(), ApiError> {
        self.buffer.extend_from_slice(data);
        self.bytes += data.len() as u64;
        if self.buffer.len() >= PART_BYTES {
            if self.upload.is_none() {
                self.upload = Some(self.store.upload(&self.key, self.metadata.clone()).await?);
            }
            let part = self.buffer.split().freeze();
            self.upload.as_mut().expect("started above").part(part).await?;
        }
        Ok(())
    }

    /// Writes what is left and completes the object; on failure nothing is left behind.
    pub async fn finish(mut self) -> Result<u64, ApiError> {
        let rest = self.buffer.split().freeze();
        match self.upload.take() {
            None => self.store.put(&self.key, rest, std::mem::take(&mut self.metadata)).await?,
            Some(mut upload) => {
                let sent = if rest.is_empty() { Ok(()) } else { upload.part(rest).await };
                if let Err(e) = sent {
                    upload.abort().await;
                    return Err(e);
                }
                upload.complete().await?;
            }
        }
        Ok(self.bytes)
    }

    /// Drops the parts sent so far.
    pub async fn abort(mut self) {
        if let Some(upload) = self.upload.take() {
            upload.abort().await;
        }
    }
}

/// The account's `spec.batch`, or the 400 saying files and batches are not set up.
pub fn batch_of(account: &Account) -> Result<&Batch, ApiError> {
    account.batch.as_ref().ok_or_else(|| {
        ApiError::invalid_request(format!(
            "The account `{}` has no `spec.batch` (bucket and role); files and batches are not available on it.",
            account.name
        ))
        .with_code("batch_not_available")
    })
}

/// `prefix` with exactly one trailing `/` (empty stays empty).
fn normalized_prefix(prefix: &str) -> String {
    let trimmed = prefix.trim_matches('/');
    if trimmed.is_empty() { String::new() } else { format!("{trimmed}/") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_end_with_one_slash() {
        assert_eq!(normalized_prefix(""), "");
        assert_eq!(normalized_prefix("gateway"), "gateway/");
        assert_eq!(normalized_prefix("/gateway//"), "gateway/");
        assert_eq!(normalized_prefix("a/b/"), "a/b/");
    }
}
