//! Blob uploads: the existence check, cross-repository mounts, monolithic
//! uploads (POST then PUT) and chunked uploads (POST, PATCH..., PUT).

use std::path::Path;

use oci_spec::image::Descriptor;
use reqwest::header::{CONTENT_LENGTH, CONTENT_RANGE, CONTENT_TYPE, LOCATION};
use reqwest::{Method, Response, StatusCode, Url};
use tokio::io::AsyncReadExt;

use super::auth::repository_scope;
use super::error::RegistryError;
use super::manifest::header_str;
use super::{Endpoint, RegistryClient};
use crate::Reference;

const OCTET_STREAM: &str = "application/octet-stream";

impl RegistryClient {
    /// Uploads the blob at `path` that `descriptor` describes, unless the
    /// repository has it already. Blobs above the chunked-upload threshold
    /// go up in chunks.
    pub async fn push_blob(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let endpoint = self.endpoint(reference);
        let digest = descriptor.digest();
        if self.head_blob(&endpoint, digest, true).await?.is_some() {
            tracing::debug!(blob = %digest, repository = %endpoint.repository, "blob exists, upload skipped");
            return Ok(());
        }
        let io_error = |source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        };
        let file_size = tokio::fs::metadata(path).await.map_err(io_error)?.len();
        if file_size != descriptor.size() {
            return Err(RegistryError::SizeMismatch {
                registry: endpoint.registry,
                what: format!("blob {digest} at {}", path.display()),
                expected: descriptor.size(),
                actual: file_size,
            });
        }
        let location = self.start_upload(&endpoint).await?;
        if file_size <= self.inner.config.chunked_upload_threshold {
            let body = tokio::fs::read(path).await.map_err(io_error)?;
            self.finish_upload(&endpoint, descriptor, location, body)
                .await
        } else {
            self.upload_chunks(&endpoint, descriptor, location, path)
                .await
        }
    }

    /// Asks the registry to link the blob from the repository of `from` into
    /// the repository of `reference` without an upload. Returns true when
    /// the registry mounted it (201). Returns false when it cannot, and the
    /// caller then uploads with [`Self::push_blob`]: the registry answered
    /// 202 and opened an upload session, which this cancels, or `from` is
    /// on another registry.
    pub async fn mount_blob(
        &self,
        reference: &Reference,
        from: &Reference,
        descriptor: &Descriptor,
    ) -> Result<bool, RegistryError> {
        if from.registry() != reference.registry() {
            return Ok(false);
        }
        let endpoint = self.endpoint(reference);
        let digest = descriptor.digest();
        let mut url = upload_start_url(&endpoint)?;
        url.query_pairs_mut()
            .append_pair("mount", digest.as_ref())
            .append_pair("from", from.repository());
        let mut request = self.request(&endpoint, Method::POST, url.as_str())?;
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, "0".parse().expect("a valid header value"));
        let scopes = [
            repository_scope(&endpoint.repository, true),
            repository_scope(from.repository(), false),
        ];
        let response = self.execute(&endpoint, &scopes, request).await?;
        match response.status() {
            StatusCode::CREATED => {
                tracing::debug!(blob = %digest, from = %from.repository(), to = %endpoint.repository, "blob mounted");
                Ok(true)
            }
            StatusCode::ACCEPTED => {
                if let Ok(location) = upload_location(&endpoint, &response) {
                    self.cancel_upload(&endpoint, location).await;
                }
                Ok(false)
            }
            _ => {
                let what = format!("blob {digest} in {}", from.name());
                Err(self.status_error(&endpoint, &what, "push", response).await)
            }
        }
    }

    /// Opens an upload session: `POST /v2/<name>/blobs/uploads/`. Returns
    /// the session URL from the Location header.
    async fn start_upload(&self, endpoint: &Endpoint) -> Result<Url, RegistryError> {
        let url = upload_start_url(endpoint)?;
        let mut request = self.request(endpoint, Method::POST, url.as_str())?;
        request
            .headers_mut()
            .insert(CONTENT_LENGTH, "0".parse().expect("a valid header value"));
        let scopes = [repository_scope(&endpoint.repository, true)];
        let response = self.execute(endpoint, &scopes, request).await?;
        if response.status() != StatusCode::ACCEPTED {
            let what = format!("repository {}", endpoint.repository);
            return Err(self.status_error(endpoint, &what, "push", response).await);
        }
        upload_location(endpoint, &response)
    }

    /// Closes an upload session with `PUT <location>?digest=<digest>`,
    /// sending `body` as the last (or only) part.
    async fn finish_upload(
        &self,
        endpoint: &Endpoint,
        descriptor: &Descriptor,
        mut location: Url,
        body: Vec<u8>,
    ) -> Result<(), RegistryError> {
        let digest = descriptor.digest();
        location
            .query_pairs_mut()
            .append_pair("digest", digest.as_ref());
        let mut request = self.request(endpoint, Method::PUT, location.as_str())?;
        let headers = request.headers_mut();
        headers.insert(
            CONTENT_TYPE,
            OCTET_STREAM.parse().expect("a valid header value"),
        );
        headers.insert(CONTENT_LENGTH, body.len().into());
        *request.body_mut() = Some(body.into());
        let scopes = [repository_scope(&endpoint.repository, true)];
        let response = self.execute(endpoint, &scopes, request).await?;
        if response.status() != StatusCode::CREATED {
            let what = format!("upload of blob {digest} to {}", endpoint.repository);
            return Err(self.status_error(endpoint, &what, "push", response).await);
        }
        Ok(())
    }

    /// Sends the file in chunks of `upload_chunk_size` bytes with PATCH and
    /// `Content-Range: START-END`, then closes the session with an empty
    /// PUT.
    async fn upload_chunks(
        &self,
        endpoint: &Endpoint,
        descriptor: &Descriptor,
        mut location: Url,
        path: &Path,
    ) -> Result<(), RegistryError> {
        let io_error = |source| RegistryError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut file = tokio::fs::File::open(path).await.map_err(io_error)?;
        let chunk_size = self.inner.config.upload_chunk_size as usize;
        let scopes = [repository_scope(&endpoint.repository, true)];
        let mut offset = 0u64;
        loop {
            let mut chunk = Vec::with_capacity(chunk_size);
            (&mut file)
                .take(chunk_size as u64)
                .read_to_end(&mut chunk)
                .await
                .map_err(io_error)?;
            if chunk.is_empty() {
                break;
            }
            let end = offset + chunk.len() as u64 - 1;
            let mut request = self.request(endpoint, Method::PATCH, location.as_str())?;
            let headers = request.headers_mut();
            headers.insert(
                CONTENT_TYPE,
                OCTET_STREAM.parse().expect("a valid header value"),
            );
            headers.insert(CONTENT_LENGTH, chunk.len().into());
            headers.insert(
                CONTENT_RANGE,
                format!("{offset}-{end}")
                    .parse()
                    .expect("a valid header value"),
            );
            *request.body_mut() = Some(chunk.into());
            let response = self.execute(endpoint, &scopes, request).await?;
            if response.status() != StatusCode::ACCEPTED {
                let what = format!(
                    "chunk {offset}-{end} of blob {} to {}",
                    descriptor.digest(),
                    endpoint.repository
                );
                return Err(self.status_error(endpoint, &what, "push", response).await);
            }
            location = upload_location(endpoint, &response)?;
            offset = end + 1;
        }
        if offset != descriptor.size() {
            return Err(RegistryError::SizeMismatch {
                registry: endpoint.registry.clone(),
                what: format!("blob {} at {}", descriptor.digest(), path.display()),
                expected: descriptor.size(),
                actual: offset,
            });
        }
        self.finish_upload(endpoint, descriptor, location, Vec::new())
            .await
    }

    /// Deletes an upload session that is no longer needed; failures are
    /// only logged because the registry expires sessions by itself.
    async fn cancel_upload(&self, endpoint: &Endpoint, location: Url) {
        let scopes = [repository_scope(&endpoint.repository, true)];
        let request = match self.request(endpoint, Method::DELETE, location.as_str()) {
            Ok(request) => request,
            Err(_) => return,
        };
        match self.execute(endpoint, &scopes, request).await {
            Ok(response) if response.status().is_success() => {}
            Ok(response) => {
                tracing::debug!(status = %response.status(), %location, "cancelling the upload session failed")
            }
            Err(error) => {
                tracing::debug!(%error, %location, "cancelling the upload session failed")
            }
        }
    }
}

fn upload_start_url(endpoint: &Endpoint) -> Result<Url, RegistryError> {
    let url = endpoint.url("blobs/uploads/");
    Url::parse(&url).map_err(|e| RegistryError::InvalidResponse {
        registry: endpoint.registry.clone(),
        url,
        reason: format!("invalid URL: {e}"),
    })
}

/// Returns the absolute URL of an upload session from the Location header,
/// which may be relative to the request URL.
fn upload_location(endpoint: &Endpoint, response: &Response) -> Result<Url, RegistryError> {
    let location =
        header_str(response, LOCATION.as_str()).ok_or_else(|| RegistryError::InvalidResponse {
            registry: endpoint.registry.clone(),
            url: response.url().to_string(),
            reason: format!("HTTP {} without a Location header", response.status()),
        })?;
    response
        .url()
        .join(&location)
        .map_err(|e| RegistryError::InvalidResponse {
            registry: endpoint.registry.clone(),
            url: response.url().to_string(),
            reason: format!("invalid Location {location:?}: {e}"),
        })
}
