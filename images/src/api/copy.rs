//! Copying an image between registry repositories without storing it:
//! blobs are mounted when both are on one registry, else downloaded to a
//! scratch file, verified and uploaded. Index children are copied first and
//! pushed by digest, then the index or manifest under the destination tag.

use std::path::{Path, PathBuf};

use futures_util::StreamExt;
use oci_spec::image::{Descriptor, ImageIndex, ImageManifest, MediaType};
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;
use tokio::sync::mpsc;
use tonic::Status;

use super::status;
use crate::pull::{Action as ProgressAction, Progress};
use crate::registry::RegistryClient;
use crate::Reference;

pub struct Copy {
    pub source_client: RegistryClient,
    pub destination_client: RegistryClient,
    pub source: Reference,
    pub destination: Reference,
    pub scratch: PathBuf,
    pub progress: mpsc::Sender<Progress>,
}

fn short(descriptor: &Descriptor) -> String {
    descriptor.digest().digest().chars().take(12).collect()
}

fn is_index(media_type: &MediaType) -> bool {
    matches!(media_type, MediaType::ImageIndex)
        || media_type.to_string() == "application/vnd.docker.distribution.manifest.list.v2+json"
}

impl Copy {
    /// Copies the image and returns the digest the destination tag points at.
    pub async fn run(&self) -> Result<String, Status> {
        self.report(&self.source.to_string(), ProgressAction::Resolving, 0, 0)
            .await;
        let resolved = self
            .source_client
            .resolve(&self.source)
            .await
            .map_err(status::from_registry)?;
        let media_type = resolved.descriptor.media_type().clone();
        if is_index(&media_type) {
            let index: ImageIndex = serde_json::from_slice(&resolved.bytes).map_err(|err| {
                Status::data_loss(format!("invalid index {}: {err}", self.source))
            })?;
            for child in index.manifests() {
                let bytes = self
                    .source_client
                    .fetch_manifest(&self.source, child)
                    .await
                    .map_err(status::from_registry)?;
                self.copy_manifest_blobs(&bytes).await?;
                let pinned = self.destination.pin(child.digest().clone());
                self.destination_client
                    .push_manifest(&pinned, child.media_type().as_ref(), &bytes)
                    .await
                    .map_err(status::from_registry)?;
            }
        } else {
            self.copy_manifest_blobs(&resolved.bytes).await?;
        }
        let digest = self
            .destination_client
            .push_manifest(&self.destination, media_type.as_ref(), &resolved.bytes)
            .await
            .map_err(status::from_registry)?;
        Ok(digest.to_string())
    }

    async fn copy_manifest_blobs(&self, bytes: &[u8]) -> Result<(), Status> {
        let manifest: ImageManifest = serde_json::from_slice(bytes).map_err(|err| {
            Status::data_loss(format!("invalid manifest in {}: {err}", self.source))
        })?;
        let mut blobs = vec![manifest.config().clone()];
        blobs.extend(manifest.layers().iter().cloned());
        for blob in &blobs {
            self.copy_blob(blob).await?;
        }
        Ok(())
    }

    async fn copy_blob(&self, blob: &Descriptor) -> Result<(), Status> {
        let id = short(blob);
        let exists = self
            .destination_client
            .blob_exists(&self.destination, blob.digest())
            .await
            .map_err(status::from_registry)?;
        if exists.is_some() {
            self.report(&id, ProgressAction::Exists, blob.size(), blob.size())
                .await;
            return Ok(());
        }
        let mounted = self
            .destination_client
            .mount_blob(&self.destination, &self.source, blob)
            .await
            .map_err(status::from_registry)?;
        if mounted {
            self.report(&id, ProgressAction::Mounted, blob.size(), blob.size())
                .await;
            return Ok(());
        }

        tokio::fs::create_dir_all(&self.scratch)
            .await
            .map_err(|err| scratch_error(&self.scratch, err))?;
        let path = self.scratch.join(format!(
            "copy-{}-{}",
            std::process::id(),
            blob.digest().digest()
        ));
        let result = self.download(blob, &path, &id).await;
        let result = match result {
            Ok(()) => self
                .destination_client
                .push_blob(&self.destination, blob, &path)
                .await
                .map_err(status::from_registry),
            Err(err) => Err(err),
        };
        let _ = tokio::fs::remove_file(&path).await;
        result?;
        self.report(&id, ProgressAction::Done, blob.size(), blob.size())
            .await;
        Ok(())
    }

    /// Downloads `blob` to `path` and checks its digest and size.
    async fn download(&self, blob: &Descriptor, path: &Path, id: &str) -> Result<(), Status> {
        let mut stream = self
            .source_client
            .fetch_blob(&self.source, blob, 0)
            .await
            .map_err(status::from_registry)?;
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(|err| scratch_error(path, err))?;
        let mut hasher = Sha256::new();
        let mut written = 0u64;
        while let Some(chunk) = stream.next().await {
            let chunk = chunk.map_err(status::from_registry)?;
            hasher.update(&chunk);
            file.write_all(&chunk)
                .await
                .map_err(|err| scratch_error(path, err))?;
            written += chunk.len() as u64;
            self.report(id, ProgressAction::Downloading, written, blob.size())
                .await;
        }
        file.flush().await.map_err(|err| scratch_error(path, err))?;
        let actual = hex::encode(hasher.finalize());
        if actual != blob.digest().digest() || written != blob.size() {
            return Err(Status::data_loss(format!(
                "blob {} from {} has digest sha256:{actual} and {written} bytes, expected {} bytes",
                blob.digest(),
                self.source,
                blob.size()
            )));
        }
        Ok(())
    }

    async fn report(&self, id: &str, action: ProgressAction, current: u64, total: u64) {
        let _ = self
            .progress
            .send(Progress {
                id: id.to_string(),
                action,
                current,
                total,
            })
            .await;
    }
}

fn scratch_error(path: &Path, err: std::io::Error) -> Status {
    Status::internal(format!("failed to write {}: {err}", path.display()))
}
