//! Import and export of OCI layouts, OCI archives and docker archives on
//! the daemon's filesystem.

use std::path::{Path, PathBuf};

use hull_proto::hull::images::v1 as pb;
use tonic::Status;

use super::lookup::{self, ImageInfo};
use super::{convert, status, Daemon};
use crate::archive::{self, ArchiveError, Format};
use crate::Reference;

fn from_archive(err: ArchiveError) -> Status {
    match err {
        ArchiveError::Reference(err) => status::from_reference(err),
        ArchiveError::Store(err) => status::from_store(err),
        ArchiveError::Pull(err) => status::from_pull(err),
        ArchiveError::Io { ref source, .. } if source.kind() == std::io::ErrorKind::NotFound => {
            Status::not_found(err.to_string())
        }
        ArchiveError::Invalid { .. }
        | ArchiveError::NameRequired { .. }
        | ArchiveError::Empty { .. } => Status::invalid_argument(err.to_string()),
        ArchiveError::Io { .. } => Status::internal(err.to_string()),
    }
}

fn format_of(format: i32) -> Result<Option<Format>, Status> {
    match pb::ArchiveFormat::try_from(format) {
        Ok(pb::ArchiveFormat::Unspecified) => Ok(None),
        Ok(pb::ArchiveFormat::OciLayout) => Ok(Some(Format::OciLayout)),
        Ok(pb::ArchiveFormat::OciArchive) => Ok(Some(Format::OciArchive)),
        Ok(pb::ArchiveFormat::DockerArchive) => Ok(Some(Format::DockerArchive)),
        Err(_) => Err(Status::invalid_argument(format!(
            "unknown archive format {format}"
        ))),
    }
}

fn absolute_path(path: &str) -> Result<PathBuf, Status> {
    let path = PathBuf::from(path);
    if !path.is_absolute() {
        return Err(Status::invalid_argument(format!(
            "invalid path {}: the daemon needs an absolute path",
            path.display()
        )));
    }
    Ok(path)
}

pub async fn import(daemon: &Daemon, request: pb::ImportRequest) -> Result<Vec<pb::Image>, Status> {
    let path = absolute_path(&request.path)?;
    let expected = format_of(request.format)?;
    let name = if request.name.is_empty() {
        None
    } else {
        Some(
            request
                .name
                .parse::<Reference>()
                .map_err(status::from_reference)?,
        )
    };
    daemon
        .blocking(move |store| {
            if let Some(expected) = expected {
                let found = archive::detect(&path).map_err(from_archive)?;
                if found != expected {
                    return Err(Status::invalid_argument(format!(
                        "{} is a {found:?}, not a {expected:?}",
                        path.display()
                    )));
                }
            }
            let records = archive::import(store, &path, name.as_ref()).map_err(from_archive)?;
            let mut images = Vec::with_capacity(records.len());
            for record in records {
                images.push(convert::image(&lookup::describe(store, record)?));
            }
            Ok(images)
        })
        .await
}

pub async fn export(daemon: &Daemon, request: pb::ExportRequest) -> Result<u64, Status> {
    let path = absolute_path(&request.path)?;
    let format = format_of(request.format)?.unwrap_or(Format::OciArchive);
    if request.images.is_empty() {
        return Err(Status::invalid_argument("no images to export"));
    }
    daemon
        .blocking(move |store| {
            let infos: Vec<ImageInfo> = request
                .images
                .iter()
                .map(|image| lookup::find_one(store, image))
                .collect::<Result<_, _>>()?;
            let named: Vec<(&crate::store::ImageRecord, &str)> = infos
                .iter()
                .map(|info| (&info.record, info.record.name.as_str()))
                .collect();
            let result = match format {
                Format::OciLayout => archive::export_oci_layout(store, &named, &path),
                Format::OciArchive => archive::export_oci_archive(store, &named, &path),
                Format::DockerArchive => archive::export_docker_archive(store, &named, &path),
            };
            result.map_err(from_archive)?;
            tracing::info!(path = %path.display(), ?format, images = named.len(), "exported images");
            Ok(size_of(&path))
        })
        .await
}

/// Bytes of the file at `path`, or of the files below it.
fn size_of(path: &Path) -> u64 {
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return 0;
    };
    if !meta.is_dir() {
        return meta.len();
    }
    std::fs::read_dir(path)
        .map(|entries| entries.flatten().map(|entry| size_of(&entry.path())).sum())
        .unwrap_or(0)
}
