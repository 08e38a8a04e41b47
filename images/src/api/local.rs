//! Requests served from the store alone: list, inspect, tag, remove, gc,
//! check, and container root filesystems.

use std::path::{Path, PathBuf};

use hull_proto::hull::images::v1 as pb;
use tonic::Status;

use super::lookup::{self, ImageInfo};
use super::{convert, status};
use crate::bundle::{self, BundleOptions};
use crate::snapshot;
use crate::store::{ImageRecord, Store};
use crate::Reference;

/// Default rootfs path in generated specs, relative to the bundle.
const DEFAULT_ROOTFS_PATH: &str = "rootfs";

pub fn list(store: &Store, filter: &str) -> Result<Vec<pb::Image>, Status> {
    let infos = if filter.is_empty() {
        lookup::all(store)?
    } else {
        filtered(store, filter)?
    };
    Ok(infos.iter().map(convert::image).collect())
}

/// Images that `filter` names; a name without tag matches all its tags.
fn filtered(store: &Store, filter: &str) -> Result<Vec<ImageInfo>, Status> {
    let found = lookup::find(store, filter)?;
    if !found.is_empty() {
        return Ok(found);
    }
    let has_tag = filter
        .rsplit_once(':')
        .is_some_and(|(_, tail)| !tail.contains('/'));
    if has_tag || filter.contains('@') {
        return Ok(found);
    }
    let name = filter
        .parse::<Reference>()
        .map_err(status::from_reference)?
        .name();
    Ok(lookup::all(store)?
        .into_iter()
        .filter(|info| {
            info.record
                .name
                .parse::<Reference>()
                .is_ok_and(|stored| stored.name() == name)
        })
        .collect())
}

pub fn inspect(store: &Store, image: &str) -> Result<pb::InspectResponse, Status> {
    let info = lookup::find_one(store, image)?;
    let manifest = store
        .read_blob(info.record.manifest.digest())
        .map_err(status::from_store)?;
    let index = if info.record.target.digest() != info.record.manifest.digest() {
        store
            .read_blob(info.record.target.digest())
            .map_err(status::from_store)?
    } else {
        Vec::new()
    };
    let config = store.read_blob(&info.id).map_err(status::from_store)?;
    let diff_ids = info
        .config
        .rootfs()
        .diff_ids()
        .iter()
        .map(ToString::to_string)
        .collect();
    Ok(pb::InspectResponse {
        image: Some(convert::image(&info)),
        manifest,
        index,
        config,
        layers: info
            .manifest
            .layers()
            .iter()
            .map(convert::descriptor)
            .collect(),
        diff_ids,
    })
}

pub fn tag(store: &Store, source: &str, target: &str) -> Result<pb::Image, Status> {
    let info = lookup::find_one(store, source)?;
    let target: Reference = target.parse().map_err(status::from_reference)?;
    if target.digest().is_some() {
        return Err(Status::invalid_argument(format!(
            "invalid tag {target}: a tag cannot contain a digest"
        )));
    }
    let record = ImageRecord {
        name: target.to_string(),
        created: now_unix(),
        ..info.record.clone()
    };
    store.put_image(&record).map_err(status::from_store)?;
    tracing::info!(source = %info.record.name, target = %record.name, "tagged image");
    let tagged = ImageInfo { record, ..info };
    Ok(convert::image(&tagged))
}

/// Removes names of the image `text` names and returns them.
///
/// A reference removes that name only. An id, an id prefix or a reference
/// with digest removes every name of the image, which needs `force` when
/// there are several. With `force` an absent image is no error.
pub fn remove(store: &Store, text: &str, force: bool) -> Result<Vec<String>, Status> {
    let matches = lookup::find(store, text)?;
    if matches.is_empty() {
        return if force {
            Ok(Vec::new())
        } else {
            Err(status::image_not_found(text))
        };
    }
    let exact_name = text
        .parse::<Reference>()
        .ok()
        .map(|reference| reference.to_string())
        .filter(|name| matches.iter().any(|info| &info.record.name == name));
    let names: Vec<String> = match exact_name {
        Some(name) => vec![name],
        None => {
            let id = matches[0].id.clone();
            let names: Vec<String> = lookup::all(store)?
                .into_iter()
                .filter(|info| info.id == id)
                .map(|info| info.record.name)
                .collect();
            if names.len() > 1 && !force {
                return Err(Status::failed_precondition(format!(
                    "image {text} has several names ({}): remove them by name, or force the removal",
                    names.join(", ")
                )));
            }
            names
        }
    };
    for name in &names {
        store.remove_image(name).map_err(status::from_store)?;
        tracing::info!(image = %name, "removed image");
    }
    Ok(names)
}

pub fn garbage_collect(store: &Store) -> Result<pb::GarbageCollectResponse, Status> {
    let report = store.gc().map_err(status::from_store)?;
    tracing::info!(?report, "garbage collection finished");
    Ok(pb::GarbageCollectResponse {
        removed_blobs: report.blobs_removed,
        removed_snapshots: report.snapshots_removed,
        freed_bytes: report.bytes_freed,
    })
}

