//! User namespaces that only carry id mappings, made for
//! `mount_setattr(MOUNT_ATTR_IDMAP)`: no process of the container ever
//! runs in them.

use std::fs::File;
use std::io;
use std::os::fd::OwnedFd;

use nix::sched::{unshare, CloneFlags};
use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, pipe2, ForkResult, Pid};
use oci_spec::runtime::LinuxIdMapping;

/// Formats mappings as the lines of `/proc/PID/uid_map`:
/// `containerID hostID size`.
pub fn map_text(mappings: &[LinuxIdMapping]) -> String {
    mappings
        .iter()
        .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
        .collect()
}

/// A child process that has unshared a user namespace and blocks until
/// it is killed or the runtime exits. Dropping it kills and reaps it.
struct Holder {
    pid: Pid,
    /// Write end of the pipe the child blocks on: when the runtime dies,
    /// the child reads end-of-file and exits.
    _hold: OwnedFd,
}

impl Drop for Holder {
    fn drop(&mut self) {
        let _ = kill(self.pid, Signal::SIGKILL);
        let _ = waitpid(self.pid, None);
    }
}

/// Forks the holder and waits until its user namespace exists.
fn spawn_holder() -> io::Result<Holder> {
    let (ready_read, ready_write) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    let (hold_read, hold_write) = pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
    // SAFETY: the runtime is single-threaded, so no lock is held in the
    // child. The child only calls close, unshare, write, read and _exit,
    // which take no locks and allocate nothing.
    match unsafe { fork() }? {
        ForkResult::Child => {
            drop(ready_read);
            drop(hold_write);
            let status = u8::from(unshare(CloneFlags::CLONE_NEWUSER).is_ok());
            let _ = nix::unistd::write(&ready_write, &[status]);
            let mut byte = [0u8; 1];
            let _ = nix::unistd::read(&hold_read, &mut byte);
            // SAFETY: _exit ends the child without running the runtime's
            // atexit handlers or flushing its stdio buffers.
            unsafe { libc::_exit(0) }
        }
        ForkResult::Parent { child } => {
            drop(ready_write);
            drop(hold_read);
            let holder = Holder {
                pid: child,
                _hold: hold_write,
            };
            let mut status = [0u8; 1];
            let read = nix::unistd::read(&ready_read, &mut status)?;
            if read != 1 || status[0] != 1 {
                return Err(io::Error::other(
                    "the helper process could not unshare a user namespace",
                ));
            }
            Ok(holder)
        }
    }
}

/// Creates a user namespace with the given mappings, written by the
/// runtime (root of the host's user namespace) so that `hostID`s are host
/// ids, and returns an `O_CLOEXEC` fd of it. The helper process that made
/// the namespace has been killed and reaped when this returns, also on
/// error, because the fd alone keeps the namespace alive.
pub fn create_user_namespace(
    uid_mappings: &[LinuxIdMapping],
    gid_mappings: &[LinuxIdMapping],
) -> io::Result<OwnedFd> {
    let holder = spawn_holder()?;
    let pid = holder.pid;
    for (file, text) in [
        ("uid_map", map_text(uid_mappings)),
        ("gid_map", map_text(gid_mappings)),
    ] {
        let path = format!("/proc/{pid}/{file}");
        // The kernel takes a map only in one write(2) of less than a page,
        // which fs::write issues for a buffer that size.
        std::fs::write(&path, &text).map_err(|e| {
            io::Error::new(
                e.kind(),
                format!("write {path} ({:?}): {e}", text.trim_end()),
            )
        })?;
    }
    // std opens files with O_CLOEXEC.
    let namespace = File::open(format!("/proc/{pid}/ns/user"))?;
    drop(holder);
    Ok(OwnedFd::from(namespace))
}
