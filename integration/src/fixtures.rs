//! Root filesystems shared by all tests, built once by `hack/rootfs/*.sh`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

/// Returns the cached busybox root filesystem, building it on first use.
pub fn busybox_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| build("busybox.sh"))
}

/// Returns the cached Debian bookworm root filesystem, building it on first
/// use (debootstrap needs about a minute and the Debian mirror).
pub fn debian_rootfs() -> &'static Path {
    static ROOTFS: OnceLock<PathBuf> = OnceLock::new();
    ROOTFS.get_or_init(|| build("debian.sh"))
}

/// Returns the repository's `hack` directory.
pub fn hack_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../hack")
}

fn build(script: &str) -> PathBuf {
    let path = hack_dir().join("rootfs").join(script);
    let output = Command::new(&path)
        .output()
        .unwrap_or_else(|e| panic!("failed to run {}: {e}", path.display()));
    assert!(
        output.status.success(),
        "{} failed with {}:\n{}",
        path.display(),
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let stdout = String::from_utf8_lossy(&output.stdout);
    let dir = stdout
        .lines()
        .last()
        .unwrap_or_else(|| panic!("{} printed no path", path.display()));
    PathBuf::from(dir)
}
