//! Turns mount requests and an image's declared volumes into the OCI
//! runtime spec's mounts, creating and filling volumes on the way.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};

use anyhow::{anyhow, bail, Context};
use oci_spec::runtime::Mount;

use super::{normalise_target, MountKind, MountRequest, Volumes};

/// One mount of a container, ready for its runtime spec.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedMount {
    /// The spec's mount: volumes and binds have type `bind`, tmpfs mounts
    /// type `tmpfs`.
    pub mount: Mount,
    pub kind: MountKind,
    /// The name of the volume mounted, for the container's record.
    pub volume: Option<String>,
    /// True when the volume was created without a name for this container.
    pub anonymous: bool,
}

/// Docker's options for every tmpfs mount, applied before the request's.
const TMPFS_DEFAULTS: [&str; 3] = ["noexec", "nosuid", "nodev"];

impl Volumes {
    /// Resolves `requests` and the image's declared volumes
    /// (`image_volumes`, its config's `Volumes` keys) into spec mounts,
    /// parents before the mounts below them.
    ///
    /// A declared volume that no request covers gets a new anonymous
    /// volume. Named volumes that do not exist are created. A new or empty
    /// volume is filled once from the image content at its mount point in
    /// `rootfs` (the container's root filesystem, mounted on the host),
    /// unless the request has `nocopy`. A `-v` bind mount whose source is
    /// missing creates the source directory; a `--mount` one is an error.
    ///
    /// On an error, the anonymous volumes created so far are removed.
    pub fn resolve(
        &self,
        requests: &[MountRequest],
        image_volumes: &[String],
        rootfs: &Path,
    ) -> anyhow::Result<Vec<ResolvedMount>> {
        let requests = with_image_volumes(requests, image_volumes)?;
        let mut resolved = Vec::with_capacity(requests.len());
        let mut created_anonymous = Vec::new();
        for request in &requests {
            match self.resolve_one(request, rootfs, &mut created_anonymous) {
                Ok(mount) => resolved.push(mount),
                Err(err) => {
                    for name in &created_anonymous {
                        if let Err(cleanup) = self.remove(name, &|_| Vec::new(), true) {
                            eprintln!(
                                "hullctl: failed to remove anonymous volume {name}: {cleanup:#}"
                            );
                        }
                    }
                    return Err(err);
                }
            }
        }
        // The runtime mounts in order, so /a must come before /a/b.
        resolved.sort_by_key(|m: &ResolvedMount| m.mount.destination().components().count());
        Ok(resolved)
    }

    fn resolve_one(
        &self,
        request: &MountRequest,
        rootfs: &Path,
        created_anonymous: &mut Vec<String>,
    ) -> anyhow::Result<ResolvedMount> {
        match request.kind {
            MountKind::Bind => {
                let source = request
                    .source
                    .as_deref()
                    .ok_or_else(|| anyhow!("bind mount at {} has no source", request.target))?;
                ensure_bind_source(Path::new(source), request.create_source)?;
                let mut options = vec![String::from(if request.recursive {
                    "rbind"
                } else {
                    "bind"
                })];
                options.push(
                    request
                        .propagation
                        .clone()
                        .unwrap_or_else(|| String::from("rprivate")),
                );
                if request.readonly {
                    options.push(String::from("ro"));
                }
                Ok(ResolvedMount {
                    mount: spec_mount(&request.target, "bind", Path::new(source), options),
                    kind: MountKind::Bind,
                    volume: None,
                    anonymous: false,
                })
            }
            MountKind::Volume => {
                let record = self.create(request.source.as_deref(), request.labels.clone())?;
                if request.source.is_none() {
                    created_anonymous.push(record.name.clone());
                }
                if !request.nocopy {
                    self.initialise(&record.name, rootfs, &request.target)?;
                }
                let mut options = vec![String::from("rbind"), String::from("rprivate")];
                if request.readonly {
                    options.push(String::from("ro"));
                }
                Ok(ResolvedMount {
                    mount: spec_mount(&request.target, "bind", &record.mountpoint, options),
                    kind: MountKind::Volume,
                    volume: Some(record.name),
                    anonymous: record.anonymous,
                })
            }
            MountKind::Tmpfs => Ok(ResolvedMount {
                mount: spec_mount(
                    &request.target,
                    "tmpfs",
                    Path::new("tmpfs"),
                    tmpfs_options(request),
                ),
                kind: MountKind::Tmpfs,
                volume: None,
                anonymous: false,
            }),
        }
    }
}

/// Appends an anonymous volume request for each declared volume of the
/// image that no request mounts at, after checking that no two requests
/// share a target.
fn with_image_volumes(
    requests: &[MountRequest],
    image_volumes: &[String],
) -> anyhow::Result<Vec<MountRequest>> {
    let mut by_target: BTreeMap<&str, &MountRequest> = BTreeMap::new();
    for request in requests {
        if by_target.insert(&request.target, request).is_some() {
            bail!(
                "duplicate mount point {}: give one mount per destination",
                request.target
            );
        }
    }
    let mut all = requests.to_vec();
    for declared in image_volumes {
        let target = normalise_target(declared)
            .with_context(|| format!("invalid volume {declared:?} in the image config"))?;
        if !all.iter().any(|request| request.target == target) {
            all.push(MountRequest::new(MountKind::Volume, target));
        }
    }
    Ok(all)
}

