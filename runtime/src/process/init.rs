//! The container's init: runs in the cloned child, sets up the container
//! from inside, waits for `start`, and execs the container's program.

use std::convert::Infallible;

use nix::sched::{unshare, CloneFlags};
use oci_spec::runtime::LinuxNamespaceType;

use super::{exec, InitArgs};
use crate::error::Context;
use crate::hooks::{self, HookState};
use crate::rootfs;
use crate::sync::Message;
use crate::{Error, Result};

/// Runs the init and never returns. A failure is sent to the runtime, which
/// reports it and cleans up.
pub(crate) fn run(args: InitArgs) -> ! {
    let error = match setup(&args) {
        Ok(never) => match never {},
        Err(error) => error,
    };
    let _ = args.channel.send(&Message::Failed(error.to_string()));
    // SAFETY: _exit ends the process without running the parent's atexit
    // handlers or flushing its stdio buffers, which this copy shares.
    unsafe { libc::_exit(1) }
}

fn setup(args: &InitArgs) -> Result<Infallible> {
    let spec = &args.config.spec;
    let process = spec.process().as_ref().expect("checked by create");
    let namespaces = &args.namespaces;

    // Until it execs, the init runs the host's hull binary. Not dumpable,
    // its /proc/PID/exe cannot be opened by processes in the container,
    // so they cannot write to that binary through it (CVE-2019-5736).
    // execve makes the container's program dumpable again.
    nix::sys::prctl::set_dumpable(false).context(|| "make the init non-dumpable".into())?;
    close_unneeded_fds(args)?;
    if let Some(cgroup) = &args.join_cgroup {
        cgroup.join_v1_self()?;
        args.channel.send(&Message::Joined)?;
    }
    args.channel.expect(&Message::Go)?;
    namespaces.join_others()?;
    if namespaces.has(LinuxNamespaceType::User) {
        become_namespace_root()?;
    }
    if namespaces.new_cgroup {
        unshare(CloneFlags::CLONE_NEWCGROUP).context(|| "unshare the cgroup namespace".into())?;
    }
    if namespaces.has(LinuxNamespaceType::Uts) {
        set_names(spec)?;
    }
    if !args.no_new_keyring {
        join_session_keyring(&args.id)?;
    }

    let options = rootfs::Options {
        new_mount_namespace: namespaces.is_new(LinuxNamespaceType::Mount),
        user_namespace: namespaces.has(LinuxNamespaceType::User),
        no_pivot: args.no_pivot,
    };
    let prepared = rootfs::prepare_with(spec, &args.config.rootfs, options, &args.id_mapped)?;

    args.channel.send(&Message::RunHooks)?;
    args.channel.expect(&Message::HooksDone)?;
    let pid = std::process::id() as i32;
    let annotations = spec
        .annotations()
        .clone()
        .unwrap_or_default()
        .into_iter()
        .collect();
    let hook_state = |status| HookState {
        oci_version: spec.version(),
        id: &args.id,
        status,
        pid: Some(pid),
        bundle: &args.config.bundle,
        annotations: std::collections::BTreeMap::clone(&annotations),
    };
    hooks::run(hooks::Kind::CreateContainer, spec, &hook_state("creating"))?;

    prepared.enter()?;
    // The console and sysctls come before finalize, which may make /dev
    // and /proc/sys read-only.
    if let Some(console) = &args.console {
        let fd = console
            .try_clone()
            .context(|| "dup the console socket".into())?;
        let size = process
            .console_size()
            .as_ref()
            .map(|b| (b.height() as u16, b.width() as u16));
        crate::console::setup(fd, size, true)?;
    }
    write_sysctls(spec)?;
    rootfs::finalize(spec, options)?;
    if let Some(score) = process.oom_score_adj() {
        std::fs::write("/proc/self/oom_score_adj", score.to_string())
            .context(|| format!("set oom_score_adj to {score}"))?;
    }
    let personality = spec.linux().as_ref().and_then(|l| l.personality().as_ref());
    let prepared = exec::prepare(
        process,
        personality,
        args.seccomp.as_ref(),
        args.capabilities.as_ref(),
        args.preserve_fds,
        &args.channel,
    )?;

    args.channel.send(&Message::Ready)?;
    let connection = crate::exec_socket::accept_start(&args.exec_socket)?;
    let error = match release(args, prepared, &hook_state("created")) {
        Ok(never) => match never {},
        Err(error) => error,
    };
    crate::exec_socket::report_failure(&connection, &error.to_string());
    Err(error)
}

