//! Manifests and indexes: resolving a tag or digest, fetching by
//! descriptor with digest and size checks, pushing, and listing tags.

use oci_spec::image::{Descriptor, Digest, MediaType};
use reqwest::header::{HeaderValue, ACCEPT, CONTENT_LENGTH, CONTENT_TYPE, LINK};
use reqwest::{Method, StatusCode};
use sha2::{Digest as _, Sha256, Sha512};

use super::auth::repository_scope;
use super::error::RegistryError;
use super::request::read_limited;
use super::{Endpoint, RegistryClient, Resolved};
use crate::Reference;

pub const OCI_MANIFEST: &str = "application/vnd.oci.image.manifest.v1+json";
pub const OCI_INDEX: &str = "application/vnd.oci.image.index.v1+json";
pub const DOCKER_MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
pub const DOCKER_MANIFEST_LIST_V2: &str =
    "application/vnd.docker.distribution.manifest.list.v2+json";

/// The Accept header of manifest requests: OCI and Docker schema 2
/// manifests and indexes.
pub const MANIFEST_ACCEPT: &str = "application/vnd.oci.image.index.v1+json, application/vnd.oci.image.manifest.v1+json, application/vnd.docker.distribution.manifest.list.v2+json, application/vnd.docker.distribution.manifest.v2+json";

/// Computes the digest of `bytes` with the algorithm of `like` (sha256 or
/// sha512), or sha256 when `like` is `None`.
pub(crate) fn digest_of(bytes: &[u8], like: Option<&Digest>) -> Digest {
    let text = match like.map(|digest| digest.algorithm().as_ref()) {
        Some("sha512") => format!("sha512:{}", hex::encode(Sha512::digest(bytes))),
        _ => format!("sha256:{}", hex::encode(Sha256::digest(bytes))),
    };
    text.parse().expect("a hex digest is a valid digest")
}

/// Returns the media type of a manifest: the Content-Type header unless it
/// is missing or generic, else the `mediaType` field of the JSON.
fn media_type_of(content_type: Option<&str>, bytes: &[u8]) -> Option<String> {
    let header = content_type
        .map(|value| value.split(';').next().unwrap_or(value).trim())
        .filter(|value| {
            !value.is_empty() && *value != "application/json" && *value != "text/plain"
        });
    if let Some(header) = header {
        return Some(header.to_string());
    }
    let json: serde_json::Value = serde_json::from_slice(bytes).ok()?;
    if let Some(media_type) = json.get("mediaType").and_then(|v| v.as_str()) {
        return Some(media_type.to_string());
    }
    // OCI allows manifests without mediaType: an index has `manifests`, an
    // image manifest has `config` and `layers`.
    if json.get("manifests").is_some() {
        Some(OCI_INDEX.to_string())
    } else if json.get("config").is_some() {
        Some(OCI_MANIFEST.to_string())
    } else {
        None
    }
}

impl RegistryClient {
    /// Looks up the manifest or index that `reference` names, by tag or by
    /// digest, and verifies its digest: against the reference's digest, or
    /// else against the registry's Docker-Content-Digest header.
    pub async fn resolve(&self, reference: &Reference) -> Result<Resolved, RegistryError> {
        let endpoint = self.endpoint(reference);
        let what = format!("manifest {reference}");
        let manifest_reference = reference.manifest_reference();
        let (bytes, content_type, header_digest) = self
            .get_manifest(&endpoint, &manifest_reference, MANIFEST_ACCEPT, &what)
            .await?;

        let expected = reference.digest().cloned().or(header_digest);
        let actual = digest_of(&bytes, expected.as_ref());
        if let Some(expected) = &expected {
            if *expected != actual {
                return Err(RegistryError::DigestMismatch {
                    registry: endpoint.registry,
                    what,
                    expected: expected.to_string(),
                    actual: actual.to_string(),
                });
            }
        }
        let media_type = media_type_of(content_type.as_deref(), &bytes).ok_or_else(|| {
            RegistryError::InvalidResponse {
                registry: endpoint.registry.clone(),
                url: endpoint.url(&format!("manifests/{manifest_reference}")),
                reason: "the manifest has no media type in Content-Type or in its JSON".into(),
            }
        })?;
        let descriptor = Descriptor::new(
            MediaType::from(media_type.as_str()),
            bytes.len() as u64,
            actual,
        );
        Ok(Resolved { descriptor, bytes })
    }

