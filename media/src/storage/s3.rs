//! Blobs in an S3-compatible bucket: a small client of our own (path-style URLs, SigV4 in
//! [`super::sigv4`]) for the five calls we make, HEAD/PUT/GET object and HEAD/PUT bucket.
//!
//! Bodies are streamed both ways. The configured timeout bounds connecting and every wait for
//! the server; a PUT also gets a deadline that grows with its size, a GET none (a slow reader of a
//! 20 MiB original is not the store's fault), only the per-read timeout.

use std::{path::Path, sync::Arc, time::Duration};

use chrono::Utc;
use reqwest::{
    Method, Response, StatusCode,
    header::{AUTHORIZATION, CONTENT_LENGTH, CONTENT_TYPE, HOST},
};
use secrecy::{ExposeSecret, SecretString};

use super::{
    Blob, BlobBody, BlobKey,
    sigv4::{EMPTY_SHA256, Request, Signer, amz_date, sha256_hex, uri_encode},
};
use crate::{Error, Result};

/// How to reach the bucket. `Debug` never shows the secret.
#[derive(Clone, Debug)]
pub struct S3Config {
    /// `scheme://host[:port]`, e.g. `http://127.0.0.1:9000`; objects are addressed path-style,
    /// `endpoint/bucket/key`.
    pub endpoint: String,
    pub bucket: String,
    /// The SigV4 region, e.g. `us-east-1` (most S3-compatible servers accept any).
    pub region: String,
    pub access_key_id: String,
    pub secret_access_key: SecretString,
    /// Bounds connecting and each wait for the server.
    pub timeout: Duration,
}

/// An S3 bucket. Cheap to clone (shared inside).
#[derive(Clone, Debug)]
pub struct S3Bucket {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    http: reqwest::Client,
    /// `scheme://host[:port]`, no trailing slash.
    origin: String,
    /// The `Host` header, which is signed.
    host: String,
    bucket: String,
    region: String,
    access_key_id: String,
    secret_access_key: SecretString,
    timeout: Duration,
}

/// A PUT may take `timeout` plus one second per this many bytes before it is given up.
const PUT_MIN_BYTES_PER_SECOND: u64 = 256 * 1024;

/// How much of an error response is read to find its `<Code>`.
const ERROR_BODY_LIMIT: usize = 16 * 1024;

/// One request to make.
struct Call<'a> {
    method: Method,
    key: Option<&'a str>,
    /// Canonical (sorted, encoded) and sent as is; "" for none.
    query: &'a str,
    payload_sha256: &'a str,
    content_type: Option<&'a str>,
    content_length: Option<u64>,
    body: Option<reqwest::Body>,
    /// For the whole exchange; `None` for a GET whose body is read later.
    deadline: Option<Duration>,
}

