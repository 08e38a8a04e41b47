//! `hullctl bundle create` and `hullctl bundle rm`: runtime bundles whose
//! rootfs is an overlay that hull-imaged prepares from a stored image.
//!
//! A bundle directory holds `config.json`, the mounted `rootfs/` and
//! [`RECORD_FILE`], which names the container id that the daemon leased the
//! image's layers for, so that `bundle rm` can release them.

use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{anyhow, bail, Context};
use hull_images::snapshot;
use hull_images::store::validate_id;
use hull_proto::hull::images::v1 as pb;
use pb::images_client::ImagesClient;
use serde::{Deserialize, Serialize};
use tonic::transport::Channel;
use tonic::Code;

/// File in the bundle directory that marks it as made by `bundle create`.
pub const RECORD_FILE: &str = "hull-bundle.json";
/// Directory in the bundle where the rootfs is mounted; `root.path` of the
/// generated spec.
const ROOTFS_DIR: &str = "rootfs";

/// Contents of [`RECORD_FILE`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct BundleRecord {
    /// The container id whose rootfs hull-imaged prepared.
    container_id: String,
    /// The stored image name the rootfs was made from.
    image: String,
}

/// Options of `bundle create` from the command line.
#[derive(Debug, Default)]
pub struct CreateOptions {
    /// Container id; the base name of the bundle directory when unset.
    pub id: Option<String>,
    /// Replaces the image's entrypoint when given; a single empty string
    /// clears it.
    pub entrypoint: Option<Vec<String>>,
    /// `KEY=VALUE` pairs added to the image's environment.
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub terminal: bool,
    /// Replaces the image's `Cmd` when not empty.
    pub args: Vec<String>,
}

/// Prepares the rootfs of `image` for the bundle at `dir` and writes the
/// bundle. Anything done before a failure is undone.
pub async fn create(
    channel: Channel,
    image: &str,
    dir: &Path,
    options: CreateOptions,
) -> anyhow::Result<ExitCode> {
    let dir =
        std::path::absolute(dir).with_context(|| format!("invalid path {}", dir.display()))?;
    check_target(&dir)?;
    let id = container_id(&dir, options.id.as_deref())?;
    let mut client = ImagesClient::new(channel);

    let stored = inspect(&mut client, image).await?;
    let request = pb::PrepareRootfsRequest {
        container_id: id.clone(),
        image: image.to_string(),
        generate_spec: true,
        spec_options: Some(spec_options(options)),
        rootfs_path: ROOTFS_DIR.to_string(),
    };
    let prepared = client
        .prepare_rootfs(request)
        .await
        .map_err(|status| prepare_error(status, image, &id))?
        .into_inner();

    let record = BundleRecord {
        container_id: id.clone(),
        image: stored,
    };
    let mut undo = Undo::new(client.clone(), id.clone());
    match write_bundle(&dir, &prepared, &record, &mut undo) {
        Ok(()) => {
            undo.disarm();
            println!("{}", dir.display());
            Ok(ExitCode::SUCCESS)
        }
        Err(err) => {
            undo.run().await;
            Err(err)
        }
    }
}

/// Unmounts the rootfs of the bundle at `dir`, releases its rootfs in
/// hull-imaged and removes the directory.
pub async fn remove(channel: Channel, dir: &Path) -> anyhow::Result<ExitCode> {
    let record_path = dir.join(RECORD_FILE);
    let text = std::fs::read_to_string(&record_path).map_err(|err| {
        if err.kind() == std::io::ErrorKind::NotFound {
            anyhow!(
                "{} is not a bundle made by hullctl bundle create: {RECORD_FILE} is missing",
                dir.display()
            )
        } else {
            anyhow!("failed to read {}: {err}", record_path.display())
        }
    })?;
    let record: BundleRecord = serde_json::from_str(&text)
        .with_context(|| format!("invalid bundle record {}", record_path.display()))?;

    let rootfs = dir.join(ROOTFS_DIR);
    if is_mount_point(&rootfs)? {
        snapshot::unmount(&rootfs)?;
    }
    let mut client = ImagesClient::new(channel);
    let request = pb::ReleaseRootfsRequest {
        container_id: record.container_id.clone(),
    };
    match client.release_rootfs(request).await {
        Ok(_) => {}
        // A rootfs released before, for example by an earlier `bundle rm`
        // that failed later, leaves only the directory to remove.
        Err(status) if status.code() == Code::NotFound => {}
        Err(status) => bail!(
            "failed to release the rootfs of container {}: {}",
            record.container_id,
            status.message()
        ),
    }
    remove_bundle_dir(dir)?;
    Ok(ExitCode::SUCCESS)
}

