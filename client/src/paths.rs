//! Where hullctl keeps what it knows of containers, volumes and networks.
//!
//! Persistent state lives below the store root (`--root`, beside
//! hull-imaged's content): `containers/<id>/`, `volumes/<name>/` and
//! `networks/<name>.json`. State that a reboot must clear lives below the
//! run root (`--run-root`): network namespaces, CNI address leases, stdio
//! FIFOs and the runtime's container state.

use std::path::PathBuf;

use crate::GlobalArgs;

/// The default of `--run-root`.
pub const DEFAULT_RUN_ROOT: &str = "/run/hull/ctl";

/// The directories hullctl works in.
#[derive(Debug, Clone)]
pub struct Paths {
    pub root: PathBuf,
    pub run_root: PathBuf,
}

impl Paths {
    pub fn new(global: &GlobalArgs) -> Paths {
        Paths {
            root: global.root.clone(),
            run_root: global.run_root.clone(),
        }
    }

    /// `<root>/containers`: one directory per container.
    pub fn containers(&self) -> PathBuf {
        self.root.join("containers")
    }

    /// `<root>/volumes`: one directory per named volume.
    pub fn volumes(&self) -> PathBuf {
        self.root.join("volumes")
    }

    /// `<root>/networks`: one record per network.
    pub fn networks(&self) -> PathBuf {
        self.root.join("networks")
    }

    /// `<run-root>/netns`: bind mounts of container network namespaces.
    pub fn netns(&self) -> PathBuf {
        self.run_root.join("netns")
    }

    /// `<run-root>/cni`: the CNI plugins' state (host-local address leases).
    pub fn cni_state(&self) -> PathBuf {
        self.run_root.join("cni")
    }

    /// `<run-root>/containers/<id>`: the container's stdio FIFOs.
    pub fn container_run(&self, id: &str) -> PathBuf {
        self.run_root.join("containers").join(id)
    }

    /// `<run-root>/runtime`: the OCI runtime's `--root`.
    pub fn runtime_root(&self) -> PathBuf {
        self.run_root.join("runtime")
    }
}