impl S3Bucket {
    pub(crate) fn new(cfg: S3Config) -> Result<Self> {
        let invalid = |why: &str| Error::Storage(format!("invalid S3 configuration: {why}"));
        let url =
            reqwest::Url::parse(&cfg.endpoint).map_err(|_| invalid("endpoint is not a URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("endpoint must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials go in access_key_id/secret_access_key, not the endpoint",
            ));
        }
        if url.path() != "/" || url.query().is_some() || url.fragment().is_some() {
            return Err(invalid(
                "endpoint must be scheme://host[:port] with no path",
            ));
        }
        let host_name = url
            .host_str()
            .ok_or_else(|| invalid("endpoint has no host"))?;
        let host = match url.port() {
            Some(port) => format!("{host_name}:{port}"),
            None => host_name.to_owned(),
        };
        if !is_bucket_name(&cfg.bucket) {
            return Err(invalid("bucket must be 3-63 of a-z 0-9 . -"));
        }
        if cfg.region.is_empty() || cfg.access_key_id.is_empty() {
            return Err(invalid("region and access_key_id are required"));
        }
        if cfg.timeout.is_zero() {
            return Err(invalid("timeout must be positive"));
        }
        let http = reqwest::Client::builder()
            .connect_timeout(cfg.timeout)
            .read_timeout(cfg.timeout)
            // A redirect (a wrong region, say) would be followed with headers signed for
            // another URL; better to report it.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| Error::Storage(format!("building the S3 HTTP client failed: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                http,
                origin: format!("{}://{host}", url.scheme()),
                host,
                bucket: cfg.bucket,
                region: cfg.region,
                access_key_id: cfg.access_key_id,
                secret_access_key: cfg.secret_access_key,
                timeout: cfg.timeout,
            }),
        })
    }

    pub fn bucket(&self) -> &str {
        &self.inner.bucket
    }

    /// Creates the bucket (an existing bucket of ours is fine). For tests and local development:
    /// production buckets are provisioned, with their policies, outside this service.
    pub async fn create_bucket(&self) -> Result<()> {
        let body = (self.inner.region != "us-east-1").then(|| {
            format!(
                "<CreateBucketConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">\
                 <LocationConstraint>{}</LocationConstraint></CreateBucketConfiguration>",
                self.inner.region
            )
        });
        let payload = sha256_hex(body.as_deref().unwrap_or("").as_bytes());
        let response = self
            .send(Call {
                method: Method::PUT,
                key: None,
                query: "",
                payload_sha256: &payload,
                content_type: None,
                content_length: None,
                body: body.map(reqwest::Body::from),
                deadline: Some(self.inner.timeout),
            })
            .await?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let code = error_code(response).await;
        if status == StatusCode::CONFLICT && code == "BucketAlreadyOwnedByYou" {
            return Ok(());
        }
        Err(refused("create the bucket", status, &code))
    }

    /// Deletes every object in the bucket, then the bucket. For tests, which make a bucket
    /// each; this service never deletes evidence.
    #[doc(hidden)]
    pub async fn delete_bucket_and_objects(&self) -> Result<()> {
        loop {
            let response = self.simple(Method::GET, None, "list-type=2").await?;
            let status = response.status();
            if !status.is_success() {
                return Err(refused(
                    "list the bucket",
                    status,
                    &error_code(response).await,
                ));
            }
            let listing = response.text().await.map_err(transport_error)?;
            let keys: Vec<&str> = listing
                .split("<Key>")
                .skip(1)
                .filter_map(|rest| rest.split_once("</Key>").map(|(key, _)| key))
                .collect();
            if keys.is_empty() {
                break;
            }
            for key in keys {
                let response = self.simple(Method::DELETE, Some(key), "").await?;
                let status = response.status();
                if !status.is_success() && status != StatusCode::NOT_FOUND {
                    return Err(refused(
                        "delete a blob",
                        status,
                        &error_code(response).await,
                    ));
                }
            }
        }
        let response = self.simple(Method::DELETE, None, "").await?;
        let status = response.status();
        if status.is_success() || status == StatusCode::NOT_FOUND {
            Ok(())
        } else {
            Err(refused(
                "delete the bucket",
                status,
                &error_code(response).await,
            ))
        }
    }

    /// A request without a body.
    async fn simple(&self, method: Method, key: Option<&str>, query: &str) -> Result<Response> {
        self.send(Call {
            method,
            key,
            query,
            payload_sha256: EMPTY_SHA256,
            content_type: None,
            content_length: None,
            body: None,
            deadline: Some(self.inner.timeout),
        })
        .await
    }

    pub(crate) async fn put_file(
        &self,
        key: &BlobKey,
        path: &Path,
        sha256_hex: &str,
        content_type: &str,
    ) -> Result<()> {
        if self.exists(key).await? {
            return Ok(());
        }
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| Error::Storage(format!("opening the upload failed: {}", e.kind())))?;
        let len = file
            .metadata()
            .await
            .map_err(|e| Error::Storage(format!("reading the upload's size failed: {}", e.kind())))?
            .len();
        let response = self
            .send(Call {
                method: Method::PUT,
                key: Some(key.as_str()),
                query: "",
                payload_sha256: sha256_hex,
                content_type: Some(content_type),
                content_length: Some(len),
                body: Some(reqwest::Body::from(file)),
                deadline: Some(self.put_deadline(len)),
            })
            .await?;
        self.put_outcome(key, response).await
    }

    pub(crate) async fn put_bytes(
        &self,
        key: &BlobKey,
        bytes: Vec<u8>,
        content_type: &str,
    ) -> Result<()> {
        if self.exists(key).await? {
            return Ok(());
        }
        let payload = sha256_hex(&bytes);
        let len = u64::try_from(bytes.len()).unwrap_or(u64::MAX);
        let response = self
            .send(Call {
                method: Method::PUT,
                key: Some(key.as_str()),
                query: "",
                payload_sha256: &payload,
                content_type: Some(content_type),
                content_length: Some(len),
                body: Some(reqwest::Body::from(bytes)),
                deadline: Some(self.put_deadline(len)),
            })
            .await?;
        self.put_outcome(key, response).await
    }

    async fn put_outcome(&self, key: &BlobKey, response: Response) -> Result<()> {
        let status = response.status();
        if status.is_success() {
            tracing::debug!(%key, "blob stored in the bucket");
            return Ok(());
        }
        Err(refused("store a blob", status, &error_code(response).await))
    }

    pub(crate) async fn exists(&self, key: &BlobKey) -> Result<bool> {
        let response = self.head(Some(key)).await?;
        match response.status() {
            s if s.is_success() => Ok(true),
            StatusCode::NOT_FOUND => Ok(false),
            s => Err(refused("look up a blob", s, "")),
        }
    }

    pub(crate) async fn get(&self, key: &BlobKey) -> Result<Option<Blob>> {
        let response = self
            .send(Call {
                method: Method::GET,
                key: Some(key.as_str()),
                query: "",
                payload_sha256: EMPTY_SHA256,
                content_type: None,
                content_length: None,
                body: None,
                deadline: None,
            })
            .await?;
        let status = response.status();
        if status == StatusCode::NOT_FOUND {
            // Drain the short error body so the connection can be reused.
            let _ = error_code(response).await;
            return Ok(None);
        }
        if !status.is_success() {
            return Err(refused("read a blob", status, &error_code(response).await));
        }
        let len = response.content_length().ok_or_else(|| {
            Error::Storage("the object store sent a blob without its length".into())
        })?;
        Ok(Some(Blob {
            len,
            body: BlobBody::Http(response),
        }))
    }

    pub(crate) async fn check(&self) -> Result<()> {
        let response = self.head(None).await?;
        match response.status() {
            s if s.is_success() => Ok(()),
            StatusCode::NOT_FOUND => Err(Error::Storage(format!(
                "the bucket {:?} does not exist",
                self.inner.bucket
            ))),
            s => Err(refused("reach the bucket", s, "")),
        }
    }

    async fn head(&self, key: Option<&BlobKey>) -> Result<Response> {
        self.simple(Method::HEAD, key.map(BlobKey::as_str), "")
            .await
    }

    fn put_deadline(&self, len: u64) -> Duration {
        self.inner
            .timeout
            .saturating_add(Duration::from_secs(len / PUT_MIN_BYTES_PER_SECOND))
    }

    /// Signs and sends one request; any answer from the server is `Ok`.
    async fn send(&self, call: Call<'_>) -> Result<Response> {
        let inner = &*self.inner;
        let mut path = format!("/{}", uri_encode(&inner.bucket, false));
        if let Some(key) = call.key {
            path.push('/');
            path.push_str(&uri_encode(key, true));
        }
        let url = if call.query.is_empty() {
            format!("{}{path}", inner.origin)
        } else {
            format!("{}{path}?{}", inner.origin, call.query)
        };
        let now = amz_date(Utc::now());
        let mut headers: Vec<(&str, &str)> = vec![
            ("host", &inner.host),
            ("x-amz-content-sha256", call.payload_sha256),
            ("x-amz-date", &now),
        ];
        if let Some(content_type) = call.content_type {
            headers.push(("content-type", content_type));
        }
        let authorization = Signer {
            access_key_id: &inner.access_key_id,
            secret_access_key: inner.secret_access_key.expose_secret(),
            region: &inner.region,
        }
        .authorization(
            &Request {
                method: call.method.as_str(),
                canonical_uri: &path,
                canonical_query: call.query,
                headers: &headers,
                payload_sha256: call.payload_sha256,
            },
            &now,
        );

        let mut request = inner
            .http
            .request(call.method.clone(), url)
            .header(HOST, &inner.host)
            .header("x-amz-content-sha256", call.payload_sha256)
            .header("x-amz-date", &now)
            .header(AUTHORIZATION, authorization);
        if let Some(content_type) = call.content_type {
            request = request.header(CONTENT_TYPE, content_type);
        }
        if let Some(len) = call.content_length {
            // Set for streamed bodies too, so they go with a length instead of chunked, which
            // S3 refuses for a plain PUT.
            request = request.header(CONTENT_LENGTH, len);
        }
        if let Some(body) = call.body {
            request = request.body(body);
        }
        let sent = match call.deadline {
            Some(deadline) => request.timeout(deadline).send().await,
            // The body is read later under the per-read timeout; only the headers are waited
            // for here.
            None => tokio::time::timeout(inner.timeout, request.send())
                .await
                .map_err(|_| Error::Storage("object store unreachable: timed out".into()))?,
        };
        let response = sent.map_err(transport_error)?;
        tracing::debug!(method = %call.method, %path, status = %response.status(), "S3 request");
        Ok(response)
    }
}

