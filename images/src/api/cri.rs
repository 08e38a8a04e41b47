//! The Kubernetes CRI `runtime.v1.ImageService`, with kubelet's semantics:
//! images are grouped by image id (config digest), ImageStatus of an
//! unknown image and RemoveImage of an absent one succeed, and PullImage
//! returns the image id.

use std::collections::BTreeMap;

use base64::Engine as _;
use cri::image_service_server::ImageService;
use hull_proto::hull::images::v1::RegistryAuth;
use hull_proto::runtime::v1 as cri;
use tokio::sync::mpsc;
use tonic::{Request, Response, Status};

use super::lookup::{self, ImageInfo};
use super::{fsinfo, status, Daemon};
use crate::registry::platform;
use crate::{pull, Reference};

/// Groups named images by image id into CRI images, in id order.
fn cri_images(infos: Vec<ImageInfo>) -> Vec<cri::Image> {
    let mut by_id: BTreeMap<String, Vec<ImageInfo>> = BTreeMap::new();
    for info in infos {
        by_id.entry(info.id.to_string()).or_default().push(info);
    }
    by_id
        .into_iter()
        .map(|(id, group)| cri_image(id, &group))
        .collect()
}

fn cri_image(id: String, group: &[ImageInfo]) -> cri::Image {
    let mut repo_tags = Vec::new();
    let mut repo_digests = Vec::new();
    for info in group {
        let Ok(reference) = info.record.name.parse::<Reference>() else {
            continue;
        };
        if reference.tag().is_some() {
            repo_tags.push(info.record.name.clone());
        }
        let pinned = format!("{}@{}", reference.name(), info.record.target.digest());
        if !repo_digests.contains(&pinned) {
            repo_digests.push(pinned);
        }
    }
    let first = &group[0];
    let (uid, username) = user_of(first);
    cri::Image {
        id: id.clone(),
        repo_tags,
        repo_digests,
        size: u64::try_from(first.size).unwrap_or(0).max(1),
        uid,
        username,
        spec: Some(cri::ImageSpec {
            image: id,
            ..Default::default()
        }),
        pinned: false,
        image_source: String::new(),
    }
}

/// Splits the config's user into CRI's uid or username: `1000` and
/// `1000:100` give a uid, `nginx` a username, an empty user uid 0.
fn user_of(info: &ImageInfo) -> (Option<cri::Int64Value>, String) {
    let user = info
        .config
        .config()
        .as_ref()
        .and_then(|config| config.user().clone())
        .unwrap_or_default();
    let name = user.split(':').next().unwrap_or_default();
    if name.is_empty() {
        return (Some(cri::Int64Value { value: 0 }), String::new());
    }
    match name.parse::<i64>() {
        Ok(uid) => (Some(cri::Int64Value { value: uid }), String::new()),
        Err(_) => (None, name.to_string()),
    }
}

fn image_text(spec: Option<&cri::ImageSpec>) -> Result<String, Status> {
    let image = spec.map(|spec| spec.image.trim()).unwrap_or_default();
    if image.is_empty() {
        return Err(Status::invalid_argument("the image spec names no image"));
    }
    Ok(image.to_string())
}

/// Converts CRI credentials, decoding `auth` (base64 of `user:password`).
fn registry_auth(auth: Option<&cri::AuthConfig>) -> Result<Option<RegistryAuth>, Status> {
    let Some(auth) = auth else {
        return Ok(None);
    };
    let (mut username, mut password) = (auth.username.clone(), auth.password.clone());
    if !auth.auth.is_empty() {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(auth.auth.trim())
            .map_err(|err| Status::invalid_argument(format!("invalid auth: not base64: {err}")))?;
        let decoded = String::from_utf8(decoded)
            .map_err(|_| Status::invalid_argument("invalid auth: not UTF-8"))?;
        let Some((user, pass)) = decoded.split_once(':') else {
            return Err(Status::invalid_argument(
                "invalid auth: expected base64 of user:password",
            ));
        };
        username = user.to_string();
        password = pass.to_string();
    }
    Ok(Some(RegistryAuth {
        username,
        password,
        identity_token: auth.identity_token.clone(),
        registry_token: auth.registry_token.clone(),
    }))
}

