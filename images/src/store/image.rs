//! Reading images back from their stored manifests and configs.

use std::collections::HashSet;
use std::path::PathBuf;

use oci_spec::image::{Descriptor, Digest, ImageConfiguration, ImageIndex, ImageManifest};

use super::error::{Result, StoreError};
use super::meta::ImageRecord;
use super::Store;

/// Media types of an OCI image index and a Docker manifest list.
pub const INDEX_MEDIA_TYPES: [&str; 2] = [
    "application/vnd.oci.image.index.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
];

/// Returns true for the media type of an OCI index or Docker manifest list.
pub fn is_index_media_type(media_type: &str) -> bool {
    INDEX_MEDIA_TYPES.contains(&media_type)
}

/// Blobs an image refers to, found by walking from its target.
#[derive(Debug, Default)]
pub(crate) struct ImageBlobs {
    /// Stored blobs reached: indexes, manifests, configs, layers.
    pub present: HashSet<Digest>,
    /// Blobs the image needs that are not stored. Manifests of other
    /// platforms in an index are not needed and not listed.
    pub missing: HashSet<Digest>,
    /// diff_ids from the configs reached.
    pub diff_ids: HashSet<Digest>,
}

fn invalid(what: &'static str, digest: &Digest, reason: impl ToString) -> StoreError {
    StoreError::InvalidContent {
        what,
        digest: digest.clone(),
        reason: reason.to_string(),
    }
}

pub(crate) fn parse_diff_ids(config: &ImageConfiguration, digest: &Digest) -> Result<Vec<Digest>> {
    config
        .rootfs()
        .diff_ids()
        .iter()
        .map(|id| Digest::try_from(id.as_str()).map_err(|e| invalid("image config", digest, e)))
        .collect()
}

impl Store {
    pub fn read_manifest(&self, digest: &Digest) -> Result<ImageManifest> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| invalid("image manifest", digest, e))
    }

    pub fn read_index(&self, digest: &Digest) -> Result<ImageIndex> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| invalid("image index", digest, e))
    }

    pub fn read_config(&self, digest: &Digest) -> Result<ImageConfiguration> {
        let bytes = self.read_blob(digest)?;
        serde_json::from_slice(&bytes).map_err(|e| invalid("image config", digest, e))
    }

    /// Returns the manifest for this host's platform.
    pub fn image_manifest(&self, image: &ImageRecord) -> Result<ImageManifest> {
        self.read_manifest(image.manifest.digest())
    }

    pub fn image_config(&self, image: &ImageRecord) -> Result<ImageConfiguration> {
        let manifest = self.image_manifest(image)?;
        self.read_config(manifest.config().digest())
    }

    /// Returns the image's diff_ids, bottom layer first.
    pub fn image_diff_ids(&self, image: &ImageRecord) -> Result<Vec<Digest>> {
        let manifest = self.image_manifest(image)?;
        let config = self.read_config(manifest.config().digest())?;
        parse_diff_ids(&config, manifest.config().digest())
    }

    /// Returns the unpacked layer directories of an image, bottom layer
    /// first (overlayfs `lowerdir=` wants them in the reverse order).
    pub fn image_layers(&self, image: &ImageRecord) -> Result<Vec<PathBuf>> {
        self.image_diff_ids(image)?
            .iter()
            .map(|id| {
                self.snapshot_dir(id)
                    .ok_or_else(|| StoreError::SnapshotNotFound(id.clone()))
            })
            .collect()
    }

    /// Walks from `desc` through indexes and manifests to configs and
    /// layers, adding what it reaches to `blobs`.
    pub(crate) fn walk_blobs(&self, desc: &Descriptor, blobs: &mut ImageBlobs) -> Result<()> {
        let digest = desc.digest();
        if blobs.present.contains(digest) {
            return Ok(());
        }
        if !self.has_blob(digest) {
            blobs.missing.insert(digest.clone());
            return Ok(());
        }
        blobs.present.insert(digest.clone());
        let bytes = self.read_blob(digest)?;
        let value: serde_json::Value =
            serde_json::from_slice(&bytes).map_err(|e| invalid("manifest", digest, e))?;
        if value.get("manifests").is_some() {
            let index: ImageIndex =
                serde_json::from_value(value).map_err(|e| invalid("image index", digest, e))?;
            for child in index.manifests() {
                if self.has_blob(child.digest()) {
                    self.walk_blobs(child, blobs)?;
                }
            }
        } else if value.get("layers").is_some() {
            let manifest: ImageManifest =
                serde_json::from_value(value).map_err(|e| invalid("image manifest", digest, e))?;
            let config = manifest.config().digest();
            if self.has_blob(config) {
                blobs.present.insert(config.clone());
                if let Ok(parsed) = self.read_config(config) {
                    blobs.diff_ids.extend(parse_diff_ids(&parsed, config)?);
                }
            } else {
                blobs.missing.insert(config.clone());
            }
            for layer in manifest.layers() {
                if self.has_blob(layer.digest()) {
                    blobs.present.insert(layer.digest().clone());
                } else {
                    blobs.missing.insert(layer.digest().clone());
                }
            }
        }
        Ok(())
    }

    /// Returns the digests of every blob `desc` refers to, itself included,
    /// or [`StoreError::BlobNotFound`] for the first one missing.
    pub fn blobs_of(&self, desc: &Descriptor) -> Result<Vec<Digest>> {
        let mut blobs = ImageBlobs::default();
        self.walk_blobs(desc, &mut blobs)?;
        if let Some(missing) = blobs.missing.into_iter().next() {
            return Err(StoreError::BlobNotFound(missing));
        }
        let mut digests: Vec<Digest> = blobs.present.into_iter().collect();
        digests.sort_by(|a, b| a.as_ref().cmp(b.as_ref()));
        Ok(digests)
    }

    /// Returns what to push or export for `image`: its index when every
    /// manifest the index lists is stored, else this host's manifest.
    pub fn exportable_target(&self, image: &ImageRecord) -> Result<Descriptor> {
        let target = &image.target;
        if !is_index_media_type(target.media_type().as_ref()) {
            return Ok(target.clone());
        }
        let index = self.read_index(target.digest())?;
        let whole = index.manifests().iter().all(|m| self.has_blob(m.digest()));
        Ok(if whole {
            target.clone()
        } else {
            image.manifest.clone()
        })
    }

    pub(crate) fn image_blobs(&self, image: &ImageRecord) -> Result<ImageBlobs> {
        let mut blobs = ImageBlobs::default();
        self.walk_blobs(&image.target, &mut blobs)?;
        self.walk_blobs(&image.manifest, &mut blobs)?;
        Ok(blobs)
    }
}
