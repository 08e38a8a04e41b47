//! The referrers of a manifest (signatures, SBOMs, attestations): the
//! referrers API, or the `sha256-<hex>` tag schema of registries without it.

use oci_spec::image::{Descriptor, Digest, ImageIndex, ImageIndexBuilder, MediaType};
use reqwest::header::ACCEPT;
use reqwest::{Method, StatusCode};

use super::auth::repository_scope;
use super::error::RegistryError;
use super::manifest::{header_str, OCI_INDEX};
use super::request::read_limited;
use super::RegistryClient;
use crate::Reference;

impl RegistryClient {
    /// Lists the manifests whose `subject` is `digest`, only those of
    /// `artifact_type` when given. Registries without the referrers API
    /// (docker-registry 2.8 returns 404) are asked for the fallback tag
    /// `sha256-<hex>` instead; when neither exists the index is empty.
    pub async fn referrers(
        &self,
        reference: &Reference,
        digest: &Digest,
        artifact_type: Option<&str>,
    ) -> Result<ImageIndex, RegistryError> {
        let endpoint = self.endpoint(reference);
        let mut url = reqwest::Url::parse(&endpoint.url(&format!("referrers/{digest}")))
            .map_err(|e| RegistryError::Config(format!("invalid referrers URL: {e}")))?;
        if let Some(artifact_type) = artifact_type {
            url.query_pairs_mut()
                .append_pair("artifactType", artifact_type);
        }
        let mut request = self.request(&endpoint, Method::GET, url.as_str())?;
        request
            .headers_mut()
            .insert(ACCEPT, OCI_INDEX.parse().expect("a valid header value"));
        let scopes = [repository_scope(&endpoint.repository, false)];
        let response = self.execute_following(&endpoint, &scopes, request).await?;
        let what = format!("referrers of {}@{digest}", reference.name());
        let index = match response.status() {
            StatusCode::OK => {
                let filtered = header_str(&response, "oci-filters-applied")
                    .is_some_and(|filters| filters.split(',').any(|f| f.trim() == "artifactType"));
                let body = read_limited(response, self.inner.config.max_manifest_size)
                    .await
                    .map_err(|source| RegistryError::Request {
                        registry: endpoint.registry.clone(),
                        method: "GET".into(),
                        url: url.to_string(),
                        source,
                    })?;
                let index = parse_index(&endpoint.registry, &what, &body)?;
                if filtered {
                    return Ok(index);
                }
                index
            }
            StatusCode::NOT_FOUND => self.referrers_from_tag(reference, digest, &what).await?,
            _ => return Err(self.status_error(&endpoint, &what, "pull", response).await),
        };
        Ok(filter_index(index, artifact_type))
    }

    /// Reads the index under the fallback tag `<alg>-<hex>`.
    async fn referrers_from_tag(
        &self,
        reference: &Reference,
        digest: &Digest,
        what: &str,
    ) -> Result<ImageIndex, RegistryError> {
        let tag = format!("{}-{}", digest.algorithm(), digest.digest());
        let tagged = reference
            .retag(&tag)
            .map_err(|e| RegistryError::Config(format!("invalid referrers tag {tag}: {e}")))?;
        match self.resolve(&tagged).await {
            Ok(resolved) => parse_index(reference.registry(), what, &resolved.bytes),
            Err(RegistryError::NotFound { .. }) => Ok(empty_index()),
            Err(error) => Err(error),
        }
    }
}

fn parse_index(registry: &str, what: &str, body: &[u8]) -> Result<ImageIndex, RegistryError> {
    serde_json::from_slice(body).map_err(|source| RegistryError::Json {
        registry: registry.to_string(),
        what: what.to_string(),
        source,
    })
}

fn empty_index() -> ImageIndex {
    ImageIndexBuilder::default()
        .schema_version(2u32)
        .media_type(MediaType::ImageIndex)
        .manifests(Vec::<Descriptor>::new())
        .build()
        .expect("an index with schema version and manifests is complete")
}

/// Keeps the manifests of `artifact_type`, all of them when it is `None`.
fn filter_index(mut index: ImageIndex, artifact_type: Option<&str>) -> ImageIndex {
    if let Some(wanted) = artifact_type {
        let kept: Vec<Descriptor> = index
            .manifests()
            .iter()
            .filter(|descriptor| {
                descriptor
                    .artifact_type()
                    .as_ref()
                    .is_some_and(|found| found.to_string() == wanted)
            })
            .cloned()
            .collect();
        index.set_manifests(kept);
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn filter_by_artifact_type() {
        let index: ImageIndex = serde_json::from_str(
            r#"{"schemaVersion":2,"mediaType":"application/vnd.oci.image.index.v1+json","manifests":[
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
               "digest":"sha256:1111111111111111111111111111111111111111111111111111111111111111",
               "artifactType":"application/vnd.example.sbom"},
              {"mediaType":"application/vnd.oci.image.manifest.v1+json","size":1,
               "digest":"sha256:2222222222222222222222222222222222222222222222222222222222222222",
               "artifactType":"application/vnd.example.signature"}]}"#,
        )
        .unwrap();
        let all = filter_index(index.clone(), None);
        assert_eq!(all.manifests().len(), 2);
        let sboms = filter_index(index, Some("application/vnd.example.sbom"));
        assert_eq!(sboms.manifests().len(), 1);
        assert!(sboms.manifests()[0].digest().digest().starts_with("1111"));
    }

    #[test]
    fn empty_index_serializes() {
        let json = serde_json::to_value(empty_index()).unwrap();
        assert_eq!(json["schemaVersion"], 2);
        assert_eq!(json["manifests"], serde_json::json!([]));
    }
}
