//! Locations of the runtime binaries under test.

use std::path::PathBuf;

/// Returns the runtime under test: `$HULL`, or `hull` next to the test
/// binary's profile directory (`target/debug/hull` for `cargo test`).
///
/// `cargo test` does not build the `hull` binary for this package, so run
/// `cargo build` first (the README's test command does).
///
/// # Panics
/// Panics when the binary does not exist.
pub fn hull_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("HULL") {
        let path = PathBuf::from(path);
        assert!(path.is_file(), "HULL={} is not a file", path.display());
        return path;
    }
    let path = profile_dir().join("hull");
    assert!(
        path.is_file(),
        "hull binary not found at {}: run `cargo build` first or set HULL",
        path.display()
    );
    path
}

/// Returns hullctl: `$HULLCTL`, or `hullctl` in the profile directory.
///
/// # Panics
/// Panics when the binary does not exist; `cargo build -p hull-client`
/// makes it.
pub fn hullctl_binary() -> PathBuf {
    built_binary("HULLCTL", "hullctl", "hull-client")
}

/// Returns the image daemon: `$HULL_IMAGED`, or `hull-imaged` in the
/// profile directory.
///
/// # Panics
/// Panics when the binary does not exist; `cargo build -p hull-images`
/// makes it.
pub fn imaged_binary() -> PathBuf {
    built_binary("HULL_IMAGED", "hull-imaged", "hull-images")
}

fn built_binary(variable: &str, name: &str, package: &str) -> PathBuf {
    if let Some(path) = std::env::var_os(variable) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "{variable}={} is not a file",
            path.display()
        );
        return path;
    }
    let path = profile_dir().join(name);
    assert!(
        path.is_file(),
        "{name} not found at {}: run `cargo build -p {package}` first or set {variable}",
        path.display()
    );
    path
}

/// Returns the reference runtime: `$RUNC`, or `/usr/sbin/runc`.
pub fn runc_binary() -> PathBuf {
    std::env::var_os("RUNC")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from("/usr/sbin/runc"))
}

/// Returns `target/<profile>`: test binaries live in `target/<profile>/deps`.
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("cannot find the test binary's path");
    let deps = exe.parent().expect("test binary has no parent directory");
    if deps.file_name().is_some_and(|name| name == "deps") {
        deps.parent().unwrap_or(deps).to_path_buf()
    } else {
        deps.to_path_buf()
    }
}