/// Rejects a bundle directory that is already a bundle or that contains
/// files.
fn check_target(dir: &Path) -> anyhow::Result<()> {
    let record = dir.join(RECORD_FILE);
    if let Ok(text) = std::fs::read_to_string(&record) {
        let id = serde_json::from_str::<BundleRecord>(&text)
            .map(|record| record.container_id)
            .unwrap_or_default();
        bail!(
            "{} is already a bundle of container {id:?}: remove it with hullctl bundle rm {}",
            dir.display(),
            dir.display()
        );
    }
    match std::fs::read_dir(dir) {
        Ok(mut entries) => {
            if entries.next().is_some() {
                bail!(
                    "{} exists and is not empty: give a new or empty directory",
                    dir.display()
                );
            }
            Ok(())
        }
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => bail!("failed to read {}: {err}", dir.display()),
    }
}

/// Returns `id`, else the base name of `dir`, after checking that it is a
/// valid container id.
fn container_id(dir: &Path, id: Option<&str>) -> anyhow::Result<String> {
    let id = match id {
        Some(id) => id.to_string(),
        None => dir
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .ok_or_else(|| anyhow!("{} has no base name: pass --id", dir.display()))?,
    };
    validate_id(&id).map_err(|err| anyhow!("{err}: pass a valid --id"))?;
    Ok(id)
}

/// Returns the stored name of `image`, or an error that names `hullctl pull`
/// when the image is not stored.
async fn inspect(client: &mut ImagesClient<Channel>, image: &str) -> anyhow::Result<String> {
    let request = pb::InspectRequest {
        image: image.to_string(),
    };
    match client.inspect(request).await {
        Ok(response) => Ok(response
            .into_inner()
            .image
            .map(|stored| stored.name)
            .unwrap_or_else(|| image.to_string())),
        Err(status) if status.code() == Code::NotFound => {
            bail!("image {image:?} is not in the store: run hullctl pull {image} first")
        }
        Err(status) => Err(anyhow!("{}", status.message())),
    }
}

fn prepare_error(status: tonic::Status, image: &str, id: &str) -> anyhow::Error {
    match status.code() {
        Code::AlreadyExists => anyhow!(
            "container id {id:?} is in use because a rootfs is already prepared for it: \
             pass another --id or remove its bundle with hullctl bundle rm"
        ),
        _ => anyhow!(
            "failed to prepare the rootfs of {image} for container {id}: {}",
            status.message()
        ),
    }
}

fn spec_options(options: CreateOptions) -> pb::SpecOptions {
    let (override_entrypoint, entrypoint) = match options.entrypoint {
        Some(values) if values.len() == 1 && values[0].is_empty() => (true, Vec::new()),
        Some(values) => (true, values),
        None => (false, Vec::new()),
    };
    pb::SpecOptions {
        args: options.args,
        entrypoint,
        override_entrypoint,
        env: options.env,
        user: options.user.unwrap_or_default(),
        workdir: options.workdir.unwrap_or_default(),
        terminal: options.terminal,
        ..Default::default()
    }
}