/// Runs the steps after `start`: the `startContainer` hooks, then exec.
/// Returns only on failure.
fn release(
    args: &InitArgs,
    mut prepared: exec::Prepared,
    hook_state: &HookState,
) -> Result<Infallible> {
    prepared.install_late_seccomp()?;
    hooks::run(hooks::Kind::StartContainer, &args.config.spec, hook_state)?;
    Err(prepared.exec())
}

/// Closes every inherited descriptor but stdio, the preserved ones and
/// those the init uses. Only the runtime's own descriptors are left at that
/// point, and one of them is the container's state directory on the host.
fn close_unneeded_fds(args: &InitArgs) -> Result<()> {
    use std::os::fd::AsRawFd;
    let preserved_end = 3 + args.preserve_fds as i32;
    let mut keep: Vec<i32> = (3..preserved_end).collect();
    keep.push(args.channel.fd().as_raw_fd());
    keep.push(args.exec_socket.as_raw_fd());
    keep.extend(args.console.as_ref().map(|fd| fd.as_raw_fd()));
    keep.extend(args.namespaces.join.iter().map(|(_, fd)| fd.as_raw_fd()));
    keep.extend(args.id_mapped.fds().map(|fd| fd.as_raw_fd()));
    crate::utils::close_fds_except(3, &keep).context(|| "close inherited fds".into())
}

/// Takes uid and gid 0 of the user namespace, the identity of the rest of
/// the set-up. Without 0 in the maps the ids stay as they are.
fn become_namespace_root() -> Result<()> {
    let root_gid = nix::unistd::Gid::from_raw(0);
    let root_uid = nix::unistd::Uid::from_raw(0);
    match nix::unistd::setresgid(root_gid, root_gid, root_gid) {
        Ok(()) | Err(nix::Error::EINVAL) => {}
        Err(e) => return Err(Error::sys("setgid 0 in the user namespace", e)),
    }
    match nix::unistd::setresuid(root_uid, root_uid, root_uid) {
        Ok(()) | Err(nix::Error::EINVAL) => {}
        Err(e) => return Err(Error::sys("setuid 0 in the user namespace", e)),
    }
    Ok(())
}

fn set_names(spec: &oci_spec::runtime::Spec) -> Result<()> {
    if let Some(hostname) = spec.hostname().as_deref().filter(|h| !h.is_empty()) {
        nix::unistd::sethostname(hostname).context(|| format!("set hostname {hostname:?}"))?;
    }
    if let Some(domain) = spec.domainname().as_deref().filter(|d| !d.is_empty()) {
        // SAFETY: setdomainname reads `len` bytes from the pointer, which
        // points into a live string of that length.
        let rc = unsafe { libc::setdomainname(domain.as_ptr().cast(), domain.len()) };
        if rc != 0 {
            return Err(Error::io(
                format!("set domainname {domain:?}"),
                std::io::Error::last_os_error(),
            ));
        }
    }
    Ok(())
}

/// Gives the container a session keyring of its own, so it cannot see the
/// keys of the caller's session.
fn join_session_keyring(id: &str) -> Result<()> {
    const KEYCTL_JOIN_SESSION_KEYRING: libc::c_long = 1;
    let name = std::ffi::CString::new(format!("_ses.{id}")).expect("ids have no NUL byte");
    // SAFETY: keyctl(JOIN_SESSION_KEYRING) reads a NUL-terminated name.
    let rc = unsafe { libc::syscall(libc::SYS_keyctl, KEYCTL_JOIN_SESSION_KEYRING, name.as_ptr()) };
    if rc < 0 {
        let error = std::io::Error::last_os_error();
        // Kernels without keyrings have nothing to hide.
        if error.raw_os_error() != Some(libc::ENOSYS) {
            return Err(Error::io("join a new session keyring", error));
        }
    }
    Ok(())
}

fn write_sysctls(spec: &oci_spec::runtime::Spec) -> Result<()> {
    let sysctls = spec.linux().as_ref().and_then(|l| l.sysctl().clone());
    for (key, value) in sysctls.unwrap_or_default() {
        let path = format!("/proc/sys/{}", key.replace('.', "/"));
        std::fs::write(&path, &value).context(|| format!("set sysctl {key} to {value:?}"))?;
    }
    Ok(())
}