    /// Fetches the manifest or index that `descriptor` names from the
    /// repository of `reference`, and checks its size and digest.
    pub async fn fetch_manifest(
        &self,
        reference: &Reference,
        descriptor: &Descriptor,
    ) -> Result<Vec<u8>, RegistryError> {
        let endpoint = self.endpoint(reference);
        let digest = descriptor.digest();
        let what = format!("manifest {}@{digest}", reference.name());
        if descriptor.size() > self.inner.config.max_manifest_size {
            return Err(RegistryError::ManifestTooLarge {
                registry: endpoint.registry,
                what,
                limit: self.inner.config.max_manifest_size,
            });
        }
        let accept = format!("{}, {MANIFEST_ACCEPT}", descriptor.media_type());
        let (bytes, _, _) = self
            .get_manifest(&endpoint, digest.as_ref(), &accept, &what)
            .await?;
        if bytes.len() as u64 != descriptor.size() {
            return Err(RegistryError::SizeMismatch {
                registry: endpoint.registry,
                what,
                expected: descriptor.size(),
                actual: bytes.len() as u64,
            });
        }
        let actual = digest_of(&bytes, Some(digest));
        if actual != *digest {
            return Err(RegistryError::DigestMismatch {
                registry: endpoint.registry,
                what,
                expected: digest.to_string(),
                actual: actual.to_string(),
            });
        }
        Ok(bytes)
    }

    /// Sends `GET /v2/<name>/manifests/<reference>`. Returns the body (at
    /// most `max_manifest_size` bytes), the Content-Type and the
    /// Docker-Content-Digest header.
    async fn get_manifest(
        &self,
        endpoint: &Endpoint,
        manifest_reference: &str,
        accept: &str,
        what: &str,
    ) -> Result<(Vec<u8>, Option<String>, Option<Digest>), RegistryError> {
        let url = endpoint.url(&format!("manifests/{manifest_reference}"));
        let mut request = self.request(endpoint, Method::GET, &url)?;
        let accept = HeaderValue::from_str(accept).map_err(|_| {
            RegistryError::Config(format!("invalid media type in Accept header {accept:?}"))
        })?;
        request.headers_mut().insert(ACCEPT, accept);
        let scopes = [repository_scope(&endpoint.repository, false)];
        let response = self.execute_following(endpoint, &scopes, request).await?;
        if response.status() != StatusCode::OK {
            return Err(self.status_error(endpoint, what, "pull", response).await);
        }

        let limit = self.inner.config.max_manifest_size;
        let too_large = || RegistryError::ManifestTooLarge {
            registry: endpoint.registry.clone(),
            what: what.to_string(),
            limit,
        };
        let length = header_str(&response, CONTENT_LENGTH.as_str())
            .and_then(|value| value.parse::<u64>().ok());
        if length.is_some_and(|length| length > limit) {
            return Err(too_large());
        }
        let content_type = header_str(&response, CONTENT_TYPE.as_str());
        let header_digest = header_str(&response, "docker-content-digest")
            .and_then(|value| value.parse::<Digest>().ok());
        let bytes =
            read_limited(response, limit)
                .await
                .map_err(|source| RegistryError::Request {
                    registry: endpoint.registry.clone(),
                    method: "GET".into(),
                    url: url.clone(),
                    source,
                })?;
        if bytes.len() as u64 > limit {
            return Err(too_large());
        }
        Ok((bytes, content_type, header_digest))
    }

    /// Uploads a manifest or index under the tag of `reference`, or under
    /// its digest when it has no tag. Returns the manifest's digest.
    pub async fn push_manifest(
        &self,
        reference: &Reference,
        media_type: &str,
        bytes: &[u8],
    ) -> Result<Digest, RegistryError> {
        let endpoint = self.endpoint(reference);
        let digest = digest_of(bytes, reference.digest());
        let what = format!("manifest {reference}");
        if let Some(expected) = reference.digest() {
            if *expected != digest {
                return Err(RegistryError::DigestMismatch {
                    registry: endpoint.registry,
                    what,
                    expected: expected.to_string(),
                    actual: digest.to_string(),
                });
            }
        }
        let target = match reference.tag() {
            Some(tag) => tag.to_string(),
            None => reference.manifest_reference(),
        };
        let url = endpoint.url(&format!("manifests/{target}"));
        let mut request = self.request(&endpoint, Method::PUT, &url)?;
        let content_type = HeaderValue::from_str(media_type).map_err(|_| {
            RegistryError::Config(format!("invalid manifest media type {media_type:?}"))
        })?;
        request.headers_mut().insert(CONTENT_TYPE, content_type);
        *request.body_mut() = Some(bytes.to_vec().into());
        let scopes = [repository_scope(&endpoint.repository, true)];
        let response = self.execute(&endpoint, &scopes, request).await?;
        if response.status() != StatusCode::CREATED && response.status() != StatusCode::OK {
            return Err(self.status_error(&endpoint, &what, "push", response).await);
        }
        if let Some(returned) = header_str(&response, "docker-content-digest")
            .and_then(|value| value.parse::<Digest>().ok())
        {
            if returned.algorithm() == digest.algorithm() && returned != digest {
                return Err(RegistryError::DigestMismatch {
                    registry: endpoint.registry,
                    what,
                    expected: digest.to_string(),
                    actual: returned.to_string(),
                });
            }
        }
        Ok(digest)
    }