/// Creates the bundle directory, mounts the rootfs and writes the files,
/// noting in `undo` what to take back.
fn write_bundle(
    dir: &Path,
    prepared: &pb::PrepareRootfsResponse,
    record: &BundleRecord,
    undo: &mut Undo,
) -> anyhow::Result<()> {
    if !dir.exists() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("failed to create {}", dir.display()))?;
        undo.created_dir = Some(dir.to_path_buf());
    }
    let rootfs = dir.join(ROOTFS_DIR);
    std::fs::create_dir(&rootfs)
        .with_context(|| format!("failed to create {}", rootfs.display()))?;
    undo.created_files.push(rootfs.clone());

    for mount in &prepared.mounts {
        mount_one(mount, &rootfs)?;
        undo.mounted.push(rootfs.join(&mount.target));
    }

    let config = dir.join("config.json");
    std::fs::write(&config, &prepared.spec_json)
        .with_context(|| format!("failed to write {}", config.display()))?;
    undo.created_files.push(config);

    let record_path = dir.join(RECORD_FILE);
    let json = serde_json::to_string_pretty(record)?;
    std::fs::write(&record_path, json)
        .with_context(|| format!("failed to write {}", record_path.display()))?;
    undo.created_files.push(record_path);
    Ok(())
}

/// Mounts one mount of a prepared rootfs below `rootfs`. hull-imaged
/// returns overlay mounts only.
pub(crate) fn mount_one(mount: &pb::Mount, rootfs: &Path) -> anyhow::Result<()> {
    if mount.r#type != "overlay" {
        bail!(
            "unsupported mount type {:?} from hull-imaged: expected overlay",
            mount.r#type
        );
    }
    let target = rootfs.join(mount.target.trim_start_matches('/'));
    let overlay = OverlayOptions::parse(&mount.options)?;
    snapshot::mount_rootfs(&overlay.lower, &overlay.upper, &overlay.work, &target)?;
    Ok(())
}

/// The directories named by the options of an overlay mount.
#[derive(Debug, PartialEq, Eq)]
struct OverlayOptions {
    /// Top layer first, as `lowerdir=` lists them.
    lower: Vec<PathBuf>,
    upper: PathBuf,
    work: PathBuf,
}

impl OverlayOptions {
    /// Parses `lowerdir=A:B`, `upperdir=U` and `workdir=W`. Overlayfs
    /// escapes `:` and `\` in these paths with a backslash.
    fn parse(options: &[String]) -> anyhow::Result<Self> {
        let mut lower = None;
        let mut upper = None;
        let mut work = None;
        for option in options {
            let (key, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
            match key {
                "lowerdir" => lower = Some(split_lower(value)),
                "upperdir" => upper = Some(PathBuf::from(unescape(value))),
                "workdir" => work = Some(PathBuf::from(unescape(value))),
                _ => bail!("unsupported overlay option {option:?} from hull-imaged"),
            }
        }
        let missing = |name: &str| anyhow!("the overlay mount from hull-imaged has no {name}");
        Ok(Self {
            lower: lower.ok_or_else(|| missing("lowerdir"))?,
            upper: upper.ok_or_else(|| missing("upperdir"))?,
            work: work.ok_or_else(|| missing("workdir"))?,
        })
    }
}

/// Splits a `lowerdir` list at unescaped `:` and removes the escapes.
fn split_lower(value: &str) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    let mut current = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                if let Some(escaped) = chars.next() {
                    current.push(escaped);
                }
            }
            ':' => dirs.push(PathBuf::from(std::mem::take(&mut current))),
            _ => current.push(c),
        }
    }
    dirs.push(PathBuf::from(current));
    dirs
}

