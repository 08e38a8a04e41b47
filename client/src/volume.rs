//! Placeholder of the volume module; replaced by the real module.
#![allow(dead_code, unused_variables)]

use std::path::Path;

pub struct MountRequest {}

pub struct ResolvedMount {
    pub mount: serde_json::Value,
    pub volume: Option<String>,
    pub anonymous: bool,
}

pub struct Volumes {}

impl Volumes {
    pub fn new(paths: &crate::paths::Paths) -> Volumes {
        Volumes {}
    }
    pub fn remove(
        &self,
        name: &str,
        in_use: &dyn Fn(&str) -> Vec<String>,
        force: bool,
    ) -> anyhow::Result<()> {
        Ok(())
    }
    pub fn resolve(
        &self,
        requests: &[MountRequest],
        image_volumes: &[String],
        rootfs: &Path,
    ) -> anyhow::Result<Vec<ResolvedMount>> {
        Ok(Vec::new())
    }
}

pub fn parse_volume_flag(value: &str) -> anyhow::Result<MountRequest> {
    anyhow::bail!("volumes are not built")
}

pub fn parse_mount_flag(value: &str) -> anyhow::Result<MountRequest> {
    anyhow::bail!("volumes are not built")
}
