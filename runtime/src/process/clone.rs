//! Starting the init in its new namespaces.

use std::os::fd::{AsRawFd, BorrowedFd};

use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// `CLONE_INTO_CGROUP` from linux/sched.h (Linux 5.7): clone3 starts the
/// child in the cgroup2 directory given by `clone_args.cgroup`.
const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;

/// `struct clone_args` of clone3(2), up to its `cgroup` field.
#[repr(C)]
#[derive(Default)]
struct CloneArgs {
    flags: u64,
    pidfd: u64,
    child_tid: u64,
    parent_tid: u64,
    exit_signal: u64,
    stack: u64,
    stack_size: u64,
    tls: u64,
    set_tid: u64,
    set_tid_size: u64,
    cgroup: u64,
}

/// The process that returned from [`fork_into`]: the parent or the child.
pub enum Forked {
    /// The parent, with the child's pid and whether the child started in
    /// the requested cgroup2 directory.
    Parent {
        child: Pid,
        in_cgroup: bool,
    },
    Child,
}

/// Forks the calling process into the namespaces of `flags`, as fork(2)
/// does. With `cgroup`, a cgroup2 directory, the child starts in it
/// through clone3 with `CLONE_INTO_CGROUP`. When clone3 fails, as before
/// Linux 5.7 or under a seccomp filter that denies it, a plain clone
/// starts the child outside that cgroup.
pub fn fork_into(flags: CloneFlags, cgroup: Option<BorrowedFd<'_>>) -> nix::Result<Forked> {
    if let Some(cgroup) = cgroup {
        let args = CloneArgs {
            flags: flags.bits() as u64 | CLONE_INTO_CGROUP,
            exit_signal: libc::SIGCHLD as u64,
            cgroup: cgroup.as_raw_fd() as u64,
            ..CloneArgs::default()
        };
        // SAFETY: without CLONE_VM and with no stack, clone3 copies the
        // address space like fork(2), so the child runs on its own copy of
        // this stack. `args` lives across the call and its size is passed.
        // The runtime is single-threaded, so no other thread holds a lock
        // that the child would inherit locked.
        let rc = unsafe {
            libc::syscall(
                libc::SYS_clone3,
                &args as *const CloneArgs,
                std::mem::size_of::<CloneArgs>(),
            )
        };
        match rc {
            -1 => {}
            0 => return Ok(Forked::Child),
            pid => {
                return Ok(Forked::Parent {
                    child: Pid::from_raw(pid as i32),
                    in_cgroup: true,
                })
            }
        }
    }
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: as above, clone without CLONE_VM and with a null stack
    // copies the address space like fork(2).
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match rc {
        -1 => Err(nix::Error::last()),
        0 => Ok(Forked::Child),
        pid => Ok(Forked::Parent {
            child: Pid::from_raw(pid as i32),
            in_cgroup: false,
        }),
    }
}
