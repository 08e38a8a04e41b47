//! Three layers with whiteouts and an opaque directory, merged by overlayfs.

use std::fs;
use std::path::{Path, PathBuf};

use hull_images::unpack::{unpack_layer, Compression};
use hull_integration::require_root;
use tar::{EntryType, Header};

use crate::Scratch;

fn layer(entries: &[(&str, Option<&[u8]>)]) -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    for (name, data) in entries {
        let mut header = Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_600_000_000);
        match data {
            Some(data) => {
                header.set_entry_type(EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, name, *data).unwrap();
            }
            None => {
                header.set_entry_type(EntryType::Directory);
                header.set_mode(0o755);
                header.set_size(0);
                builder.append_data(&mut header, name, &[][..]).unwrap();
            }
        }
    }
    builder.into_inner().unwrap()
}

/// Unpacks the three layers and returns their directories, top first.
fn unpack_three(scratch: &Scratch) -> Vec<PathBuf> {
    let layers = [
        layer(&[
            ("etc", None),
            ("etc/a", Some(b"a from layer 1")),
            ("etc/b", Some(b"b from layer 1")),
            ("etc/kept", Some(b"kept")),
            ("opq", None),
            ("opq/x", Some(b"x")),
            ("opq/sub/y", Some(b"y")),
        ]),
        layer(&[
            ("etc/.wh.a", Some(b"")),
            ("etc/.wh.b", Some(b"")),
            ("etc/c", Some(b"c from layer 2")),
        ]),
        layer(&[
            ("etc/a", Some(b"a re-added in layer 3")),
            ("opq", None),
            ("opq/.wh..wh..opq", Some(b"")),
            ("opq/z", Some(b"z")),
        ]),
    ];
    let mut dirs = Vec::new();
    for (i, tar) in layers.iter().enumerate() {
        let dir = scratch.mkdir(&format!("layers/{}/fs", i + 1));
        unpack_layer(&tar[..], Compression::None, &dir).unwrap_or_else(|e| panic!("{e}"));
        dirs.push(dir);
    }
    dirs.reverse();
    dirs
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

fn check_merged_view(root: &Path) {
    assert_eq!(names(&root.join("etc")), ["a", "c", "kept"]);
    assert_eq!(
        fs::read(root.join("etc/a")).unwrap(),
        b"a re-added in layer 3"
    );
    assert!(!root.join("etc/b").exists(), "etc/b was deleted in layer 2");
    assert_eq!(fs::read(root.join("etc/c")).unwrap(), b"c from layer 2");
    assert_eq!(names(&root.join("opq")), ["z"], "opq is opaque in layer 3");
}

#[test]
fn merged_whiteouts_writable_overlay() {
    require_root!();
    let mut scratch = Scratch::new("unpack-merged");
    let lowers = unpack_three(&scratch);
    let root = scratch.mount_writable(&lowers, "rootfs");
    check_merged_view(&root);

    // Writes land in the upper directory, never in a layer.
    fs::write(root.join("etc/new"), b"new").unwrap();
    fs::remove_file(root.join("etc/kept")).unwrap();
    assert_eq!(
        fs::read(scratch.path().join("rootfs/upper/etc/new")).unwrap(),
        b"new"
    );
    assert!(lowers[2].join("etc/kept").exists());
    assert!(!root.join("etc/kept").exists());
}

#[test]
fn merged_whiteouts_readonly_overlay() {
    require_root!();
    let mut scratch = Scratch::new("unpack-merged-ro");
    let lowers = unpack_three(&scratch);
    let root = scratch.mount_readonly(&lowers, "rootfs");
    check_merged_view(&root);
    let err = fs::write(root.join("etc/new"), b"new").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
}

#[test]
fn merged_single_layer_bind() {
    require_root!();
    let mut scratch = Scratch::new("unpack-bind");
    let lowers = unpack_three(&scratch);
    let bottom = vec![lowers[2].clone()];
    let root = scratch.mount_readonly(&bottom, "rootfs");
    assert_eq!(names(&root.join("etc")), ["a", "b", "kept"]);
    let err = fs::write(root.join("etc/new"), b"new").unwrap_err();
    assert_eq!(err.raw_os_error(), Some(libc::EROFS), "{err}");
}
