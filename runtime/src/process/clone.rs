//! Starting the init in its new namespaces.

use nix::sched::CloneFlags;
use nix::unistd::Pid;

/// Forks the calling process into the namespaces of `flags`, as fork(2)
/// does: returns the child's pid in the parent and `None` in the child.
pub fn fork_into(flags: CloneFlags) -> nix::Result<Option<Pid>> {
    let flags = flags.bits() as libc::c_ulong | libc::SIGCHLD as libc::c_ulong;
    // SAFETY: clone without CLONE_VM and with a null stack copies the address
    // space like fork(2), so the child runs on its own copy of this stack.
    // The runtime is single-threaded, so no other thread holds a lock that
    // the child would inherit locked.
    let rc = unsafe { libc::syscall(libc::SYS_clone, flags, 0usize, 0usize, 0usize, 0usize) };
    match rc {
        -1 => Err(nix::Error::last()),
        0 => Ok(None),
        pid => Ok(Some(Pid::from_raw(pid as i32))),
    }
}