/// A request that got no answer, or whose body broke off.
pub(super) fn transport_error(e: reqwest::Error) -> Error {
    let why = if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "connection failed"
    } else {
        "the connection broke"
    };
    tracing::warn!(error = %e, "S3 request failed");
    Error::Storage(format!("object store unreachable: {why}"))
}

/// An answer that is not the one we wanted.
fn refused(what: &str, status: StatusCode, code: &str) -> Error {
    let code = if code.is_empty() {
        String::new()
    } else {
        format!(" ({code})")
    };
    if status == StatusCode::FORBIDDEN {
        Error::Storage(format!(
            "access denied by the object store{code}: check the access key, its secret and the \
             bucket's policy"
        ))
    } else {
        Error::Storage(format!(
            "the object store refused to {what}: {status}{code}"
        ))
    }
}

/// The `<Code>` of an S3 error body, or "" (a HEAD has no body; some servers send none).
async fn error_code(mut response: Response) -> String {
    let mut body = Vec::new();
    while body.len() < ERROR_BODY_LIMIT {
        match response.chunk().await {
            Ok(Some(chunk)) => body.extend_from_slice(&chunk),
            _ => break,
        }
    }
    let text = String::from_utf8_lossy(&body);
    text.split_once("<Code>")
        .and_then(|(_, rest)| rest.split_once("</Code>"))
        .map(|(code, _)| code)
        .filter(|code| {
            code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'.')
        })
        .unwrap_or("")
        .to_owned()
}

