//! `docker save` archives: `manifest.json` lists each image's config file,
//! repository tags and layer tars. Imported images get a Docker schema 2
//! manifest built from the files, so layer digests are those of the tars.

use std::fs::{self, File};
use std::io::{BufReader, Read, Write};
use std::path::{Component, Path, PathBuf};

use oci_spec::image::{Descriptor, MediaType};
use serde::{Deserialize, Serialize};
use serde_json::json;

use super::oci::append_bytes;
use super::{hash_file, invalid, io_error, unpack_layers, ArchiveError};
use crate::pull::{layer_compression, now_unix};
use crate::store::{ImageRecord, Store};
use crate::unpack::Compression;
use crate::Reference;

const MANIFEST_FILE: &str = "manifest.json";
const DOCKER_MANIFEST: &str = "application/vnd.docker.distribution.manifest.v2+json";
const DOCKER_CONFIG: &str = "application/vnd.docker.container.image.v1+json";
const DOCKER_LAYER: &str = "application/vnd.docker.image.rootfs.diff.tar";
const DOCKER_LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";
const OCI_LAYER_ZSTD: &str = "application/vnd.oci.image.layer.v1.tar+zstd";

/// One image in `manifest.json`.
#[derive(Debug, Serialize, Deserialize)]
struct SavedImage {
    #[serde(rename = "Config")]
    config: String,
    #[serde(rename = "RepoTags", default)]
    repo_tags: Option<Vec<String>>,
    #[serde(rename = "Layers")]
    layers: Vec<String>,
}

/// Joins the archive-relative `name` to `dir`, rejecting absolute names
/// and `..`.
fn inside(dir: &Path, name: &str, source: &Path) -> Result<PathBuf, ArchiveError> {
    let relative = Path::new(name);
    if relative
        .components()
        .any(|c| !matches!(c, Component::Normal(_) | Component::CurDir))
    {
        return Err(invalid(source, format!("path {name:?} leaves the archive")));
    }
    Ok(dir.join(relative))
}

/// Returns the media type of a layer file from its first bytes.
fn sniff_layer(path: &Path) -> Result<&'static str, ArchiveError> {
    let mut magic = [0u8; 4];
    let mut file = File::open(path).map_err(io_error("open", path))?;
    let n = file.read(&mut magic).map_err(io_error("read", path))?;
    Ok(match &magic[..n] {
        [0x1f, 0x8b, ..] => DOCKER_LAYER_GZIP,
        [0x28, 0xb5, 0x2f, 0xfd] => OCI_LAYER_ZSTD,
        _ => DOCKER_LAYER,
    })
}

pub(super) fn import_docker(
    store: &Store,
    dir: &Path,
    source: &Path,
    name: Option<&Reference>,
) -> Result<Vec<ImageRecord>, ArchiveError> {
    let manifest_path = dir.join(MANIFEST_FILE);
    let bytes = fs::read(&manifest_path).map_err(io_error("read", &manifest_path))?;
    let saved: Vec<SavedImage> =
        serde_json::from_slice(&bytes).map_err(|e| invalid(&manifest_path, e))?;
    let single = saved.len() == 1;
    let mut records = Vec::new();
    for image in &saved {
        let mut pins = store.pin([]);
        let config_path = inside(dir, &image.config, source)?;
        let config = fs::read(&config_path).map_err(io_error("read", &config_path))?;
        let config_desc = store.put_blob(&config, MediaType::Other(DOCKER_CONFIG.into()))?;
        pins.add([config_desc.digest()]);
        let mut layers = Vec::new();
        for layer in &image.layers {
            let path = inside(dir, layer, source)?;
            let (digest, size) = hash_file(&path)?;
            let media_type = MediaType::Other(sniff_layer(&path)?.into());
            let desc = Descriptor::new(media_type, size, digest);
            pins.add([desc.digest()]);
            store.copy_blob_from(&desc, &path)?;
            layers.push(desc);
        }
        let manifest = json!({
            "schemaVersion": 2,
            "mediaType": DOCKER_MANIFEST,
            "config": config_desc,
            "layers": layers,
        });
        let manifest_bytes = serde_json::to_vec(&manifest).expect("a manifest serialises");
        let manifest_desc =
            store.put_blob(&manifest_bytes, MediaType::Other(DOCKER_MANIFEST.into()))?;
        pins.add([manifest_desc.digest()]);
        unpack_layers(store, &manifest_desc)?;

        let tags = image.repo_tags.clone().unwrap_or_default();
        let names: Vec<Reference> = match (name, single) {
            (Some(name), true) => vec![name.clone()],
            _ if !tags.is_empty() => tags
                .iter()
                .map(|tag| tag.parse())
                .collect::<Result<_, _>>()?,
            (Some(name), false) => vec![name.clone()],
            (None, _) => {
                return Err(ArchiveError::NameRequired {
                    path: source.to_path_buf(),
                    ref_name: image.config.clone(),
                })
            }
        };
        for image_name in names {
            let record = ImageRecord {
                name: image_name.to_string(),
                target: manifest_desc.clone(),
                manifest: manifest_desc.clone(),
                created: now_unix(),
                labels: Default::default(),
            };
            store.put_image(&record)?;
            records.push(record);
        }
    }
    Ok(records)
}