#[tonic::async_trait]
impl ImageService for Daemon {
    async fn list_images(
        &self,
        request: Request<cri::ListImagesRequest>,
    ) -> Result<Response<cri::ListImagesResponse>, Status> {
        let filter = request
            .into_inner()
            .filter
            .and_then(|filter| filter.image)
            .map(|spec| spec.image)
            .unwrap_or_default();
        let images = self
            .blocking(move |store| {
                let infos = if filter.is_empty() {
                    lookup::all(store)?
                } else {
                    // A filter that is no valid reference matches nothing.
                    lookup::find(store, &filter).unwrap_or_default()
                };
                Ok(cri_images(infos))
            })
            .await?;
        Ok(Response::new(cri::ListImagesResponse { images }))
    }

    async fn image_status(
        &self,
        request: Request<cri::ImageStatusRequest>,
    ) -> Result<Response<cri::ImageStatusResponse>, Status> {
        let request = request.into_inner();
        let image = image_text(request.image.as_ref())?;
        let verbose = request.verbose;
        let response = self
            .blocking(move |store| {
                let found = lookup::find(store, &image)?;
                let Some(first) = found.first() else {
                    return Ok(cri::ImageStatusResponse::default());
                };
                // Every name of the image, not only the one asked for.
                let id = first.id.clone();
                let group: Vec<ImageInfo> = lookup::all(store)?
                    .into_iter()
                    .filter(|info| info.id == id)
                    .collect();
                let mut info = std::collections::HashMap::new();
                if verbose {
                    let config = serde_json::to_string(&group[0].config)
                        .map_err(|err| Status::internal(err.to_string()))?;
                    info.insert(String::from("info"), format!("{{\"imageSpec\":{config}}}"));
                }
                Ok(cri::ImageStatusResponse {
                    image: Some(cri_image(id.to_string(), &group)),
                    info,
                })
            })
            .await?;
        Ok(Response::new(response))
    }

    async fn pull_image(
        &self,
        request: Request<cri::PullImageRequest>,
    ) -> Result<Response<cri::PullImageResponse>, Status> {
        let request = request.into_inner();
        let text = image_text(request.image.as_ref())?;
        let reference: Reference = text.parse().map_err(status::from_reference)?;
        let auth = registry_auth(request.auth.as_ref())?;
        let client = self
            .registries()
            .client_with(reference.registry(), auth.as_ref())?;

        // CRI has no progress stream, so the updates are dropped.
        let (progress, mut updates) = mpsc::channel(16);
        tokio::spawn(async move { while updates.recv().await.is_some() {} });
        let mut shutdown = self.shutdown();
        let host = platform::host_platform();
        tracing::info!(image = %reference, "CRI pull started");
        let record = tokio::select! {
            result = pull::pull(&client, self.store(), &reference, &host, progress) => {
                result.map_err(|err| {
                    let status = status::from_pull(err);
                    tracing::warn!(image = %reference, error = %status.message(), "CRI pull failed");
                    status
                })?
            }
            _ = shutdown.wait_for(|stopping| *stopping) => {
                return Err(Status::unavailable(format!(
                    "pull of {reference} was cancelled because hull-imaged is stopping"
                )));
            }
        };
        let name = record.name.clone();
        let info = self
            .blocking(move |store| lookup::find_one(store, &name))
            .await?;
        tracing::info!(image = %reference, id = %info.id, "CRI pull finished");
        Ok(Response::new(cri::PullImageResponse {
            image_ref: info.id.to_string(),
        }))
    }

    async fn remove_image(
        &self,
        request: Request<cri::RemoveImageRequest>,
    ) -> Result<Response<cri::RemoveImageResponse>, Status> {
        let image = image_text(request.into_inner().image.as_ref())?;
        self.blocking(move |store| {
            let found = lookup::find(store, &image)?;
            let Some(first) = found.first() else {
                return Ok(());
            };
            // CRI removes the image, so every name of it goes.
            let id = first.id.to_string();
            super::local::remove(store, &id, true).map(|_| ())
        })
        .await?;
        Ok(Response::new(cri::RemoveImageResponse {}))
    }

    async fn image_fs_info(
        &self,
        _request: Request<cri::ImageFsInfoRequest>,
    ) -> Result<Response<cri::ImageFsInfoResponse>, Status> {
        let usage = self.blocking(|store| fsinfo::usage(store.root())).await?;
        Ok(Response::new(cri::ImageFsInfoResponse {
            image_filesystems: vec![usage],
            container_filesystems: Vec::new(),
        }))
    }
}
