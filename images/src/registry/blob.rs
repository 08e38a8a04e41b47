//! Blob downloads that resume with a Range request after a dropped
//! connection, and blob existence checks.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{self, BoxStream, Stream, StreamExt};
use oci_spec::image::{Descriptor, Digest};
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, RANGE};
use reqwest::{Method, Response, StatusCode};

use super::auth::repository_scope;
use super::error::RegistryError;
use super::manifest::header_str;
use super::{Endpoint, RegistryClient};
use crate::Reference;

/// The bytes of one blob from a given offset. Connection failures are
/// retried up to [`super::RegistryConfig::retries`] times, each time asking
/// for the bytes not yet delivered. The caller verifies the digest.
pub struct BlobStream {
    inner: BoxStream<'static, Result<Bytes, RegistryError>>,
}

impl Stream for BlobStream {
    type Item = Result<Bytes, RegistryError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.inner.as_mut().poll_next(cx)
    }
}

impl std::fmt::Debug for BlobStream {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BlobStream")
    }
}

/// The download state carried from one chunk to the next.
struct Download {
    client: RegistryClient,
    endpoint: Endpoint,
    digest: Digest,
    size: u64,
    /// The offset of the next byte to deliver.
    position: u64,
    retries_left: u32,
    attempt: u32,
    body: Option<BoxStream<'static, reqwest::Result<Bytes>>>,
    /// Bytes to drop from the body before delivering: a server that ignores
    /// Range sends the blob from its start.
    skip: u64,
    done: bool,
}

impl RegistryClient {
    /// Streams the blob that `descriptor` names from byte `offset` on.
    pub async fn fetch_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        offset: u64,
    ) -> Result<BlobStream, RegistryError> {
        if offset > descriptor.size() {
            return Err(RegistryError::Config(format!(
                "offset {offset} is past the end of blob {} ({} bytes)",
                descriptor.digest(),
                descriptor.size()
            )));
        }
        let mut download = Download {
            client: self.clone(),
            endpoint: self.endpoint(reference),
            digest: descriptor.digest().clone(),
            size: descriptor.size(),
            position: offset,
            retries_left: self.inner.config.retries,
            attempt: 0,
            body: None,
            skip: 0,
            done: offset >= descriptor.size() && descriptor.size() > 0,
        };
        // Open the connection now, so that a missing blob or bad credentials
        // show up here and not at the first read.
        if !download.done {
            download.open().await?;
        }
        let inner = stream::unfold(download, |mut download| async move {
            let item = download.next_chunk().await?;
            Some((item, download))
        })
        .boxed();
        Ok(BlobStream { inner })
    }

    /// Returns the size of the blob `digest` in the repository of
    /// `reference`, or `None` when the registry does not have it there.
    pub async fn blob_exists(
        &self,
        reference: &Reference,
        digest: &Digest,
    ) -> Result<Option<u64>, RegistryError> {
        let endpoint = self.endpoint(reference);
        self.head_blob(&endpoint, digest, false).await
    }

    pub(crate) async fn head_blob(
        &self,
        endpoint: &Endpoint,
        digest: &Digest,
        push: bool,
    ) -> Result<Option<u64>, RegistryError> {
        let url = endpoint.url(&format!("blobs/{digest}"));
        let request = self.request(endpoint, Method::HEAD, &url)?;
        let scopes = [repository_scope(&endpoint.repository, push)];
        let response = self.execute_following(endpoint, &scopes, request).await?;
        match response.status() {
            StatusCode::OK => Ok(Some(
                header_str(&response, CONTENT_LENGTH.as_str())
                    .and_then(|value| value.parse().ok())
                    .unwrap_or(0),
            )),
            StatusCode::NOT_FOUND => Ok(None),
            _ => {
                let what = format!("blob {digest} in {}", endpoint.repository);
                let action = if push { "push" } else { "pull" };
                Err(self.status_error(endpoint, &what, action, response).await)
            }
        }
    }
}

impl Download {
    fn what(&self) -> String {
        format!(
            "blob {} in {}/{}",
            self.digest, self.endpoint.registry, self.endpoint.repository
        )
    }

