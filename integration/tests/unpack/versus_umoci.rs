//! The fixture root filesystems, packed by umoci into OCI layouts, unpacked
//! layer by layer by hull and mounted as an overlay, against `umoci unpack`
//! of the same image.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use hull_images::unpack::{unpack_layer, Compression};
use hull_integration::fixtures::{busybox_rootfs, debian_rootfs};
use hull_integration::layout::{self, TAR, TAR_ZSTD};
use hull_integration::registry::{layout_from_rootfs, umoci};
use hull_integration::tree::{assert_same_tree, Ignore};
use hull_integration::{require_root, require_tools};

use crate::Scratch;

/// Returns what the comparison with umoci leaves out: `security.*`
/// attributes, because a host security module (SELinux, IMA) may add its
/// own to files that either tool writes. Hull's `security.capability` is
/// checked by the unit tests in `hull_images::unpack`. Times are compared,
/// directories included: with an empty upper directory the overlay shows
/// the times of the layer directories.
fn ignored() -> Ignore {
    Ignore {
        xattr_prefixes: vec!["security.".into()],
        ..Ignore::default()
    }
}

/// Unpacks every layer of `layout` into `NAME/N/fs`, checks each diff_id
/// against the image config, and returns the directories top first and the
/// time spent in `unpack_layer`.
fn unpack_layout(scratch: &Scratch, layout: &Path, name: &str) -> (Vec<PathBuf>, Duration) {
    let mut dirs = Vec::new();
    let mut spent = Duration::ZERO;
    for (i, layer) in layout::layers(layout).iter().enumerate() {
        let compression = Compression::from_media_type(&layer.media_type).unwrap();
        let dir = scratch.mkdir(&format!("{name}/{i}/fs"));
        let blob = std::fs::File::open(&layer.blob).unwrap();
        let start = Instant::now();
        let stats = unpack_layer(blob, compression, &dir).unwrap_or_else(|e| panic!("{e}"));
        spent += start.elapsed();
        assert_eq!(
            stats.diff_id.to_string(),
            layer.diff_id,
            "diff_id of {} layer {i}",
            layer.media_type
        );
        dirs.push(dir);
    }
    dirs.reverse();
    (dirs, spent)
}

/// Packs `rootfs` with umoci, unpacks it with umoci and with hull (gzip,
/// then zstd and plain tar layers), and compares the trees.
fn compare_with_umoci(rootfs: &Path, name: &str) {
    let mut scratch = Scratch::new(&format!("unpack-{name}"));
    let layout_dir = scratch.path().join("layout");
    layout_from_rootfs(rootfs, &layout_dir, "latest", &[]);

    let bundle = scratch.path().join("umoci");
    let image = format!("{}:latest", layout_dir.display());
    let start = Instant::now();
    umoci(&["unpack", "--image", &image, &bundle.display().to_string()]);
    let umoci_time = start.elapsed();
    let expected = bundle.join("rootfs");

    let (lowers, hull_time) = unpack_layout(&scratch, &layout_dir, "gzip");
    let build = if cfg!(debug_assertions) {
        "debug"
    } else {
        "optimized"
    };
    eprintln!(
        "{name}: hull unpack_layer {hull_time:?} ({build} build), umoci unpack {umoci_time:?}, one run each"
    );
    let merged = scratch.mount_writable(&lowers, "gzip-rootfs");
    assert_same_tree(&merged, &expected, &ignored());

    for (media_type, label) in [(TAR_ZSTD, "zstd"), (TAR, "tar")] {
        layout::recompress(&layout_dir, media_type);
        let (lowers, _) = unpack_layout(&scratch, &layout_dir, label);
        let merged = scratch.mount_writable(&lowers, &format!("{label}-rootfs"));
        assert_same_tree(&merged, &expected, &ignored());
    }
}

#[test]
fn versus_umoci_busybox() {
    require_root!();
    require_tools!("umoci");
    compare_with_umoci(busybox_rootfs(), "busybox");
}

#[test]
fn versus_umoci_debian() {
    require_root!();
    require_tools!("umoci");
    compare_with_umoci(debian_rootfs(), "debian");
}