/// Checks that a bind mount's source exists, or creates it as a directory
/// with mode 0755 when `create` is set.
fn ensure_bind_source(source: &Path, create: bool) -> anyhow::Result<()> {
    match fs::metadata(source) {
        Ok(_) => Ok(()),
        Err(err) if err.kind() == io::ErrorKind::NotFound && create => {
            fs::DirBuilder::new()
                .recursive(true)
                .mode(0o755)
                .create(source)
                .with_context(|| format!("failed to create bind source {}", source.display()))?;
            fs::set_permissions(source, fs::Permissions::from_mode(0o755))
                .with_context(|| format!("failed to set the mode of {}", source.display()))
        }
        Err(err) if err.kind() == io::ErrorKind::NotFound => bail!(
            "bind source path {} does not exist: create it first, or use -v, which creates it",
            source.display()
        ),
        Err(err) => {
            Err(err).with_context(|| format!("failed to check bind source {}", source.display()))
        }
    }
}

/// Returns the options of a tmpfs mount: the defaults, then size and mode,
/// then the request's own options, where a later option replaces an
/// earlier one of the same key (`size=`) or its opposite (`exec` after
/// `noexec`).
fn tmpfs_options(request: &MountRequest) -> Vec<String> {
    let mut requested: Vec<String> = TMPFS_DEFAULTS.iter().map(|s| s.to_string()).collect();
    if let Some(size) = request.tmpfs_size {
        requested.push(format!("size={size}"));
    }
    if let Some(mode) = request.tmpfs_mode {
        requested.push(format!("mode={mode:o}"));
    }
    requested.extend(request.tmpfs_options.iter().cloned());
    if request.readonly {
        requested.push(String::from("ro"));
    }

    let mut options: Vec<String> = Vec::new();
    for option in requested {
        let key = option_key(&option);
        options.retain(|earlier| option_key(earlier) != key);
        options.push(option);
    }
    options
}

/// Returns what an option sets, so that options setting the same thing
/// replace each other: the key of `key=value`, `rw` for `ro`, and the flag
/// without `no` for `noexec`, `nosuid`, `nodev` and the like.
fn option_key(option: &str) -> &str {
    if let Some((key, _)) = option.split_once('=') {
        return key;
    }
    match option {
        "ro" => "rw",
        "async" => "sync",
        _ => option.strip_prefix("no").unwrap_or(option),
    }
}

fn spec_mount(destination: &str, kind: &str, source: &Path, options: Vec<String>) -> Mount {
    let mut mount = Mount::default();
    mount
        .set_destination(PathBuf::from(destination))
        .set_typ(Some(kind.to_string()))
        .set_source(Some(source.to_path_buf()))
        .set_options(Some(options));
    mount
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::volume::parse_tmpfs_flag;

    #[test]
    fn tmpfs_options_merge() {
        let request = parse_tmpfs_flag("/run:exec,size=1m,uid=1000").unwrap();
        assert_eq!(
            tmpfs_options(&request),
            ["nosuid", "nodev", "exec", "size=1m", "uid=1000"]
        );

        let mut sized = MountRequest::new(MountKind::Tmpfs, String::from("/t"));
        sized.tmpfs_size = Some(65536);
        sized.tmpfs_mode = Some(0o1770);
        sized.readonly = true;
        assert_eq!(
            tmpfs_options(&sized),
            ["noexec", "nosuid", "nodev", "size=65536", "mode=1770", "ro"]
        );
    }

    #[test]
    fn duplicate_targets_rejected() {
        let a = MountRequest::new(MountKind::Volume, String::from("/data"));
        let error = with_image_volumes(&[a.clone(), a], &[]).unwrap_err();
        assert!(
            error.to_string().contains("duplicate mount point /data"),
            "{error}"
        );
    }

    #[test]
    fn image_volumes_fill_gaps() {
        let bind = MountRequest {
            source: Some(String::from("/srv")),
            ..MountRequest::new(MountKind::Bind, String::from("/data"))
        };
        let declared = [
            String::from("/data/"),
            String::from("/logs"),
            String::from("/logs"),
        ];
        let all = with_image_volumes(&[bind], &declared).unwrap();
        let targets: Vec<&str> = all.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["/data", "/logs"]);
        assert_eq!(all[1].kind, MountKind::Volume);
        assert_eq!(all[1].source, None);

        let error = with_image_volumes(&[], &[String::from("relative")]).unwrap_err();
        assert!(format!("{error:#}").contains("\"relative\""), "{error:#}");
    }
}