    /// Lists the tags of the repository of `reference`, following the
    /// `Link` header across pages.
    pub async fn tags(&self, reference: &Reference) -> Result<Vec<String>, RegistryError> {
        #[derive(serde::Deserialize)]
        struct TagList {
            #[serde(default)]
            tags: Option<Vec<String>>,
        }
        let endpoint = self.endpoint(reference);
        let what = format!("repository {}", reference.name());
        let scopes = [repository_scope(&endpoint.repository, false)];
        let mut url = endpoint.url("tags/list");
        let mut tags = Vec::new();
        loop {
            let request = self.request(&endpoint, Method::GET, &url)?;
            let response = self.execute_following(&endpoint, &scopes, request).await?;
            if response.status() != StatusCode::OK {
                return Err(self.status_error(&endpoint, &what, "pull", response).await);
            }
            let next = header_str(&response, LINK.as_str()).and_then(|link| next_link(&link));
            let page_url = response.url().clone();
            let body = read_limited(response, self.inner.config.max_manifest_size)
                .await
                .map_err(|source| RegistryError::Request {
                    registry: endpoint.registry.clone(),
                    method: "GET".into(),
                    url: url.clone(),
                    source,
                })?;
            let page: TagList =
                serde_json::from_slice(&body).map_err(|source| RegistryError::Json {
                    registry: endpoint.registry.clone(),
                    what: format!("tag list of {}", reference.name()),
                    source,
                })?;
            tags.extend(page.tags.unwrap_or_default());
            match next {
                Some(next) => {
                    url = page_url
                        .join(&next)
                        .map_err(|e| RegistryError::InvalidResponse {
                            registry: endpoint.registry.clone(),
                            url: page_url.to_string(),
                            reason: format!("invalid Link target {next:?}: {e}"),
                        })?
                        .to_string();
                }
                None => return Ok(tags),
            }
        }
    }
}

/// Returns the target of the `rel="next"` entry of a Link header:
/// `</v2/name/tags/list?last=b&n=2>; rel="next"`.
fn next_link(header: &str) -> Option<String> {
    header.split(',').find_map(|entry| {
        let (target, params) = entry.split_once(';')?;
        let is_next = params.split(';').any(|param| {
            param.trim().replace(' ', "") == "rel=\"next\"" || param.trim() == "rel=next"
        });
        let target = target.trim().strip_prefix('<')?.strip_suffix('>')?;
        is_next.then(|| target.to_string())
    })
}

pub(crate) fn header_str(response: &reqwest::Response, name: &str) -> Option<String> {
    response
        .headers()
        .get(name)
        .and_then(|value| value.to_str().ok())
        .map(str::to_string)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn media_type_from_header_or_body() {
        assert_eq!(
            media_type_of(Some(OCI_MANIFEST), b"{}").as_deref(),
            Some(OCI_MANIFEST)
        );
        let body = format!(r#"{{"mediaType":"{DOCKER_MANIFEST_V2}"}}"#);
        assert_eq!(
            media_type_of(Some("application/json"), body.as_bytes()).as_deref(),
            Some(DOCKER_MANIFEST_V2)
        );
        assert_eq!(
            media_type_of(None, br#"{"schemaVersion":2,"manifests":[]}"#).as_deref(),
            Some(OCI_INDEX)
        );
        assert_eq!(media_type_of(None, b"not json"), None);
    }

    #[test]
    fn digest_of_matches_algorithm() {
        let sha256 = digest_of(b"", None);
        assert_eq!(
            sha256.to_string(),
            "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
        );
        let like: Digest = format!("sha512:{}", "0".repeat(128)).parse().unwrap();
        assert!(digest_of(b"", Some(&like))
            .to_string()
            .starts_with("sha512:cf83e135"));
    }

    #[test]
    fn link_header_next() {
        assert_eq!(
            next_link(r#"</v2/a/tags/list?last=b&n=2>; rel="next""#).as_deref(),
            Some("/v2/a/tags/list?last=b&n=2")
        );
        assert_eq!(next_link(r#"</x>; rel="prev""#), None);
    }
}