    /// Returns the next chunk, reconnecting after a failure while retries
    /// are left. `None` ends the stream.
    async fn next_chunk(&mut self) -> Option<Result<Bytes, RegistryError>> {
        loop {
            if self.done {
                return None;
            }
            if self.body.is_none() {
                if let Err(error) = self.open().await {
                    if self.may_retry(&error) {
                        continue;
                    }
                    self.done = true;
                    return Some(Err(error));
                }
            }
            let body = self.body.as_mut().expect("the body was opened");
            match body.next().await {
                Some(Ok(mut chunk)) => {
                    if self.skip > 0 {
                        let dropped = self.skip.min(chunk.len() as u64);
                        self.skip -= dropped;
                        chunk = chunk.slice(dropped as usize..);
                        if chunk.is_empty() {
                            continue;
                        }
                    }
                    self.position += chunk.len() as u64;
                    if self.size > 0 && self.position > self.size {
                        self.done = true;
                        return Some(Err(RegistryError::SizeMismatch {
                            registry: self.endpoint.registry.clone(),
                            what: self.what(),
                            expected: self.size,
                            actual: self.position,
                        }));
                    }
                    return Some(Ok(chunk));
                }
                Some(Err(source)) => {
                    self.body = None;
                    let error = RegistryError::Request {
                        registry: self.endpoint.registry.clone(),
                        method: "GET".into(),
                        url: self.endpoint.url(&format!("blobs/{}", self.digest)),
                        source,
                    };
                    if self.may_retry(&error) {
                        continue;
                    }
                    self.done = true;
                    return Some(Err(error));
                }
                None => {
                    self.body = None;
                    if self.size == 0 || self.position >= self.size {
                        self.done = true;
                        return None;
                    }
                    // The body ended early without a transport error: treat
                    // it as a dropped connection.
                    let error = RegistryError::SizeMismatch {
                        registry: self.endpoint.registry.clone(),
                        what: self.what(),
                        expected: self.size,
                        actual: self.position,
                    };
                    if self.may_retry(&error) {
                        continue;
                    }
                    self.done = true;
                    return Some(Err(error));
                }
            }
        }
    }

    /// Counts one retry and waits before it. Returns false when none are
    /// left or the error is not worth retrying.
    fn may_retry(&mut self, error: &RegistryError) -> bool {
        let transient = match error {
            RegistryError::Request { .. } | RegistryError::SizeMismatch { .. } => true,
            RegistryError::Http { status, .. } => *status >= 500 || *status == 429,
            _ => false,
        };
        if !transient || self.retries_left == 0 {
            return false;
        }
        self.retries_left -= 1;
        self.attempt += 1;
        tracing::warn!(
            blob = %self.digest,
            offset = self.position,
            retries_left = self.retries_left,
            %error,
            "blob download failed, resuming"
        );
        true
    }

    /// Sends the GET for the bytes from `position` on, after a backoff when
    /// this is a retry, and checks the response to a Range request.
    async fn open(&mut self) -> Result<(), RegistryError> {
        if self.attempt > 0 {
            let backoff = Duration::from_millis(200u64 << self.attempt.min(5));
            tokio::time::sleep(backoff).await;
        }
        let url = self.endpoint.url(&format!("blobs/{}", self.digest));
        let mut request = self.client.request(&self.endpoint, Method::GET, &url)?;
        if self.position > 0 {
            let range = format!("bytes={}-", self.position)
                .parse()
                .expect("a byte range is a valid header value");
            request.headers_mut().insert(RANGE, range);
        }
        let scopes = [repository_scope(&self.endpoint.repository, false)];
        let response = self
            .client
            .execute_following(&self.endpoint, &scopes, request)
            .await?;
        self.skip = 0;
        match response.status() {
            StatusCode::OK => {
                // A 200 response to a Range request carries the whole blob.
                self.skip = self.position;
            }
            StatusCode::PARTIAL_CONTENT if self.position > 0 => {
                self.check_content_range(&response)?;
            }
            StatusCode::RANGE_NOT_SATISFIABLE if self.position == self.size => {
                self.done = true;
                return Ok(());
            }
            _ => {
                let what = self.what();
                return Err(self
                    .client
                    .status_error(&self.endpoint, &what, "pull", response)
                    .await);
            }
        }
        self.body = Some(response.bytes_stream().boxed());
        Ok(())
    }

    /// Checks that a 206 response starts at `position`:
    /// `Content-Range: bytes START-END/TOTAL`.
    fn check_content_range(&self, response: &Response) -> Result<(), RegistryError> {
        let header = header_str(response, CONTENT_RANGE.as_str()).unwrap_or_default();
        let start = parse_content_range_start(&header);
        if start == Some(self.position) {
            return Ok(());
        }
        Err(RegistryError::InvalidResponse {
            registry: self.endpoint.registry.clone(),
            url: response.url().to_string(),
            reason: format!(
                "HTTP 206 with Content-Range {header:?} does not start at the requested offset {}",
                self.position
            ),
        })
    }
}

/// Parses the first byte offset of `bytes START-END/TOTAL`.
fn parse_content_range_start(header: &str) -> Option<u64> {
    let range = header.trim().strip_prefix("bytes")?.trim_start();
    let (start, _) = range.split_once('-')?;
    start.trim().parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_range_start() {
        assert_eq!(parse_content_range_start("bytes 100-199/200"), Some(100));
        assert_eq!(parse_content_range_start("bytes 0-9/*"), Some(0));
        assert_eq!(parse_content_range_start("bytes */200"), None);
        assert_eq!(parse_content_range_start(""), None);
    }
}