/// S3's rules for new buckets, which also keep the name safe in a path.
fn is_bucket_name(name: &str) -> bool {
    (3..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-' || b == b'.')
        && name
            .bytes()
            .next()
            .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        && !name.contains("..")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(endpoint: &str) -> S3Config {
        S3Config {
            endpoint: endpoint.into(),
            bucket: "media".into(),
            region: "us-east-1".into(),
            access_key_id: "AKIDEXAMPLE".into(),
            secret_access_key: SecretString::from("very-secret-key".to_owned()),
            timeout: Duration::from_secs(5),
        }
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let cfg = config("http://127.0.0.1:9000");
        let bucket = S3Bucket::new(cfg.clone()).unwrap();
        assert!(!format!("{cfg:?}").contains("very-secret-key"));
        assert!(!format!("{bucket:?}").contains("very-secret-key"));
    }

    #[test]
    fn endpoints_are_origins_only() {
        assert!(S3Bucket::new(config("http://127.0.0.1:9000")).is_ok());
        assert!(S3Bucket::new(config("https://s3.example.com/")).is_ok());
        for bad in [
            "127.0.0.1:9000",
            "ftp://h",
            "http://h/prefix",
            "http://user:pw@h",
            "http://h/?x=1",
        ] {
            assert!(S3Bucket::new(config(bad)).is_err(), "{bad}");
        }
        let bucket = S3Bucket::new(config("http://127.0.0.1:9000")).unwrap();
        assert_eq!(bucket.inner.host, "127.0.0.1:9000");
        let bucket = S3Bucket::new(config("https://s3.example.com:443")).unwrap();
        assert_eq!(bucket.inner.host, "s3.example.com");
    }

    #[test]
    fn bucket_names_follow_s3_rules() {
        for good in ["media", "minigate-media.prod", "abc"] {
            assert!(is_bucket_name(good), "{good}");
        }
        for bad in [
            "ab",
            "Media",
            "-media",
            "a..b",
            "a/b",
            "a_b",
            &"a".repeat(64),
        ] {
            assert!(!is_bucket_name(bad), "{bad}");
        }
    }

    #[test]
    fn refusals_say_what_happened_without_secrets() {
        let e = refused(
            "store a blob",
            StatusCode::FORBIDDEN,
            "SignatureDoesNotMatch",
        );
        assert!(e.to_string().contains("access denied"), "{e}");
        assert!(e.to_string().contains("SignatureDoesNotMatch"), "{e}");
        let e = refused(
            "store a blob",
            StatusCode::BAD_REQUEST,
            "XAmzContentSHA256Mismatch",
        );
        assert!(e.to_string().contains("400"), "{e}");
        assert!(e.to_string().contains("XAmzContentSHA256Mismatch"), "{e}");
    }
}
