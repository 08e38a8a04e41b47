//! Harness for end-to-end tests of an OCI runtime binary.
//!
//! Every test runs the runtime under test (`HULL`, default the workspace's
//! `target/<profile>/hull`) and, where a value must match, the reference
//! runtime (`RUNC`, default `/usr/sbin/runc`) on the same `config.json`.
//! The tests need root; without it they print why and return early.

pub mod binaries;
pub mod bundle;
pub mod callers;
pub mod compare;
pub mod containers;
pub mod fixtures;
pub mod host;
pub mod image;
pub mod layout;
pub mod network;
pub mod output;
pub mod pty;
pub mod registry;
pub mod runtime;
mod template;
pub mod tree;

pub use binaries::{hull_binary, hullctl_binary, imaged_binary, runc_binary};
pub use bundle::{Bundle, Rootfs};
pub use compare::{assert_same_output, run_and_compare, run_on_both};
pub use output::Output;
pub use runtime::Runtime;

use std::sync::atomic::{AtomicUsize, Ordering};

/// Returns a container id that is unique on this machine while this process
/// runs: `PREFIX-PID-N`.
pub fn unique_id(prefix: &str) -> String {
    static COUNTER: AtomicUsize = AtomicUsize::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// Returns true when the tests can run: the process is root. Otherwise
/// prints the reason for the skip.
pub fn can_run(test: &str) -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipping {test}: container tests need root");
    false
}

/// Returns from the calling test, which then passes, unless it runs as root.
#[macro_export]
macro_rules! require_root {
    () => {
        if !$crate::can_run(module_path!()) {
            return;
        }
    };
}

/// Returns from the calling test, which then passes, unless every named
/// program is found in `PATH`.
#[macro_export]
macro_rules! require_tools {
    ($($tool:expr),+ $(,)?) => {
        $(
            if !$crate::host::has_tool($tool) {
                eprintln!("skipping {}: {} is not installed", module_path!(), $tool);
                return;
            }
        )+
    };
}
