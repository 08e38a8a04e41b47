//! The container's root filesystem: mount propagation, the spec's mounts,
//! devices, `/dev` symlinks, `pivot_root`, masked and read-only paths.
//!
//! Every path inside the rootfs is resolved below an open handle of the
//! rootfs directory, never by name from the host's root.

use std::path::Path;

use oci_spec::runtime::Spec;

/// Errors of preparing the root filesystem.
#[derive(Debug, thiserror::Error)]
pub enum RootfsError {
    #[error("rootfs: {0}")]
    Other(String),
}

/// Facts about the container that rootfs set-up needs beyond the spec.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// The container has a mount namespace of its own (new, not joined).
    pub new_mount_namespace: bool,
    /// The container runs in a user namespace, so device nodes are
    /// bind-mounted from the host instead of created with mknod.
    pub user_namespace: bool,
    /// `--no-pivot`: move the rootfs onto `/` and chroot instead of pivot_root.
    pub no_pivot: bool,
}

/// The prepared rootfs, mounted and populated but not yet the root.
#[derive(Debug)]
pub struct Rootfs {}

/// Prepares the rootfs at `rootfs` (absolute) for `spec`. Runs in the
/// container's init, inside its mount namespace, before `createContainer`
/// hooks.
pub fn prepare(spec: &Spec, rootfs: &Path, options: Options) -> Result<Rootfs, RootfsError> {
    let _ = (spec, rootfs, options);
    todo!()
}

impl Rootfs {
    /// Makes the rootfs the process's root and cwd `/`.
    pub fn enter(self) -> Result<(), RootfsError> {
        todo!()
    }
}

/// Applies what must follow the switch to the new root: masked paths,
/// read-only paths, and `root.readonly`.
pub fn finalize(spec: &Spec, options: Options) -> Result<(), RootfsError> {
    let _ = (spec, options);
    todo!()
}

/// Mount options that the runtime understands (as `hull features` lists).
pub const MOUNT_OPTIONS: &[&str] = &[];
