//! seccomp: OCI `linux.seccomp` profiles compiled to BPF and installed.

use oci_spec::runtime::LinuxSeccomp;

/// Errors of compiling or installing a seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("seccomp: {0}")]
    Other(String),
}

/// A compiled seccomp profile, ready to install in the container's init.
#[derive(Debug, Clone)]
pub struct Filter {}

/// Compiles `profile` for the host architecture. Rejects unknown syscall
/// names, actions, operators and flags.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let _ = profile;
    todo!()
}

impl Filter {
    /// Installs the filter on the calling thread with the profile's flags.
    /// The caller must hold CAP_SYS_ADMIN or have set no_new_privs.
    pub fn install(&self) -> Result<(), SeccompError> {
        todo!()
    }
}

/// Actions, operators and architectures the compiler accepts.
pub const ACTIONS: &[&str] = &[];
pub const OPERATORS: &[&str] = &[];
pub const ARCHITECTURES: &[&str] = &[];
