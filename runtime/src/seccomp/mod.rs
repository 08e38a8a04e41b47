//! seccomp: OCI `linux.seccomp` profiles compiled to BPF and installed.
//!
//! [`compile`] checks a profile and generates one classic BPF program for
//! the host's native ABI and the compat ABIs the profile lists (on x86_64
//! hosts: SCMP_ARCH_X86 and SCMP_ARCH_X32). The program follows runc 1.1
//! with libseccomp 2.5 where it can:
//!
//! - SCMP_ACT_KILL is KILL_THREAD.
//! - ERRNO and TRACE return `errnoRet`
//!   (`defaultErrnoRet` for the default action), EPERM when absent.
//! - Rules whose action equals the default action are skipped.
//! - A syscall name of another architecture (`chown32` on x86_64) is skipped
//!   for ABIs that lack it. A name that no architecture has is an error.
//! - Syscalls of an ABI the profile does not list get KILL_THREAD,
//!   libseccomp's default bad-arch action.
//! - Unless the default action runs the syscall (ALLOW, LOG, TRACE),
//!   syscalls numbered above the largest one named in the profile return
//!   ENOSYS, as runc's patched filter does, so that programs fall back from
//!   syscalls newer than the profile.
//! - Without a `flags` field the filter gets SECCOMP_FILTER_FLAG_SPEC_ALLOW.
//! - SCMP_ACT_NOTIFY needs `listenerPath`. The filter is then installed with
//!   SECCOMP_FILTER_FLAG_NEW_LISTENER, and the runtime sends the listener fd
//!   to the seccomp agent listening there (see [`agent`]). NOTIFY may not be
//!   the default action, as in runc.
//!
//! When several rules name one syscall, an unconditional rule decides alone
//! (the first one in the profile, as in libseccomp). Otherwise the matching
//! rule with the highest-precedence action wins, in the kernel's order:
//! KILL_PROCESS, KILL_THREAD, TRAP, ERRNO, USER_NOTIF, TRACE, LOG, ALLOW.

pub mod agent;
mod bpf;
mod compile;
mod syscalls;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_install;
#[cfg(test)]
mod tests_notify;

use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::path::{Path, PathBuf};

use oci_spec::runtime::LinuxSeccomp;
pub use seccompiler::{sock_filter, BpfProgram};

pub use bpf::BPF_MAXINSNS;
pub use syscalls::{is_linux_syscall, syscall_number};

