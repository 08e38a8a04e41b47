//! Creating a container: the runtime's side of `create`, which clones the
//! init into its namespaces and cgroup and waits until it is ready to exec.

pub mod attributes;
pub mod enter;
pub mod exec;

mod clone;
mod init;
mod notify;

use std::fs;
use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::PathBuf;

use nix::sys::signal::{kill, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::Pid;

use crate::capabilities;
use crate::cgroups::Manager;
use crate::container::Container;
use crate::error::Context;
use crate::hooks::{self, HookState};
use crate::namespaces::Namespaces;
use crate::seccomp;
use crate::spec::{self, Config};
use crate::state::{self, Lock, State};
use crate::sync::{self, Message};
use crate::{utils, Error, Result};

/// What `create` and `run` are given besides the bundle.
#[derive(Debug, Clone, Default)]
pub struct CreateOptions {
    pub id: String,
    pub bundle: PathBuf,
    /// The runtime's state directory (`--root`).
    pub root: PathBuf,
    pub pid_file: Option<PathBuf>,
    pub console_socket: Option<PathBuf>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    /// Descriptors 3 to 3+N-1 stay open in the container.
    pub preserve_fds: u32,
    /// `--systemd-cgroup`: manage the cgroup through systemd.
    pub systemd_cgroup: bool,
}

/// Everything the init needs, prepared by the runtime before the clone so
/// that bad input fails before anything is created.
pub(crate) struct InitArgs {
    pub id: String,
    pub config: Config,
    pub namespaces: Namespaces,
    pub seccomp: Option<seccomp::Filter>,
    pub capabilities: Option<capabilities::Sets>,
    pub channel: sync::Channel,
    /// The listening exec socket that `start` connects to.
    pub exec_socket: OwnedFd,
    pub console: Option<OwnedFd>,
    pub no_pivot: bool,
    pub no_new_keyring: bool,
    pub preserve_fds: u32,
}

/// Undoes a half-done create when dropped without `disarm`.
struct Cleanup {
    dir: PathBuf,
    cgroup: Option<Manager>,
    child: Option<Pid>,
    armed: bool,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        if let Some(pid) = self.child {
            let _ = kill(pid, Signal::SIGKILL);
            let _ = waitpid(pid, None);
        }
        if let Some(cgroup) = &self.cgroup {
            if let Err(e) = cgroup.destroy() {
                tracing::warn!("remove cgroup of failed create: {e}");
            }
        }
        if let Err(e) = fs::remove_dir_all(&self.dir) {
            tracing::warn!("remove {}: {e}", self.dir.display());
        }
    }
}

/// Creates the container: on success its init waits for `start`, and the
/// returned container is recorded under `--root`.
pub fn create(options: &CreateOptions) -> Result<Container> {
    create_with_console(options, None)
}

