//! The S3 a batch job reads its input from and writes its output to (`--s3-url`, moto in the
//! tests): the AWS SDK's S3 client on the workspace's one HTTP stack, path-style addressing.

use aws_sdk_s3::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata};
use aws_sdk_s3::primitives::ByteStream;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};

use super::create::S3Location;

/// An S3 endpoint with the credentials to sign for it.
#[derive(Clone, Debug)]
pub(crate) struct Storage {
    client: aws_sdk_s3::Client,
}

/// One input object.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct InputFile {
    /// Object key.
    pub key: String,
    /// Its text.
    pub text: String,
}

impl Storage {
    /// A client for the S3 at `url`, signing with `access_key_id` / `secret_access_key`.
    pub(crate) fn new(url: &str, access_key_id: &str, secret_access_key: &str) -> Storage {
        let http = aws_smithy_http_client::Builder::new()
            .tls_provider(Provider::Rustls(CryptoMode::Ring))
            .build_https();
        let config = aws_sdk_s3::Config::builder()
            .behavior_version(BehaviorVersion::latest())
            .region(Region::new("us-east-1"))
            .endpoint_url(url)
            .force_path_style(true)
            .credentials_provider(Credentials::new(
                access_key_id,
                secret_access_key,
                None,
                None,
                "bedrock-sim",
            ))
            .http_client(http)
            .build();
        Storage { client: aws_sdk_s3::Client::from_conf(config) }
    }

    /// The `.jsonl` input of `at`: the object itself when `at` names one, else every `.jsonl`
    /// object under the prefix, sorted by key. The error says what could not be read.
    pub(crate) async fn read_input(&self, at: &S3Location) -> Result<Vec<InputFile>, String> {
        let keys = if !at.key.is_empty() && !at.key.ends_with('/') && self.exists(at).await? {
            vec![at.key.clone()]
        } else {
            self.list_jsonl(at).await?
        };
        if keys.is_empty() {
            return Err(format!("No .jsonl input files found at s3://{}/{}.", at.bucket, at.key));
        }
        let mut files = Vec::with_capacity(keys.len());
        for key in keys {
            let object = self
                .client
                .get_object()
                .bucket(&at.bucket)
                .key(&key)
                .send()
                .await
                .map_err(|e| unreadable(&at.bucket, &key, &e))?;
            let bytes = object
                .body
                .collect()
                .await
                .map_err(|e| format!("Reading s3://{}/{key} failed: {e}", at.bucket))?;
            let text = String::from_utf8(bytes.to_vec())
                .map_err(|_| format!("The input file s3://{}/{key} is not UTF-8 text.", at.bucket))?;
            files.push(InputFile { key, text });
        }
        Ok(files)
    }

    /// Whether the object `at` exists.
    async fn exists(&self, at: &S3Location) -> Result<bool, String> {
        match self.client.head_object().bucket(&at.bucket).key(&at.key).send().await {
            Ok(_) => Ok(true),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(false),
            Err(e) => Err(unreadable(&at.bucket, &at.key, &e)),
        }
    }

    /// Keys of the `.jsonl` objects under the prefix `at` (a folder when it does not end in `/`).
    async fn list_jsonl(&self, at: &S3Location) -> Result<Vec<String>, String> {
        let prefix =
            if at.key.is_empty() || at.key.ends_with('/') { at.key.clone() } else { format!("{}/", at.key) };
        let mut keys = Vec::new();
        let mut pages =
            self.client.list_objects_v2().bucket(&at.bucket).prefix(&prefix).into_paginator().send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(|e| unreadable(&at.bucket, &prefix, &e))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key())
                    .filter(|k| k.ends_with(".jsonl"))
                    .map(str::to_owned),
            );
        }
        keys.sort();
        Ok(keys)
    }

    /// Writes `body` to `bucket`/`key`.
    pub(crate) async fn put(
        &self,
        bucket: &str,
        key: &str,
        body: Vec<u8>,
        content_type: &str,
    ) -> Result<(), String> {
        self.client
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type(content_type)
            .body(ByteStream::from(body))
            .send()
            .await
            .map(|_| ())
            .map_err(|e| format!("Writing s3://{bucket}/{key} failed: {}", DisplayErrorContext(&e)))
    }
}

/// The message of a job whose input cannot be read.
fn unreadable<E: ProvideErrorMetadata + std::error::Error + 'static, R: std::fmt::Debug>(
    bucket: &str,
    key: &str,
    e: &aws_sdk_s3::error::SdkError<E, R>,
) -> String {
    let code = e.as_service_error().and_then(|s| s.code()).map(str::to_owned);
    let why = code.unwrap_or_else(|| DisplayErrorContext(e).to_string());
    format!(
        "Unable to read the input data at s3://{bucket}/{key} ({why}). Check the S3 URI and the permissions of the job's role."
    )
}
