//! Conversions between oci-spec types, store records and the protobuf
//! messages.

use hull_proto::hull::images::v1 as pb;
use oci_spec::image::{Arch, Descriptor, Os, Platform, PlatformBuilder};
use tonic::Status;

use super::lookup::ImageInfo;
use crate::pull::Action as ProgressAction;

pub fn action(action: &ProgressAction) -> pb::layer_progress::Action {
    use pb::layer_progress::Action;
    match action {
        ProgressAction::Resolving => Action::Resolving,
        ProgressAction::Downloading => Action::Downloading,
        ProgressAction::Unpacking => Action::Unpacking,
        ProgressAction::Done => Action::Done,
        ProgressAction::Exists => Action::Exists,
        ProgressAction::Uploading => Action::Uploading,
        ProgressAction::Mounted => Action::Mounted,
    }
}

pub fn platform(platform: &Platform) -> pb::Platform {
    pb::Platform {
        os: platform.os().to_string(),
        architecture: platform.architecture().to_string(),
        variant: platform.variant().clone().unwrap_or_default(),
        os_version: platform.os_version().clone().unwrap_or_default(),
        os_features: platform.os_features().clone().unwrap_or_default(),
    }
}

/// Converts a requested platform; `None` when the request names none.
pub fn platform_from(platform: Option<&pb::Platform>) -> Result<Option<Platform>, Status> {
    let Some(platform) = platform.filter(|p| !p.os.is_empty() || !p.architecture.is_empty()) else {
        return Ok(None);
    };
    if platform.os.is_empty() || platform.architecture.is_empty() {
        return Err(Status::invalid_argument(format!(
            "invalid platform {platform:?}: both os and architecture are required"
        )));
    }
    let mut builder = PlatformBuilder::default()
        .os(Os::from(platform.os.as_str()))
        .architecture(Arch::from(platform.architecture.as_str()));
    if !platform.variant.is_empty() {
        builder = builder.variant(platform.variant.clone());
    }
    builder
        .build()
        .map(Some)
        .map_err(|err| Status::invalid_argument(format!("invalid platform: {err}")))
}

pub fn descriptor(descriptor: &Descriptor) -> pb::Descriptor {
    pb::Descriptor {
        media_type: descriptor.media_type().to_string(),
        digest: descriptor.digest().to_string(),
        size: i64::try_from(descriptor.size()).unwrap_or(i64::MAX),
        annotations: descriptor
            .annotations()
            .clone()
            .unwrap_or_default()
            .into_iter()
            .collect(),
        platform: descriptor.platform().as_ref().map(platform),
        artifact_type: descriptor
            .artifact_type()
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
    }
}

pub fn timestamp(seconds: u64) -> prost_types::Timestamp {
    prost_types::Timestamp {
        seconds: i64::try_from(seconds).unwrap_or(i64::MAX),
        nanos: 0,
    }
}

/// Parses an RFC 3339 time such as the config's `created`.
pub fn parse_time(text: &str) -> Option<prost_types::Timestamp> {
    let time = chrono::DateTime::parse_from_rfc3339(text).ok()?;
    Some(prost_types::Timestamp {
        seconds: time.timestamp(),
        nanos: i32::try_from(time.timestamp_subsec_nanos()).unwrap_or(0),
    })
}

pub fn image(info: &ImageInfo) -> pb::Image {
    pb::Image {
        name: info.record.name.clone(),
        target: Some(descriptor(&info.record.target)),
        id: info.id.to_string(),
        created: Some(timestamp(info.record.created)),
        size: info.size,
        config_created: info.config.created().as_deref().and_then(parse_time),
    }
}
