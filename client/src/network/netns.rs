//! Network namespaces kept alive by a bind mount on a file, as `ip netns`
//! does, so that they outlive the process that made them.

use std::fs;
use std::path::Path;

use anyhow::{bail, Context};
use nix::mount::{mount, umount2, MntFlags, MsFlags};
use nix::sched::{unshare, CloneFlags};
use nix::sys::socket::{socket, AddressFamily, SockFlag, SockType};
use std::os::fd::AsRawFd;

/// Creates a network namespace with its loopback interface up and
/// bind-mounts it on `path`, which must not exist yet.
///
/// The namespace is made by a short-lived thread that unshares only its own
/// network namespace, so the calling process and its other threads stay in
/// theirs.
///
/// NOTE: the bind mount is private to hullctl's mount namespace unless the
/// parent mount is shared. A mount namespace copied from it later with
/// private propagation (`unshare -m`) keeps its own copy of the mount, and
/// that copy keeps the namespace alive after `remove` until it exits. The
/// CNI plugins delete the veths at DEL either way.
pub fn create(path: &Path) -> anyhow::Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("failed to create {}", dir.display()))?;
    }
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
        .with_context(|| format!("failed to create network namespace file {}", path.display()))?;
    let target = path.to_path_buf();
    let result = std::thread::spawn(move || -> anyhow::Result<()> {
        unshare(CloneFlags::CLONE_NEWNET).context("failed to unshare a network namespace")?;
        bring_up_loopback().context("failed to bring up loopback")?;
        let source = format!("/proc/self/task/{}/ns/net", nix::unistd::gettid());
        mount(
            Some(source.as_str()),
            &target,
            None::<&str>,
            MsFlags::MS_BIND,
            None::<&str>,
        )
        .with_context(|| format!("failed to bind-mount {source} on {}", target.display()))
    })
    .join();
    let result = match result {
        Ok(result) => result,
        Err(_) => Err(anyhow::anyhow!(
            "the thread creating the network namespace panicked"
        )),
    };
    if result.is_err() {
        let _ = fs::remove_file(path);
    }
    result
}

/// Sets the up flag of `lo` in the calling thread's network namespace; the
/// kernel then gives it 127.0.0.1 and ::1. This is what the CNI loopback
/// plugin does, without starting a process.
fn bring_up_loopback() -> std::io::Result<()> {
    let socket = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let fd = socket.as_raw_fd();
    // SAFETY: ifreq is plain data, for which all zero bytes are valid.
    let mut request: libc::ifreq = unsafe { std::mem::zeroed() };
    for (byte, name) in request.ifr_name.iter_mut().zip(b"lo") {
        *byte = *name as libc::c_char;
    }
    // SAFETY: `request` is a valid ifreq that names an interface; the
    // ioctls read and write only its flags.
    unsafe {
        if libc::ioctl(fd, libc::SIOCGIFFLAGS, &mut request) == -1 {
            return Err(std::io::Error::last_os_error());
        }
        request.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(fd, libc::SIOCSIFFLAGS, &request) == -1 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(())
}

/// Unmounts and removes a namespace file. A file that is absent or not
/// mounted is no error, so that a second call succeeds.
pub fn remove(path: &Path) -> anyhow::Result<()> {
    match umount2(path, MntFlags::MNT_DETACH) {
        Ok(()) | Err(nix::errno::Errno::ENOENT) | Err(nix::errno::Errno::EINVAL) => {}
        Err(err) => bail!(
            "failed to unmount network namespace {}: {err}",
            path.display()
        ),
    }
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(err).with_context(|| format!("failed to remove {}", path.display())),
    }
}

/// Returns true when `path` is a mounted network namespace.
pub fn is_mounted(path: &Path) -> bool {
    nix::sys::statfs::statfs(path)
        .map(|stat| stat.filesystem_type() == nix::sys::statfs::NSFS_MAGIC)
        .unwrap_or(false)
}
