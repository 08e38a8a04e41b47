//! Three layers with whiteouts and an opaque directory, pushed to a
//! registry and pulled by hull-imaged, give the merged view in the rootfs
//! that `hullctl bundle create` mounts.
//!
//! umoci 0.4.7 writes the first two layers from `umoci unpack`, a change
//! and `umoci repack`, which records deleted entries as `.wh.NAME` files.
//! It records a replaced directory as one whiteout per old entry, never as
//! an opaque marker, so the third layer is a tar made here with
//! `.wh..wh..opq` and added by `umoci raw add-layer`.

use std::fs;
use std::path::Path;

use hull_integration::layout;
use hull_integration::registry::{umoci, Registry};
use hull_integration::tree::assert_same_tree;
use hull_integration::{require_root, require_tools};
use tar::{EntryType, Header};

use crate::bundles::BundleDir;
use crate::fixture::Imaged;
use crate::rootfs::{ignored, umoci_unpack};

const TAG: &str = "layers";

/// Runs one `umoci unpack`, `change`, `umoci repack` round on `layout`.
fn umoci_round(layout: &Path, work: &Path, name: &str, change: impl FnOnce(&Path)) {
    let image = format!("{}:{TAG}", layout.display());
    let bundle = work.join(name);
    umoci(&["unpack", "--image", &image, &bundle.display().to_string()]);
    change(&bundle.join("rootfs"));
    umoci(&["repack", "--image", &image, &bundle.display().to_string()]);
    fs::remove_dir_all(&bundle).unwrap();
}

/// Returns a tar whose `opq` directory is opaque and holds only `z`, and
/// that puts `etc/a` back. It lists `etc/` itself, as image builders do:
/// overlayfs would show the time and mode of a parent that hull creates
/// for a missing entry instead of those of the lower layer's directory.
fn opaque_layer() -> Vec<u8> {
    let mut builder = tar::Builder::new(Vec::new());
    let entries: [(&str, Option<&[u8]>); 5] = [
        ("etc/", None),
        ("opq/", None),
        ("opq/.wh..wh..opq", Some(b"")),
        ("opq/z", Some(b"z from layer 3\n")),
        ("etc/a", Some(b"a from layer 3\n")),
    ];
    for (name, data) in entries {
        let mut header = Header::new_gnu();
        header.set_uid(0);
        header.set_gid(0);
        header.set_mtime(1_700_000_000);
        match data {
            Some(data) => {
                header.set_entry_type(EntryType::Regular);
                header.set_mode(0o644);
                header.set_size(data.len() as u64);
                builder.append_data(&mut header, name, data).unwrap();
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

/// Builds the three-layer image in `layout`.
fn build_layers(layout: &Path, work: &Path) {
    umoci(&["init", "--layout", &layout.display().to_string()]);
    umoci(&["new", "--image", &format!("{}:{TAG}", layout.display())]);
    umoci_round(layout, work, "round1", |rootfs| {
        for dir in ["etc", "opq/sub", "gone/deep"] {
            fs::create_dir_all(rootfs.join(dir)).unwrap();
        }
        fs::write(rootfs.join("etc/a"), "a from layer 1\n").unwrap();
        fs::write(rootfs.join("etc/b"), "b from layer 1\n").unwrap();
        fs::write(rootfs.join("etc/kept"), "kept\n").unwrap();
        fs::write(rootfs.join("opq/x"), "x\n").unwrap();
        fs::write(rootfs.join("opq/sub/y"), "y\n").unwrap();
        fs::write(rootfs.join("gone/deep/f"), "f\n").unwrap();
    });
    umoci_round(layout, work, "round2", |rootfs| {
        fs::remove_file(rootfs.join("etc/a")).unwrap();
        fs::remove_dir_all(rootfs.join("gone")).unwrap();
        fs::write(rootfs.join("etc/c"), "c from layer 2\n").unwrap();
    });
    let tar_path = work.join("layer3.tar");
    fs::write(&tar_path, opaque_layer()).unwrap();
    umoci(&[
        "raw",
        "add-layer",
        "--image",
        &format!("{}:{TAG}", layout.display()),
        &tar_path.display().to_string(),
    ]);
}

/// Returns the entry names of each layer of the image, bottom first.
fn layer_entries(layout: &Path) -> Vec<Vec<String>> {
    layout::layers(layout)
        .iter()
        .map(|layer| {
            let tar = layout::uncompressed(layer);
            let mut archive = tar::Archive::new(&tar[..]);
            archive
                .entries()
                .unwrap()
                .map(|entry| {
                    let entry = entry.unwrap();
                    let path = entry.path().unwrap().to_string_lossy().into_owned();
                    path.trim_start_matches("./").to_string()
                })
                .collect()
        })
        .collect()
}

fn names(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = fs::read_dir(dir)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// Fails on any name that starts with `.wh.` below `dir`.
fn assert_no_whiteout_names(dir: &Path) {
    for entry in fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let name = entry.file_name().to_string_lossy().into_owned();
        assert!(
            !name.starts_with(".wh."),
            "whiteout visible at {}",
            entry.path().display()
        );
        if entry.file_type().unwrap().is_dir() {
            assert_no_whiteout_names(&entry.path());
        }
    }
}

#[test]
fn whiteouts_and_opaque_merged() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let imaged = Imaged::new();
    let registry = Registry::start();
    let work = imaged.dir.path();
    let layout = work.join("layers-layout");
    build_layers(&layout, work);

    let layers = layer_entries(&layout);
    assert_eq!(layers.len(), 3, "{layers:?}");
    assert!(layers[1].contains(&"etc/.wh.a".to_string()), "{layers:?}");
    assert!(layers[1].contains(&".wh.gone".to_string()), "{layers:?}");
    assert!(
        layers[2].contains(&"opq/.wh..wh..opq".to_string()),
        "{layers:?}"
    );

    registry.push_layout(&layout, TAG, &format!("test/layers:{TAG}"), &[]);
    let reference = format!("{}/test/layers:{TAG}", registry.host());
    imaged.hullctl_ok(&["pull", "-q", &reference]);
    let bundle = BundleDir::create(&imaged, "layers", &reference, &["--entrypoint", "/z"]);
    let rootfs = bundle.rootfs();

    assert_eq!(names(&rootfs.join("etc")), ["a", "b", "c", "kept"]);
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/a")).unwrap(),
        "a from layer 3\n"
    );
    assert_eq!(
        fs::read_to_string(rootfs.join("etc/c")).unwrap(),
        "c from layer 2\n"
    );
    assert!(
        !rootfs.join("gone").exists(),
        "the whiteout of gone was ignored"
    );
    assert_eq!(names(&rootfs.join("opq")), ["z"]);
    assert_no_whiteout_names(&rootfs);

    let expected = umoci_unpack(&layout, TAG, work, "umoci-layers");
    assert_same_tree(&rootfs, &expected, &ignored());
    let removed = bundle.remove();
    assert!(removed.success(), "{removed}");
}