/// Errors of compiling or installing a seccomp profile.
#[derive(Debug, thiserror::Error)]
pub enum SeccompError {
    #[error("unknown seccomp syscall {name:?}: not a Linux system call name")]
    UnknownSyscall { name: String },
    #[error("invalid seccomp rule: empty syscall name")]
    EmptySyscallName,
    #[error("invalid seccomp argument index {index} for {context}: must be 0 to 5")]
    InvalidArgIndex { index: usize, context: String },
    #[error("invalid seccomp errnoRet {value} for {context}: must be at most 65535")]
    InvalidErrnoRet { value: u32, context: String },
    #[error("invalid seccomp defaultAction SCMP_ACT_NOTIFY: only rules may notify")]
    NotifyDefaultAction,
    #[error("invalid seccomp rule: SCMP_ACT_NOTIFY cannot be used for the {name} syscall, which the runtime needs to pass the listener fd")]
    NotifyForbiddenSyscall { name: String },
    #[error(
        "linux.seccomp.listenerPath is missing: it is required when a rule uses SCMP_ACT_NOTIFY"
    )]
    MissingListenerPath,
    #[error("seccomp flag {flag} is not supported: it needs SCMP_ACT_NOTIFY")]
    FlagNeedsNotify { flag: &'static str },
    #[error("seccomp is not supported on host architecture {arch}")]
    UnsupportedHost { arch: &'static str },
    #[error(
        "seccomp filter needs {length} BPF instructions, more than the kernel's limit of 4096"
    )]
    FilterTooLarge { length: usize },
    #[error("seccomp(SECCOMP_SET_MODE_FILTER) failed: {0}")]
    Install(#[source] std::io::Error),
    #[error("seccomp(SECCOMP_SET_MODE_FILTER) with SECCOMP_FILTER_FLAG_TSYNC failed: thread {tid} could not be synchronized")]
    TsyncFailed { tid: i64 },
    #[error("seccomp(SECCOMP_SET_MODE_FILTER) with SECCOMP_FILTER_FLAG_TSYNC failed: a thread could not be synchronized")]
    TsyncFailedUnknownThread,
    #[error(
        "failed to connect with seccomp agent at {path} (linux.seccomp.listenerPath): {source}"
    )]
    AgentConnect {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("send the seccomp listener fd to the agent at {path}: {source}")]
    AgentSend {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// A compiled seccomp profile, ready to install in the container's init.
#[derive(Debug, Clone)]
pub struct Filter {
    program: BpfProgram,
    flags: u32,
    listener_path: Option<PathBuf>,
    listener_metadata: Option<String>,
}

/// Compiles `profile` for the host architecture. Rejects unknown syscall
/// names, SCMP_ACT_NOTIFY without `listenerPath`, as the default action or
/// for `sendmsg` and `write`, argument indexes above 5, `errnoRet` values
/// above 65535 and programs longer than the kernel accepts. Unknown action,
/// operator, arch and flag names are already rejected when the spec is
/// parsed, because oci-spec types them as enums.
pub fn compile(profile: &LinuxSeccomp) -> Result<Filter, SeccompError> {
    let plan = compile::plan(profile)?;
    let program = bpf::generate(&plan)?;
    Ok(Filter {
        program,
        flags: plan.flags,
        listener_path: profile.listener_path().clone(),
        listener_metadata: profile.listener_metadata().clone(),
    })
}

impl Filter {
    /// Returns the BPF program.
    pub fn program(&self) -> &[sock_filter] {
        &self.program
    }

    /// Returns the `SECCOMP_FILTER_FLAG_*` bits passed to seccomp(2).
    pub fn flags(&self) -> u32 {
        self.flags
    }

    /// Returns the profile's `listenerPath`, the socket of a seccomp agent.
    pub fn listener_path(&self) -> Option<&Path> {
        self.listener_path.as_deref()
    }

    /// Returns the profile's `listenerMetadata`, opaque data for the agent.
    pub fn listener_metadata(&self) -> Option<&str> {
        self.listener_metadata.as_deref()
    }

    /// Returns whether a rule uses SCMP_ACT_NOTIFY, so that
    /// [`Filter::install`] returns a listener fd to send to the agent at
    /// `listenerPath`.
    pub fn needs_listener(&self) -> bool {
        self.flags & libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32 != 0
    }

    /// Installs the filter on the calling thread with the profile's flags.
    /// Returns the notify listener fd (close-on-exec) when
    /// [`Filter::needs_listener`], otherwise `None`. The caller must hold
    /// CAP_SYS_ADMIN or have set no_new_privs. Does not allocate, so a child
    /// forked from a multi-threaded process may call it.
    pub fn install(&self) -> Result<Option<OwnedFd>, SeccompError> {
        let program = libc::sock_fprog {
            len: self.program.len() as u16,
            // The kernel only reads the program.
            filter: self.program.as_ptr() as *mut libc::sock_filter,
        };
        // SAFETY: seccompiler's sock_filter is #[repr(C)] with the fields of
        // struct sock_filter (u16, u8, u8, u32), like libc::sock_filter, and
        // `program` points to `len` of them, alive for the call. The kernel
        // copies the program before returning.
        let result = unsafe {
            libc::syscall(
                libc::SYS_seccomp,
                libc::SECCOMP_SET_MODE_FILTER,
                libc::c_ulong::from(self.flags),
                &program as *const libc::sock_fprog,
            )
        };
        if result < 0 {
            let error = std::io::Error::last_os_error();
            let tsync_esrch = libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH as u32;
            if self.flags & tsync_esrch != 0 && error.raw_os_error() == Some(libc::ESRCH) {
                return Err(SeccompError::TsyncFailedUnknownThread);
            }
            return Err(SeccompError::Install(error));
        }
        if self.needs_listener() {
            // SAFETY: with SECCOMP_FILTER_FLAG_NEW_LISTENER a successful
            // seccomp(2) returns a new fd that nothing else owns.
            let listener = unsafe { OwnedFd::from_raw_fd(result as RawFd) };
            return Ok(Some(listener));
        }
        if result > 0 {
            // With SECCOMP_FILTER_FLAG_TSYNC the kernel returns the id of a
            // thread that could not be synchronized. With NEW_LISTENER,
            // TSYNC_ESRCH is set, which makes that failure ESRCH instead.
            return Err(SeccompError::TsyncFailed { tid: result });
        }
        Ok(None)
    }
}

/// Actions that `compile` turns into filter code (`hull features`).
pub const ACTIONS: &[&str] = &[
    "SCMP_ACT_ALLOW",
    "SCMP_ACT_ERRNO",
    "SCMP_ACT_KILL",
    "SCMP_ACT_KILL_PROCESS",
    "SCMP_ACT_KILL_THREAD",
    "SCMP_ACT_LOG",
    "SCMP_ACT_NOTIFY",
    "SCMP_ACT_TRACE",
    "SCMP_ACT_TRAP",
];

/// Argument comparison operators that `compile` supports.
pub const OPERATORS: &[&str] = &[
    "SCMP_CMP_EQ",
    "SCMP_CMP_GE",
    "SCMP_CMP_GT",
    "SCMP_CMP_LE",
    "SCMP_CMP_LT",
    "SCMP_CMP_MASKED_EQ",
    "SCMP_CMP_NE",
];

/// Architectures whose system calls the compiled filter distinguishes.
#[cfg(target_arch = "x86_64")]
pub const ARCHITECTURES: &[&str] = &["SCMP_ARCH_X32", "SCMP_ARCH_X86", "SCMP_ARCH_X86_64"];
#[cfg(not(target_arch = "x86_64"))]
pub const ARCHITECTURES: &[&str] = &["SCMP_ARCH_AARCH64"];

/// Filter flags passed to seccomp(2). SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV
/// needs a profile with SCMP_ACT_NOTIFY rules.
pub const FLAGS: &[&str] = &[
    "SECCOMP_FILTER_FLAG_LOG",
    "SECCOMP_FILTER_FLAG_SPEC_ALLOW",
    "SECCOMP_FILTER_FLAG_TSYNC",
    "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV",
];
