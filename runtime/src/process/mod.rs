//! Creating a container: the runtime's side of `create`, which clones the
//! init into its namespaces and cgroup and waits until it is ready to exec.

pub mod attributes;
pub mod enter;
pub mod exec;

mod clone;
mod init;
mod notify;

use std::fs;
use std::os::fd::{AsFd, OwnedFd};
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
use crate::rootfs::{self, idmap};
use crate::seccomp;
use crate::spec::{self, Config};
use crate::state::{self, Lock, State};
use crate::sync::{self, Message};
use crate::{utils, Error, Result};
use clone::Forked;

/// Options of `create` and `run` besides the bundle.
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
    /// Id-mapped mount trees, made on the host because only the host's
    /// user namespace may id-map a mount of a disk file system.
    pub id_mapped: rootfs::IdMappedMounts,
    /// The cgroup whose v1 hierarchies the init joins itself before `Go`,
    /// or `None` when the runtime moves it.
    pub join_cgroup: Option<Manager>,
}

/// Undoes a half-done create or restore when dropped while armed: kills
/// the child, removes the cgroup and the container's directory.
pub(crate) struct Cleanup {
    dir: PathBuf,
    pub cgroup: Option<Manager>,
    pub child: Option<Pid>,
    pub armed: bool,
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

/// Creates the container as [`create`] does. When given, `console` is a
/// connected socket that receives the pty master in place of
/// `--console-socket`, because foreground `run` proxies the terminal itself.
pub fn create_with_console(options: &CreateOptions, console: Option<OwnedFd>) -> Result<Container> {
    let config = load_config(options)?;
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
    for kind in hooks::Kind::ALL {
        for hook in kind.of(spec) {
            if !hook.path().is_file() {
                return Err(Error::Spec(format!(
                    "{} hook {}: no such file",
                    kind.name(),
                    hook.path().display()
                )));
            }
        }
    }
    let id_mapped = open_id_mapped_mounts(spec, &namespaces)?;
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
    let cgroup = cgroup_manager(&config, &options.id, options.systemd_cgroup)?;
    let (dir, mut cleanup, _lock) = make_container_dir(options)?;

    let exec_socket = crate::exec_socket::listen_in(&dir)?;

    // Checked before create, so that a cgroup made by another owner is not
    // removed by the cleanup of this failed create.
    check_cgroup_use(&cgroup)?;
    cgroup.create(None)?;
    cleanup.cgroup = Some(cgroup.clone());
    // A new cgroup below a frozen parent starts frozen, and the init would
    // freeze on joining it.
    if cgroup.is_frozen().unwrap_or(false) {
        return Err(Error::Message(format!(
            "container's cgroup {} is frozen by a frozen parent cgroup: thaw the parent or use another linux.cgroupsPath",
            cgroup.path
        )));
    }

    let (parent_channel, child_channel) = sync::pair()?;
    let own_pid_namespace = namespaces.is_new(oci_spec::runtime::LinuxNamespaceType::Pid);
    let new_user_namespace = namespaces
        .clone_flags
        .contains(nix::sched::CloneFlags::CLONE_NEWUSER);
    namespaces.join_pid()?;
    namespaces.create_time(spec)?;
    // The runtime's copy of a filter with a listener, to reach the agent.
    let notify_filter = seccomp.clone().filter(|f| f.needs_listener());
    // Outside a new user namespace, where it still has the runtime's
    // credentials, the init joins its v1 cgroups itself and starts in its
    // cgroup2 directory, which spares the grace period of a pid written
    // to cgroup.procs (see Manager::join_v1_self).
    let self_join = !new_user_namespace;
    let unified = if self_join {
        cgroup.open_unified()?
    } else {
        None
    };
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
        id_mapped,
        join_cgroup: self_join.then(|| cgroup.clone()),
    };
    let forked = clone::fork_into(
        init_args.namespaces.clone_flags,
        unified.as_ref().map(AsFd::as_fd),
    );
    let (child, in_unified) = match forked {
        Ok(Forked::Parent { child, in_cgroup }) => (child, in_cgroup),
        Ok(Forked::Child) => init::run(init_args),
        Err(e) => return Err(Error::sys("clone the container's init", e)),
    };
    cleanup.child = Some(child);
    // The parent's copy of the listener would accept `start` after the
    // init died.
    drop(init_args);

    if self_join {
        parent_channel.expect(&Message::Joined)?;
        if !in_unified {
            cgroup.add_process_unified(child.as_raw())?;
        }
    } else {
        cgroup.add_process(child.as_raw())?;
    }
    // Limits go on with the init inside, as runc does: a memory limit below
    // what it already uses fails here, with the usage in the error.
    cgroup.create(linux.resources().as_ref())?;
    if new_user_namespace {
        write_id_maps(child, &linux)?;
    }
    parent_channel.send(&Message::Go)?;
    let state = new_state(
        &options.id,
        &config,
        child.as_raw(),
        cgroup,
        own_pid_namespace,
    )?;

    let handoff = || -> Result<()> {
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
        wait_ready(&parent_channel, notify_filter.as_ref(), &hook_state)
    };
    handoff().map_err(|error| explain_oom(&state.cgroup, &linux, error))?;

    record(options, &state)?;
    cleanup.armed = false;
    Ok(Container {
        root: options.root.clone(),
        state,
    })
}

