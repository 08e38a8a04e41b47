//! Reading the layers of an OCI image layout, and rewriting them with
//! another compression (umoci 0.4.7 writes only gzip layers, and skopeo 1.9
//! keeps a compressed layer as it is).

use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

use serde_json::Value;
use sha2::{Digest, Sha256};

pub const TAR: &str = "application/vnd.oci.image.layer.v1.tar";
pub const TAR_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// A layer of the image that `index.json` lists first.
pub struct Layer {
    pub media_type: String,
    pub blob: PathBuf,
    /// The uncompressed digest that the image config lists.
    pub diff_id: String,
}

fn blob_path(layout: &Path, digest: &str) -> PathBuf {
    let hex = digest.strip_prefix("sha256:").expect("sha256 digest");
    layout.join("blobs/sha256").join(hex)
}

fn read_json(path: &Path) -> Value {
    serde_json::from_slice(&fs::read(path).unwrap()).unwrap()
}

fn manifest_digest(layout: &Path) -> String {
    let index = read_json(&layout.join("index.json"));
    index["manifests"][0]["digest"].as_str().unwrap().to_owned()
}

/// Lists the layers of the first image in `layout`, bottom first.
pub fn layers(layout: &Path) -> Vec<Layer> {
    let manifest = read_json(&blob_path(layout, &manifest_digest(layout)));
    let config_digest = manifest["config"]["digest"].as_str().unwrap();
    let config = read_json(&blob_path(layout, config_digest));
    let diff_ids = config["rootfs"]["diff_ids"].as_array().unwrap();
    let layers = manifest["layers"].as_array().unwrap();
    assert_eq!(
        layers.len(),
        diff_ids.len(),
        "layers and diff_ids differ in count"
    );
    layers
        .iter()
        .zip(diff_ids)
        .map(|(layer, diff_id)| Layer {
            media_type: layer["mediaType"].as_str().unwrap().to_owned(),
            blob: blob_path(layout, layer["digest"].as_str().unwrap()),
            diff_id: diff_id.as_str().unwrap().to_owned(),
        })
        .collect()
}

/// Returns the uncompressed tar of `layer`.
pub fn uncompressed(layer: &Layer) -> Vec<u8> {
    let blob = fs::File::open(&layer.blob).unwrap();
    let mut tar = Vec::new();
    if layer.media_type.ends_with("gzip") {
        flate2::read::MultiGzDecoder::new(blob)
            .read_to_end(&mut tar)
            .unwrap();
    } else if layer.media_type.ends_with("zstd") {
        zstd::stream::read::Decoder::new(blob)
            .unwrap()
            .read_to_end(&mut tar)
            .unwrap();
    } else {
        tar = fs::read(&layer.blob).unwrap();
    }
    tar
}

/// Stores `data` as a blob of `layout` and returns its descriptor fields
/// (digest, size).
fn put_blob(layout: &Path, data: &[u8]) -> (String, u64) {
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(data)));
    fs::write(blob_path(layout, &digest), data).unwrap();
    (digest, data.len() as u64)
}

/// Rewrites every layer of the first image in `layout` as `media_type`
/// (plain tar or zstd), updating the manifest and `index.json`.
pub fn recompress(layout: &Path, media_type: &str) {
    let old_manifest = manifest_digest(layout);
    let mut manifest = read_json(&blob_path(layout, &old_manifest));
    let current = layers(layout);
    for (i, layer) in current.iter().enumerate() {
        let tar = uncompressed(layer);
        let blob = match media_type {
            TAR => tar,
            TAR_ZSTD => zstd::encode_all(&tar[..], 3).unwrap(),
            other => panic!("no encoder for {other}"),
        };
        let (digest, size) = put_blob(layout, &blob);
        let descriptor = &mut manifest["layers"][i];
        descriptor["mediaType"] = media_type.into();
        descriptor["digest"] = digest.into();
        descriptor["size"] = size.into();
    }
    let (digest, size) = put_blob(layout, &serde_json::to_vec(&manifest).unwrap());
    let index_path = layout.join("index.json");
    let mut index = read_json(&index_path);
    index["manifests"][0]["digest"] = digest.into();
    index["manifests"][0]["size"] = size.into();
    fs::write(&index_path, serde_json::to_vec(&index).unwrap()).unwrap();
}