/// Writes `images` as a `docker save` archive that `docker load` and
/// `skopeo copy docker-archive:` read: `<config hex>.json`,
/// `<diff_id hex>/layer.tar` (uncompressed) and `manifest.json` listing
/// each image with its repository tag (`name:tag`). The file is written
/// to `file.tmp` and renamed when complete.
pub fn export_docker_archive(
    store: &Store,
    images: &[(&ImageRecord, &str)],
    file: &Path,
) -> Result<(), ArchiveError> {
    super::check_output_dir(file)?;
    let tmp = file.with_extension("tmp");
    let result = write_docker_archive(store, images, &tmp);
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result?;
    fs::rename(&tmp, file).map_err(io_error("rename", &tmp))
}

fn write_docker_archive(
    store: &Store,
    images: &[(&ImageRecord, &str)],
    tmp: &Path,
) -> Result<(), ArchiveError> {
    let out = File::create(tmp).map_err(io_error("create", tmp))?;
    let mut tar = tar::Builder::new(out);
    let mut written: Vec<String> = Vec::new();
    let mut saved = Vec::new();
    let scratch = store.scratch_dir("export")?;
    for (image, repo_tag) in images {
        let manifest = store.image_manifest(image)?;
        let diff_ids = store.image_diff_ids(image)?;
        let config = manifest.config().digest();
        let config_name = format!("{}.json", config.digest());
        if !written.contains(&config_name) {
            tar.append_path_with_name(store.blob_path(config), &config_name)
                .map_err(io_error("write", tmp))?;
            written.push(config_name.clone());
        }
        let mut layer_names = Vec::new();
        for (layer, diff_id) in manifest.layers().iter().zip(&diff_ids) {
            let layer_name = format!("{}/layer.tar", diff_id.digest());
            if !written.contains(&layer_name) {
                let blob = store.blob_path(layer.digest());
                let compression = layer_compression(layer.media_type().as_ref(), layer.digest())?;
                if compression == Compression::None {
                    tar.append_path_with_name(&blob, &layer_name)
                        .map_err(io_error("write", tmp))?;
                } else {
                    let plain = scratch.path().join(diff_id.digest());
                    decompress(&blob, compression, &plain)?;
                    tar.append_path_with_name(&plain, &layer_name)
                        .map_err(io_error("write", tmp))?;
                    let _ = fs::remove_file(&plain);
                }
                written.push(layer_name.clone());
            }
            layer_names.push(layer_name);
        }
        saved.push(SavedImage {
            config: config_name,
            repo_tags: Some(vec![repo_tag.to_string()]),
            layers: layer_names,
        });
    }
    let manifest = serde_json::to_vec(&saved).expect("manifest.json serialises");
    append_bytes(&mut tar, MANIFEST_FILE, &manifest).map_err(io_error("write", tmp))?;
    let mut out = tar.into_inner().map_err(io_error("write", tmp))?;
    out.flush().map_err(io_error("write", tmp))?;
    out.sync_all().map_err(io_error("sync", tmp))
}

fn decompress(blob: &Path, compression: Compression, dest: &Path) -> Result<(), ArchiveError> {
    let file = File::open(blob).map_err(io_error("open", blob))?;
    let mut decoder = compression
        .decoder(BufReader::new(file))
        .map_err(io_error("decompress", blob))?;
    let mut out = File::create(dest).map_err(io_error("create", dest))?;
    std::io::copy(&mut decoder, &mut out).map_err(io_error("decompress", blob))?;
    Ok(())
}
