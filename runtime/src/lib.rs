//! hull: a runc-compatible OCI runtime.
//!
//! The library contains every piece of the runtime. `main.rs` only parses
//! the command line and dispatches to [`commands`].

pub mod capabilities;
pub mod cgroups;
pub mod commands;
pub mod console;
pub mod container;
pub mod criu;
pub mod error;
pub mod events;
pub mod exec_socket;
pub mod features;
pub mod hooks;
pub mod id;
pub mod lifecycle;
pub mod logging;
pub mod namespaces;
pub mod process;
pub mod rootfs;
pub mod seccomp;
pub mod signal;
pub mod spec;
pub mod state;
pub mod sync;
pub mod units;
pub mod update;
pub mod utils;

pub use error::{Error, Result};

/// Version of the OCI runtime spec that hull implements.
pub const OCI_VERSION: &str = "1.2.0";