pub fn check(store: &Store) -> Result<pb::CheckResponse, Status> {
    let report = store.check().map_err(status::from_store)?;
    let mut problems = Vec::new();
    for blob in &report.corrupt_blobs {
        let expected = blob
            .expected
            .as_ref()
            .map_or_else(|| String::from("an invalid name"), ToString::to_string);
        problems.push(pb::CheckProblem {
            kind: String::from("bad blob"),
            subject: blob.path.display().to_string(),
            detail: format!("expected {expected}, content hashes to {}", blob.actual),
        });
    }
    for diff_id in &report.missing_snapshots {
        problems.push(pb::CheckProblem {
            kind: String::from("missing snapshot"),
            subject: diff_id.to_string(),
            detail: String::from("the snapshot directory of this layer is missing"),
        });
    }
    for image in &report.images {
        for digest in &image.missing_blobs {
            problems.push(pb::CheckProblem {
                kind: String::from("missing blob"),
                subject: image.image.clone(),
                detail: format!("blob {digest} is missing: pull the image again"),
            });
        }
        for diff_id in &image.missing_snapshots {
            problems.push(pb::CheckProblem {
                kind: String::from("missing snapshot"),
                subject: image.image.clone(),
                detail: format!("layer {diff_id} is not unpacked: pull the image again"),
            });
        }
    }
    if !problems.is_empty() {
        tracing::warn!(problems = problems.len(), "store check found problems");
    }
    Ok(pb::CheckResponse {
        checked_blobs: report.blobs_checked,
        problems,
    })
}

pub fn prepare_rootfs(
    store: &Store,
    request: pb::PrepareRootfsRequest,
) -> Result<pb::PrepareRootfsResponse, Status> {
    let info = lookup::find_one(store, &request.image)?;
    let options = request
        .generate_spec
        .then(|| bundle_options(request.spec_options.unwrap_or_default()));
    let prepared = store
        .prepare_rootfs(&request.container_id, &info.record)
        .map_err(status::from_store)?;
    let mounts = prepared
        .mounts
        .iter()
        .map(|mount| pb::Mount {
            r#type: mount.kind.clone(),
            source: mount.source.clone(),
            target: String::new(),
            options: mount.options.clone(),
        })
        .collect();

    let mut spec_json = String::new();
    if let Some(mut options) = options {
        let rootfs = if request.rootfs_path.is_empty() {
            DEFAULT_ROOTFS_PATH
        } else {
            request.rootfs_path.as_str()
        };
        options.root_path = Some(PathBuf::from(rootfs));
        let view = store
            .root()
            .join("tmp")
            .join(format!("spec-{}", request.container_id));
        match generate_spec(&info, &prepared.lower, &view, &options) {
            Ok(json) => spec_json = json,
            Err(err) => {
                // The caller gets no rootfs without its spec.
                if let Err(release) = store.release_rootfs(&request.container_id) {
                    tracing::warn!(container = %request.container_id, error = %release, "failed to release rootfs");
                }
                return Err(Status::invalid_argument(format!(
                    "failed to generate the runtime spec for image {}: {err}",
                    request.image
                )));
            }
        }
    }
    tracing::info!(container = %request.container_id, image = %info.record.name, "prepared rootfs");
    Ok(pb::PrepareRootfsResponse { mounts, spec_json })
}

pub fn release_rootfs(store: &Store, container_id: &str) -> Result<(), Status> {
    let released = store
        .release_rootfs(container_id)
        .map_err(status::from_store)?;
    if !released {
        return Err(Status::not_found(format!(
            "no rootfs prepared for container {container_id:?}"
        )));
    }
    tracing::info!(container = %container_id, "released rootfs");
    Ok(())
}

/// Generates the spec as JSON. The image's users are resolved in a
/// read-only view of its layers mounted at `view` for the time of the call.
fn generate_spec(
    info: &ImageInfo,
    lower_top_first: &[PathBuf],
    view: &Path,
    options: &BundleOptions,
) -> Result<String, String> {
    std::fs::create_dir_all(view)
        .map_err(|err| format!("failed to create {}: {err}", view.display()))?;
    let result = snapshot::mount_rootfs_readonly(lower_top_first, view)
        .map_err(|err| err.to_string())
        .and_then(|()| {
            let spec = bundle::generate(&info.config, view, options).map_err(|err| err.to_string());
            if let Err(err) = snapshot::unmount(view) {
                tracing::warn!(path = %view.display(), error = %err, "failed to unmount the image view");
            }
            spec
        })
        .and_then(|spec| serde_json::to_string_pretty(&spec).map_err(|err| err.to_string()));
    if let Err(err) = std::fs::remove_dir(view) {
        tracing::warn!(path = %view.display(), error = %err, "failed to remove the image view");
    }
    result
}

fn bundle_options(spec: pb::SpecOptions) -> BundleOptions {
    let entrypoint = if spec.override_entrypoint || !spec.entrypoint.is_empty() {
        Some(spec.entrypoint)
    } else {
        None
    };
    let non_empty = |text: String| (!text.is_empty()).then_some(text);
    BundleOptions {
        args_override: spec.args,
        entrypoint_override: entrypoint,
        env_extra: spec.env,
        user_override: non_empty(spec.user),
        workdir_override: non_empty(spec.workdir),
        hostname: non_empty(spec.hostname),
        terminal: spec.terminal,
        readonly_rootfs: spec.readonly_rootfs,
        cap_add: spec.cap_add,
        cap_drop: spec.cap_drop,
        ..BundleOptions::default()
    }
}

fn now_unix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}
