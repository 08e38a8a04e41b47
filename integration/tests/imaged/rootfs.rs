//! Root filesystems that `hullctl bundle create` mounts from images pulled
//! through hull-imaged, against `umoci unpack` of the same OCI layout.

use std::path::{Path, PathBuf};

use hull_integration::fixtures::{busybox_rootfs, debian_rootfs};
use hull_integration::layout::{self, TAR_ZSTD};
use hull_integration::registry::{layout_from_rootfs, umoci, Registry};
use hull_integration::tree::{assert_same_tree, Ignore};
use hull_integration::{require_root, require_tools};

use crate::bundles::BundleDir;
use crate::fixture::Imaged;

/// Returns what the comparison leaves out: `security.*` attributes,
/// because a host security module (SELinux, IMA) may add its own to files
/// that either tool writes. Times are compared, directories included,
/// because with an empty upper directory the overlay shows the times of
/// the layer directories.
pub fn ignored() -> Ignore {
    Ignore {
        xattr_prefixes: vec!["security.".into()],
        ..Ignore::default()
    }
}

/// Unpacks `layout:tag` with umoci into `dir/NAME` and returns the rootfs.
pub fn umoci_unpack(layout: &Path, tag: &str, dir: &Path, name: &str) -> PathBuf {
    let bundle = dir.join(name);
    let image = format!("{}:{tag}", layout.display());
    umoci(&["unpack", "--image", &image, &bundle.display().to_string()]);
    bundle.join("rootfs")
}

/// Pushes `layout:tag` to `registry` as `repository:tag` with the skopeo
/// arguments `extra`, pulls it with hullctl, makes a bundle of it and
/// checks its rootfs against `expected`.
fn check_pulled(
    imaged: &Imaged,
    registry: &Registry,
    layout: &Path,
    tag: &str,
    repository: &str,
    extra: &[&str],
    expected: &Path,
) {
    registry.push_layout(layout, tag, &format!("{repository}:{tag}"), extra);
    let reference = format!("{}/{repository}:{tag}", registry.host());
    imaged.hullctl_ok(&["pull", "-q", &reference]);
    let name = repository.replace('/', "-");
    let bundle = BundleDir::create(imaged, &name, &reference, &[]);
    assert_same_tree(&bundle.rootfs(), expected, &ignored());
    let removed = bundle.remove();
    assert!(removed.success(), "{removed}");
}

fn copy_dir(from: &Path, to: &Path) {
    let status = std::process::Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(status.success(), "cp -a {} failed", from.display());
}

#[test]
fn pulled_busybox_equals_umoci() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let registry = Registry::start();
    let work = imaged.dir.path();
    let layout = work.join("busybox-layout");
    layout_from_rootfs(busybox_rootfs(), &layout, "1", &["--config.cmd=sh"]);
    let expected = umoci_unpack(&layout, "1", work, "umoci-busybox");

    check_pulled(
        &imaged,
        &registry,
        &layout,
        "1",
        "gzip/busybox",
        &[],
        &expected,
    );
    let docker = ["--format", "v2s2"];
    check_pulled(
        &imaged,
        &registry,
        &layout,
        "1",
        "docker/busybox",
        &docker,
        &expected,
    );
    // skopeo 1.9 keeps gzip layers as they are whatever the requested
    // compression, so the layout's layers are rewritten as zstd first.
    let zstd_layout = work.join("busybox-zstd-layout");
    copy_dir(&layout, &zstd_layout);
    layout::recompress(&zstd_layout, TAR_ZSTD);
    let oci = ["--format", "oci"];
    check_pulled(
        &imaged,
        &registry,
        &zstd_layout,
        "1",
        "zstd/busybox",
        &oci,
        &expected,
    );

    // The registry contains the manifests that skopeo was asked to write.
    let zstd_manifest = imaged.hullctl_ok(&[
        "inspect",
        "--remote",
        &format!("{}/zstd/busybox:1", registry.host()),
    ]);
    assert!(zstd_manifest.stdout.contains("tar+zstd"), "{zstd_manifest}");
    let docker_manifest = imaged.hullctl_ok(&[
        "inspect",
        "--remote",
        &format!("{}/docker/busybox:1", registry.host()),
    ]);
    assert!(
        docker_manifest
            .stdout
            .contains("application/vnd.docker.distribution.manifest.v2+json"),
        "{docker_manifest}"
    );
}

#[test]
fn pulled_debian_equals_umoci() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let registry = Registry::start();
    let work = imaged.dir.path();
    let layout = work.join("debian-layout");
    layout_from_rootfs(debian_rootfs(), &layout, "bookworm", &["--config.cmd=bash"]);
    let expected = umoci_unpack(&layout, "bookworm", work, "umoci-debian");

    check_pulled(
        &imaged,
        &registry,
        &layout,
        "bookworm",
        "library/debian",
        &[],
        &expected,
    );
}