/// Creates the container as [`create`] does; `console`, when given, is a
/// connected socket that receives the pty master in place of
/// `--console-socket` (foreground `run` proxies the terminal itself).
pub fn create_with_console(options: &CreateOptions, console: Option<OwnedFd>) -> Result<Container> {
    crate::id::validate(&options.id)?;
    if options.systemd_cgroup {
        // TODO: the systemd driver creates the cgroup as a transient unit
        // over D-Bus; until it exists, cgroupfs paths are the only kind.
        return Err(Error::Spec(
            "--systemd-cgroup: the systemd cgroup driver is not supported; drop the flag to use cgroupfs".into(),
        ));
    }
    let config = spec::load(&options.bundle)?;
    let spec = &config.spec;
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| Error::Spec("process is missing from config.json".into()))?;

    // Everything that can be checked is checked before anything is made.
    let namespaces = Namespaces::from_spec(spec)?;
    let linux = spec.linux().clone().unwrap_or_default();
    let seccomp = linux.seccomp().as_ref().map(seccomp::compile).transpose()?;
    let capabilities = process
        .capabilities()
        .as_ref()
        .map(capabilities::Sets::from_spec)
        .transpose()?;
    exec::check_rlimits(process.rlimits().as_deref().unwrap_or_default())?;
    for hook in spec::all_hooks(spec) {
        if !hook.path().is_file() {
            return Err(Error::Spec(format!(
                "hook {}: no such file",
                hook.path().display()
            )));
        }
    }
    let console = match (&options.console_socket, process.terminal().unwrap_or(false)) {
        (_, true) if console.is_some() => console,
        (Some(path), true) => Some(crate::console::connect(path)?),
        (None, true) => {
            return Err(Error::Spec(
                "process.terminal is true but no --console-socket was given".into(),
            ))
        }
        (Some(_), false) => {
            return Err(Error::Spec(
                "--console-socket was given but process.terminal is false".into(),
            ))
        }
        (None, false) => None,
    };
    let cgroup = Manager::new(
        linux.cgroups_path().as_deref().and_then(|p| p.to_str()),
        &options.id,
    )?;

    fs::create_dir_all(&options.root)
        .context(|| format!("create state root {}", options.root.display()))?;
    let dir = state::dir(&options.root, &options.id);
    match fs::DirBuilder::new().mode(0o711).create(&dir) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(Error::Exists(options.id.clone()))
        }
        Err(e) => return Err(Error::io(format!("create {}", dir.display()), e)),
    }
    let mut cleanup = Cleanup {
        dir: dir.clone(),
        cgroup: None,
        child: None,
        armed: true,
    };
    let _lock = Lock::acquire(&options.root, &options.id)?;

    let exec_socket = crate::exec_socket::listen_in(&dir)?;

    cgroup.create(linux.resources().as_ref())?;
    cleanup.cgroup = Some(cgroup.clone());

    let (parent_channel, child_channel) = sync::pair()?;
    let own_pid_namespace = namespaces.is_new(oci_spec::runtime::LinuxNamespaceType::Pid);
    let new_user_namespace = namespaces
        .clone_flags
        .contains(nix::sched::CloneFlags::CLONE_NEWUSER);
    namespaces.join_pid()?;
    namespaces.create_time(spec)?;
    // The runtime's copy of a filter with a listener, to reach the agent.
    let notify_filter = seccomp.clone().filter(|f| f.needs_listener());
    let init_args = InitArgs {
        id: options.id.clone(),
        config: config.clone(),
        namespaces,
        seccomp,
        capabilities,
        channel: child_channel,
        exec_socket,
        console,
        no_pivot: options.no_pivot,
        no_new_keyring: options.no_new_keyring,
        preserve_fds: options.preserve_fds,
    };
    let child = match clone::fork_into(init_args.namespaces.clone_flags) {
        Ok(Some(pid)) => pid,
        Ok(None) => init::run(init_args),
        Err(e) => return Err(Error::sys("clone the container's init", e)),
    };
    cleanup.child = Some(child);
    // The parent's copy of the listener would accept `start` after the
    // init died.
    drop(init_args);

    cgroup.add_process(child.as_raw())?;
    if new_user_namespace {
        write_id_maps(child, &linux)?;
    }
    parent_channel.send(&Message::Go)?;
    let start_time = utils::proc_stat(child.as_raw())
        .map(|stat| stat.start_time)
        .ok_or_else(|| Error::Message("the container's init exited during create".into()))?;

    let state = State {
        oci_version: spec.version().clone(),
        id: options.id.clone(),
        init_pid: child.as_raw(),
        init_start_time: start_time,
        bundle: config.bundle.clone(),
        rootfs: config.rootfs.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        cgroup,
        own_pid_namespace,
        config: spec.clone(),
    };

    parent_channel.expect(&Message::RunHooks)?;
    let hook_state = HookState {
        oci_version: &state.oci_version,
        id: &state.id,
        status: "creating",
        pid: Some(state.init_pid),
        bundle: &state.bundle,
        annotations: state.annotations(),
    };
    hooks::run(hooks::Kind::Prestart, spec, &hook_state)?;
    hooks::run(hooks::Kind::CreateRuntime, spec, &hook_state)?;
    parent_channel.send(&Message::HooksDone)?;
    wait_ready(&parent_channel, notify_filter.as_ref(), &hook_state)?;

    state::save(&options.root, &state)?;
    if let Some(pid_file) = &options.pid_file {
        crate::utils::write_atomic(pid_file, state.init_pid.to_string().as_bytes())
            .context(|| format!("write pid file {}", pid_file.display()))?;
    }
    cleanup.armed = false;
    Ok(Container {
        root: options.root.clone(),
        state,
    })
}

/// Waits for the init's `Ready`. Before it, the init sends the listener fd
/// of a seccomp filter with SCMP_ACT_NOTIFY rules, which goes on to the
/// agent at `listenerPath` with `state`.
fn wait_ready(
    channel: &sync::Channel,
    notify_filter: Option<&seccomp::Filter>,
    state: &HookState,
) -> Result<()> {
    loop {
        match channel.recv_with_fd()? {
            Some((Message::Ready, _)) => return Ok(()),
            Some((Message::SeccompListener, listener)) => {
                let pid = state.pid.expect("the create state has the init's pid");
                notify::forward(channel, notify_filter, listener, pid, state)?;
            }
            Some((Message::Failed(message), _)) => return Err(Error::Message(message)),
            Some((other, _)) => {
                return Err(Error::Message(format!(
                    "expected Ready from the container's init, got {other:?}"
                )))
            }
            None => {
                return Err(Error::Message(
                    "the container's init exited before sending Ready".into(),
                ))
            }
        }
    }
}

/// Writes the uid and gid maps of the init's new user namespace; the init
/// waits for them before it does anything as root of that namespace.
fn write_id_maps(child: Pid, linux: &oci_spec::runtime::Linux) -> Result<()> {
    let format = |maps: &Option<Vec<oci_spec::runtime::LinuxIdMapping>>| -> String {
        maps.iter()
            .flatten()
            .map(|m| format!("{} {} {}\n", m.container_id(), m.host_id(), m.size()))
            .collect()
    };
    for (file, text) in [
        ("uid_map", format(linux.uid_mappings())),
        ("gid_map", format(linux.gid_mappings())),
    ] {
        let path = format!("/proc/{child}/{file}");
        fs::write(&path, &text).context(|| format!("write {path} ({:?})", text.trim()))?;
    }
    Ok(())
}