fn unescape(value: &str) -> String {
    let mut out = String::new();
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(escaped) = chars.next() {
                out.push(escaped);
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// True when `path` is the root of a mount other than its parent's, which
/// an overlay always is because it has its own device number.
pub(crate) fn is_mount_point(path: &Path) -> anyhow::Result<bool> {
    let metadata = match std::fs::symlink_metadata(path) {
        Ok(metadata) => metadata,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(false),
        Err(err) => bail!("failed to stat {}: {err}", path.display()),
    };
    let parent = path.parent().unwrap_or(path);
    let parent_metadata = std::fs::metadata(parent)
        .with_context(|| format!("failed to stat {}", parent.display()))?;
    Ok(metadata.dev() != parent_metadata.dev())
}

/// Removes the bundle files and the directory. The rootfs directory is
/// removed with `remove_dir`, which fails rather than recurse into a rootfs
/// that is still mounted.
fn remove_bundle_dir(dir: &Path) -> anyhow::Result<()> {
    let rootfs = dir.join(ROOTFS_DIR);
    match std::fs::remove_dir(&rootfs) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => bail!(
            "failed to remove {}: {err} (check that it is not mounted)",
            rootfs.display()
        ),
    }
    std::fs::remove_dir_all(dir).with_context(|| format!("failed to remove {}", dir.display()))
}

/// Steps of a failed `bundle create` to take back, in reverse order: mounts,
/// files, the directory it created and the daemon's rootfs.
struct Undo {
    client: ImagesClient<Channel>,
    container_id: String,
    created_dir: Option<PathBuf>,
    created_files: Vec<PathBuf>,
    mounted: Vec<PathBuf>,
    armed: bool,
}

impl Undo {
    fn new(client: ImagesClient<Channel>, container_id: String) -> Self {
        Self {
            client,
            container_id,
            created_dir: None,
            created_files: Vec::new(),
            mounted: Vec::new(),
            armed: true,
        }
    }

    fn disarm(&mut self) {
        self.armed = false;
    }

    /// Undoes every step, printing the steps that fail because the error
    /// that caused the undo is what hullctl reports.
    async fn run(mut self) {
        if !self.armed {
            return;
        }
        for target in self.mounted.iter().rev() {
            if let Err(err) = snapshot::unmount(target) {
                eprintln!("hullctl: {err}");
            }
        }
        for path in self.created_files.iter().rev() {
            let removed = if path.is_dir() {
                std::fs::remove_dir(path)
            } else {
                std::fs::remove_file(path)
            };
            if let Err(err) = removed {
                eprintln!("hullctl: failed to remove {}: {err}", path.display());
            }
        }
        if let Some(dir) = &self.created_dir {
            if let Err(err) = std::fs::remove_dir(dir) {
                eprintln!("hullctl: failed to remove {}: {err}", dir.display());
            }
        }
        let request = pb::ReleaseRootfsRequest {
            container_id: self.container_id.clone(),
        };
        if let Err(status) = self.client.release_rootfs(request).await {
            eprintln!(
                "hullctl: failed to release the rootfs of container {}: {}",
                self.container_id,
                status.message()
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlay_options_parsed() {
        let options = vec![
            String::from("lowerdir=/s/2/fs:/s/a\\:b/fs:/s/c\\\\d"),
            String::from("upperdir=/r/x/upper"),
            String::from("workdir=/r/x/work"),
        ];
        let parsed = OverlayOptions::parse(&options).unwrap();
        assert_eq!(
            parsed.lower,
            vec![
                PathBuf::from("/s/2/fs"),
                PathBuf::from("/s/a:b/fs"),
                PathBuf::from("/s/c\\d"),
            ]
        );
        assert_eq!(parsed.upper, PathBuf::from("/r/x/upper"));
        assert_eq!(parsed.work, PathBuf::from("/r/x/work"));
    }

    #[test]
    fn overlay_options_need_upperdir() {
        let options = vec![String::from("lowerdir=/a"), String::from("workdir=/w")];
        let err = OverlayOptions::parse(&options).unwrap_err();
        assert!(err.to_string().contains("upperdir"), "{err}");
    }

    #[test]
    fn container_id_from_base_name() {
        let id = container_id(Path::new("/tmp/bundles/web-1"), None).unwrap();
        assert_eq!(id, "web-1");
        let given = container_id(Path::new("/tmp/x"), Some("other")).unwrap();
        assert_eq!(given, "other");
        let invalid = container_id(Path::new("/tmp/.hidden"), None).unwrap_err();
        assert!(
            invalid.to_string().contains("invalid container id"),
            "{invalid}"
        );
    }

    #[test]
    fn entrypoint_empty_clears() {
        let cleared = spec_options(CreateOptions {
            entrypoint: Some(vec![String::new()]),
            ..Default::default()
        });
        assert!(cleared.override_entrypoint);
        assert!(cleared.entrypoint.is_empty());
        let kept = spec_options(CreateOptions::default());
        assert!(!kept.override_entrypoint);
    }
}
