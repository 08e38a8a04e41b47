//! Whiteout entries become overlayfs whiteouts.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};

use super::{Layer, Sandbox};

#[test]
fn unpack_whiteout_becomes_char_device() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .file("etc/gone", b"earlier in this layer")
        .file("etc/.wh.gone", b"")
        .file(".wh.lower-only", b"")
        .dir("tree")
        .file("tree/x", b"")
        .file(".wh.tree", b"")
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    for name in ["etc/gone", "lower-only", "tree"] {
        let meta = fs::symlink_metadata(dest.join(name)).unwrap();
        assert!(meta.file_type().is_char_device(), "{name}");
        assert_eq!(meta.rdev(), 0, "{name}");
    }
    assert!(!dest.join("etc/.wh.gone").exists());
    assert!(!dest.join(".wh.lower-only").exists());
}

#[test]
fn unpack_readded_after_whiteout() {
    let sandbox = Sandbox::new();
    let tar = Layer::new().file(".wh.f", b"").file("f", b"back").finish();
    sandbox.unpack(&tar).unwrap();
    assert_eq!(fs::read(sandbox.dest().join("f")).unwrap(), b"back");
}

#[test]
fn unpack_opaque_marker_sets_xattr() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .dir("opaque")
        .file("opaque/.wh..wh..opq", b"")
        .file("opaque/new", b"n")
        .file("implicit/.wh..wh..opq", b"")
        .file("plain/.wh..wh.plnk", b"")
        .finish();
    sandbox.unpack(&tar).unwrap();
    let dest = sandbox.dest();
    for dir in ["opaque", "implicit"] {
        let mut value = [0u8; 8];
        let n = rustix::fs::lgetxattr(dest.join(dir), "trusted.overlay.opaque", &mut value)
            .unwrap_or_else(|e| panic!("{dir}: {e}"));
        assert_eq!(&value[..n], b"y", "{dir}");
        assert!(!dest.join(dir).join(".wh..wh..opq").exists(), "{dir}");
    }
    assert_eq!(fs::read(dest.join("opaque/new")).unwrap(), b"n");
    assert!(
        !dest.join("plain").exists(),
        "ignored entries create nothing"
    );
}
