//! Entries that would write outside the destination reject the layer.

use std::fs;

use super::{Layer, Sandbox};

#[test]
fn unpack_rejects_dotdot_name() {
    let sandbox = Sandbox::new();
    let tar = Layer::new().file("../outside/escape", b"x").finish();
    sandbox.expect_rejected(&tar, "../outside/escape", "climbs out of the layer root");
}

#[test]
fn unpack_rejects_dotdot_inside_name() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .dir("a")
        .file("a/../../outside/escape", b"x")
        .finish();
    sandbox.expect_rejected(
        &tar,
        "a/../../outside/escape",
        "climbs out of the layer root",
    );
}

#[test]
fn unpack_rejects_absolute_name() {
    let sandbox = Sandbox::new();
    let name = format!("{}/escape", sandbox.outside().display());
    let tar = Layer::new().file(&name, b"x").finish();
    sandbox.expect_rejected(&tar, &name, "is an absolute path");
}

#[test]
fn unpack_rejects_symlink_parent_outside() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside().display().to_string();
    let tar = Layer::new()
        .symlink("link", &outside)
        .file("link/escape", b"x")
        .finish();
    sandbox.expect_rejected(
        &tar,
        "link/escape",
        "parent component that is a symbolic link",
    );
}

#[test]
fn unpack_rejects_relative_symlink_parent() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .symlink("up", "../outside")
        .file("up/escape", b"x")
        .finish();
    sandbox.expect_rejected(
        &tar,
        "up/escape",
        "parent component that is a symbolic link",
    );
}

#[test]
fn unpack_rejects_symlink_parent_inside() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .dir("real")
        .symlink("alias", "real")
        .file("alias/file", b"x")
        .finish();
    sandbox.expect_rejected(
        &tar,
        "alias/file",
        "parent component that is a symbolic link",
    );
    assert!(!sandbox.dest().join("real/file").exists());
}

#[test]
fn unpack_rejects_hard_link_dotdot() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .hard_link("stolen", "../outside/secret")
        .finish();
    sandbox.expect_rejected(&tar, "stolen", "climbs out of the layer root");
}

#[test]
fn unpack_rejects_hard_link_absolute() {
    let sandbox = Sandbox::new();
    let target = format!("{}/secret", sandbox.outside().display());
    let tar = Layer::new().hard_link("stolen", &target).finish();
    sandbox.expect_rejected(&tar, "stolen", "is an absolute path");
}

#[test]
fn unpack_rejects_hard_link_absent() {
    let sandbox = Sandbox::new();
    let tar = Layer::new().hard_link("dangling", "nothing").finish();
    sandbox.expect_rejected(&tar, "dangling", "not an earlier entry of this layer");
    let tar_in_dir = Layer::new().hard_link("dangling", "no/such/file").finish();
    let other = Sandbox::new();
    other.expect_rejected(
        &tar_in_dir,
        "dangling",
        "not an earlier entry of this layer",
    );
}

#[test]
fn unpack_rejects_hard_link_through_symlink() {
    let sandbox = Sandbox::new();
    let outside = sandbox.outside().display().to_string();
    let tar = Layer::new()
        .symlink("link", &outside)
        .hard_link("stolen", "link/secret")
        .finish();
    sandbox.expect_rejected(&tar, "stolen", "parent component that is a symbolic link");
}

#[test]
fn unpack_rejects_whiteout_dotdot() {
    for name in [".wh..", "sub/.wh..", ".wh..."] {
        let sandbox = Sandbox::new();
        let tar = Layer::new().dir("sub").file(name, b"").finish();
        sandbox.expect_rejected(&tar, name, "is a whiteout of");
    }
}

#[test]
fn unpack_replaces_final_symlink() {
    // A regular file over a symbolic link replaces the link and does not
    // write through it.
    let sandbox = Sandbox::new();
    let secret = format!("{}/secret", sandbox.outside().display());
    let tar = Layer::new()
        .symlink("s", &secret)
        .file("s", b"new")
        .finish();
    let before = sandbox.around_dest();
    sandbox.unpack(&tar).unwrap();
    assert_eq!(sandbox.around_dest(), before);
    assert_eq!(fs::read(sandbox.dest().join("s")).unwrap(), b"new");
    assert!(!fs::symlink_metadata(sandbox.dest().join("s"))
        .unwrap()
        .file_type()
        .is_symlink());
}

#[test]
fn unpack_requires_empty_dest() {
    let sandbox = Sandbox::new();
    fs::write(sandbox.dest().join("old"), b"").unwrap();
    let tar = Layer::new().file("a", b"x").finish();
    let err = sandbox.unpack(&tar).unwrap_err();
    assert!(err.to_string().contains("is not empty"), "{err}");
}

#[test]
fn unpack_accepts_dot_slash_names() {
    let sandbox = Sandbox::new();
    let tar = Layer::new()
        .dir("./")
        .dir("./a/")
        .file("./a/b", b"x")
        .dir("c/")
        .finish();
    sandbox.unpack(&tar).unwrap();
    assert_eq!(fs::read(sandbox.dest().join("a/b")).unwrap(), b"x");
    assert!(sandbox.dest().join("c").is_dir());
}
