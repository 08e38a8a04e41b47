//! An OCI image made with umoci from a copy of the busybox fixture with an
//! extra user `app`. Its config sets Entrypoint, Cmd, Env, WorkingDir and
//! that named User, so that tests can check that a runtime honours each.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use crate::fixtures;
use crate::registry::layout_from_rootfs;

/// The user the image config names, added to the image's passwd file.
pub const USER_LINE: &str = "app:x:2000:2000:app user:/home/app:/bin/sh";
/// Groups added to the image: the user's primary group and one that lists
/// the user as a member.
pub const GROUP_LINES: &str = "app:x:2000:\ndevs:x:3000:app\n";

/// The image's `Cmd`: a script for the `sh -c` entrypoint, then `$0` and
/// `$1`. It prints one `key=value` line per fact the tests check, and one
/// `env:NAME=VALUE` line per variable.
pub const IMAGE_SCRIPT: &str = "echo uid=$(id -u) gid=$(id -g) groups=$(id -G); \
    echo pwd=$(pwd); echo nofile=$(ulimit -n); env | sort | sed 's/^/env:/'; echo args=\"$0|$1\"";

/// Returns the arguments that [`app_image_layout`] passes to `umoci config`.
fn app_config() -> Vec<String> {
    [
        "--config.entrypoint=/bin/sh",
        "--config.entrypoint=-c",
        &format!("--config.cmd={IMAGE_SCRIPT}"),
        "--config.cmd=zero",
        "--config.cmd=one two",
        "--config.env=PATH=/usr/sbin:/usr/bin:/sbin:/bin",
        "--config.env=IMAGE_VAR=from-image",
        "--config.workingdir=/srv/work",
        "--config.user=app",
        "--config.exposedports=8080/tcp",
        "--config.volume=/data",
        "--config.stopsignal=SIGQUIT",
    ]
    .iter()
    .map(|arg| arg.to_string())
    .collect()
}

/// Makes the image in an OCI layout at `dir/layout` with tag `tag` and
/// returns the layout's path. `dir/source` keeps the rootfs it packed.
pub fn app_image_layout(dir: &Path, tag: &str) -> PathBuf {
    fs::create_dir_all(dir).unwrap();
    let source = dir.join("source");
    copy_tree(fixtures::busybox_rootfs(), &source);
    append(&source.join("etc/passwd"), &format!("{USER_LINE}\n"));
    append(&source.join("etc/group"), GROUP_LINES);
    fs::create_dir_all(source.join("home/app")).unwrap();
    fs::create_dir_all(source.join("srv/work")).unwrap();
    std::os::unix::fs::chown(source.join("home/app"), Some(2000), Some(2000)).unwrap();

    let layout = dir.join("layout");
    let configure = app_config();
    let configure: Vec<&str> = configure.iter().map(String::as_str).collect();
    layout_from_rootfs(&source, &layout, tag, &configure);
    layout
}

fn copy_tree(from: &Path, to: &Path) {
    let status = Command::new("cp")
        .arg("-a")
        .arg(from)
        .arg(to)
        .status()
        .expect("run cp");
    assert!(status.success(), "cp -a {} failed", from.display());
}

/// Appends `text`, replacing the file so that hard links stay untouched.
fn append(path: &Path, text: &str) {
    let mut content = fs::read_to_string(path).unwrap();
    content.push_str(text);
    fs::remove_file(path).unwrap();
    fs::write(path, content).unwrap();
}