/// Rejects a cgroup that is frozen already, where the init would freeze on
/// entering it, and warns about one that has processes in it. The messages
/// are runc's.
fn check_cgroup_use(cgroup: &Manager) -> Result<()> {
    if cgroup.is_frozen().unwrap_or(false) {
        return Err(Error::Message(format!(
            "container's cgroup unexpectedly frozen: thaw {} or use another linux.cgroupsPath",
            cgroup.path
        )));
    }
    let pids = cgroup.pids().unwrap_or_default();
    if !pids.is_empty() {
        tracing::warn!(
            "container's cgroup is not empty: {} process(es) found in {}",
            pids.len(),
            cgroup.path
        );
    }
    Ok(())
}

/// Replaces the error of an init that died during create with the reason
/// when the OOM killer killed it: the memory limit is below what the init
/// needs to set the container up.
fn explain_oom(cgroup: &Manager, linux: &oci_spec::runtime::Linux, error: Error) -> Error {
    if cgroup.oom_kill_count().unwrap_or(0) == 0 {
        return error;
    }
    let limit = linux
        .resources()
        .as_ref()
        .and_then(|r| r.memory().as_ref())
        .and_then(|m| m.limit());
    match limit {
        Some(limit) => Error::Spec(format!(
            "the container's init was killed by the OOM killer during create: linux.resources.memory.limit {limit} is too low, raise it"
        )),
        None => Error::Message(format!(
            "the container's init was killed by the OOM killer during create ({error})"
        )),
    }
}

/// Validates the id-mapped mounts of `spec` and, when the container gets
/// a mount namespace of its own, clones and id-maps their sources.
fn open_id_mapped_mounts(
    spec: &oci_spec::runtime::Spec,
    namespaces: &Namespaces,
) -> Result<rootfs::IdMappedMounts> {
    use oci_spec::runtime::LinuxNamespaceType;

    let linux = spec.linux().as_ref();
    let joined_path = linux
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .find(|n| n.typ() == LinuxNamespaceType::User)
        .and_then(|n| n.path().as_deref());
    let user_namespace = match joined_path {
        Some(path) => idmap::ContainerUserNamespace::Joined(path),
        None if namespaces.is_new(LinuxNamespaceType::User) => idmap::ContainerUserNamespace::New {
            uid_mappings: linux
                .and_then(|l| l.uid_mappings().as_deref())
                .unwrap_or_default(),
            gid_mappings: linux
                .and_then(|l| l.gid_mappings().as_deref())
                .unwrap_or_default(),
        },
        None => idmap::ContainerUserNamespace::None,
    };
    let requests = idmap::plan(spec, user_namespace)?;
    if requests.is_empty() || !namespaces.is_new(LinuxNamespaceType::Mount) {
        return Ok(rootfs::IdMappedMounts::default());
    }
    Ok(rootfs::IdMappedMounts::open(&requests)?)
}

/// Validates the id and loads the bundle's configuration.
pub(crate) fn load_config(options: &CreateOptions) -> Result<Config> {
    crate::id::validate(&options.id)?;
    spec::load(&options.bundle)
}

/// Describes the container's cgroup from `linux.cgroupsPath`, without creating
/// anything. With `systemd`, the path is the `slice:prefix:name` form.
pub(crate) fn cgroup_manager(config: &Config, id: &str, systemd: bool) -> Result<Manager> {
    let linux = config.spec.linux().as_ref();
    let path = linux
        .and_then(|l| l.cgroups_path().as_deref())
        .and_then(|p| p.to_str());
    if systemd {
        let path = crate::cgroups::systemd::parse(path, id)?;
        crate::cgroups::systemd::check_available(&path)?;
    }
    Ok(Manager::new(path, id)?)
}

/// Creates the container's directory under `--root` and locks it. The
/// returned guard removes the directory (and what is added to it) unless
/// it is disarmed.
pub(crate) fn make_container_dir(options: &CreateOptions) -> Result<(PathBuf, Cleanup, Lock)> {
    if options.root.exists() && !options.root.is_dir() {
        return Err(Error::Spec(format!(
            "--root {} is not a directory: give --root a directory for the containers' state",
            options.root.display()
        )));
    }
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
    let cleanup = Cleanup {
        dir: dir.clone(),
        cgroup: None,
        child: None,
        armed: true,
    };
    let lock = Lock::acquire(&options.root, &options.id)?;
    Ok((dir, cleanup, lock))
}

/// Builds the record of a container whose init is `init_pid`, reading the
/// init's start time.
pub(crate) fn new_state(
    id: &str,
    config: &Config,
    init_pid: i32,
    cgroup: Manager,
    own_pid_namespace: bool,
) -> Result<State> {
    let start_time = utils::proc_stat(init_pid)
        .map(|stat| stat.start_time)
        .ok_or_else(|| Error::Message(format!("the container's init {init_pid} exited")))?;
    Ok(State {
        oci_version: config.spec.version().clone(),
        id: id.to_string(),
        init_pid,
        init_start_time: start_time,
        bundle: config.bundle.clone(),
        rootfs: config.rootfs.clone(),
        created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
        cgroup,
        own_pid_namespace,
        config: config.spec.clone(),
    })
}

/// Saves the record under `--root` and writes `--pid-file`.
pub(crate) fn record(options: &CreateOptions, state: &State) -> Result<()> {
    state::save(&options.root, state)?;
    if let Some(pid_file) = &options.pid_file {
        crate::utils::write_atomic(pid_file, state.init_pid.to_string().as_bytes())
            .context(|| format!("write pid file {}", pid_file.display()))?;
    }
    Ok(())
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

/// Writes the uid and gid maps of the init's new user namespace. The init
/// waits for them before it acts as root of that namespace.
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
