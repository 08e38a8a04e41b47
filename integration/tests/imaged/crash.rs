//! A daemon killed with SIGKILL in the middle of a pull: after a restart
//! the pull completes and the store check finds no bad blob.

use std::path::Path;
use std::time::{Duration, Instant};

use hull_integration::registry::{layout_from_rootfs, Registry};
use hull_integration::{fixtures, require_root, require_tools};

use crate::fixture::Imaged;

/// Bytes below `dir`, counting regular files.
fn bytes_below(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|entry| {
            let path = entry.path();
            match entry.file_type() {
                Ok(kind) if kind.is_dir() => bytes_below(&path),
                Ok(_) => entry.metadata().map(|meta| meta.len()).unwrap_or(0),
                Err(_) => 0,
            }
        })
        .sum()
}

#[test]
fn pull_resumes_after_daemon_kill() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci");
    let mut imaged = Imaged::start();
    let registry = Registry::start();
    let layout = imaged.dir.path().join("debian-layout");
    layout_from_rootfs(fixtures::debian_rootfs(), &layout, "bookworm", &[]);
    registry.push_layout(&layout, "bookworm", "library/debian:bookworm", &[]);
    let reference = format!("{}/library/debian:bookworm", registry.host());

    let mut pull = imaged
        .hullctl_command(&["pull", &reference])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start hullctl pull");

    // Kill the daemon once part of the layer has arrived.
    let ingest = imaged.root().join("content/ingest");
    let deadline = Instant::now() + Duration::from_secs(60);
    while bytes_below(&ingest) < 1 << 20 {
        assert!(
            Instant::now() < deadline,
            "the pull wrote no data within 60 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    imaged.kill_hard();
    let status = pull.wait().expect("wait for hullctl");
    assert!(
        !status.success(),
        "the pull succeeded although its daemon was killed"
    );

    imaged.spawn();
    imaged.hullctl_ok(&["pull", &reference]);
    let check = imaged.hullctl_ok(&["check"]);
    assert!(check.stdout.contains("no problems"), "{check}");
    let images = imaged.hullctl_ok(&["images"]);
    assert!(images.stdout.contains("library/debian"), "{images}");
}
