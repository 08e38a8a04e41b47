//! The `start` and `delete` actions that containerd runs before and after
//! the shim's life as a server.
//!
//! containerd 1.6 runs `<shim> -namespace NS -address ADDR -publish-binary
//! BIN -id ID [-debug] start` in the bundle directory with the runtime
//! options on stdin, and reads the socket address from the combined stdout
//! and stderr, which it reads until they close. `start` therefore binds the
//! socket, and its gRPC twin at the same path plus `.grpc`, starts the
//! server as a detached process with stdio on /dev/null and the sockets as
//! fds 3 and 4, writes the address to the bundle's `address`
//! file (read when containerd restarts) and prints it. containerd 1.7 and
//! 2.0 to 2.2 also accept a JSON bootstrap result, which containerd 2.x
//! needs for task API version 3: `start` prints it when `MAX_SHIM_VERSION`
//! is 3 or more. containerd 2.3 and later write a protobuf
//! `BootstrapParams` on stdin instead of the options (which travel inside
//! it as an extension) and read a protobuf `BootstrapResult` from stdout.

use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use hull_proto::containerd::runtime::bootstrap::v1::{BootstrapParams, BootstrapResult};
use hull_proto::containerd::task::v3::DeleteResponse;
use prost::Message;

use crate::flags::Flags;
use crate::options::ShimOptions;

/// Directory of the shim sockets. The path is short, so the socket paths
/// stay under the 108-byte limit of `sockaddr_un`.
pub const SOCKET_DIR: &str = "/run/hull/s";

/// Annotations that put several containers in one shim, as the runc shim
/// does: a pod's containers share the shim of their sandbox.
pub const GROUP_ANNOTATIONS: &[&str] = &[
    "io.containerd.runc.v2.group",
    "io.kubernetes.cri.sandbox-id",
];

/// File in the bundle that stores the shim's address.
pub const ADDRESS_FILE: &str = "address";

/// A failed `start` or `delete`.
#[derive(Debug, thiserror::Error)]
pub enum BootstrapError {
    #[error("failed to create socket directory {path}: {source}")]
    SocketDir {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to bind shim socket {path}: {source}")]
    Bind {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to write {path}: {source}")]
    Write {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("failed to fork the shim server: {0}")]
    Fork(std::io::Error),
    #[error("failed to find the bundle: {0}")]
    Bundle(std::io::Error),
    #[error("invalid runtime options on stdin: {0}")]
    InvalidStdin(String),
    #[error(transparent)]
    Options(#[from] crate::options::OptionsError),
}

/// Computes the 64-bit FNV-1a hash of `data`, starting from `seed` mixed into
/// the offset basis.
pub fn fnv1a(data: &[u8], seed: u64) -> u64 {
    let mut hash = 0xcbf2_9ce4_8422_2325_u64 ^ seed;
    for &byte in data {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

/// Returns the socket path, in `dir`, of the shim for `group` in
/// `namespace` of the containerd at `containerd_address`: the same inputs
/// give the same path, so a second container of a group finds the running
/// shim.
pub fn socket_path(dir: &Path, containerd_address: &str, namespace: &str, group: &str) -> PathBuf {
    let key = format!("{containerd_address}\0{namespace}\0{group}");
    let name = format!(
        "{:016x}{:016x}",
        fnv1a(key.as_bytes(), 0),
        fnv1a(key.as_bytes(), 0x9e37_79b9_7f4a_7c15)
    );
    dir.join(name)
}

/// Returns the path of the gRPC socket beside the ttrpc socket at `path`.
pub fn grpc_socket_path(path: &Path) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".grpc");
    PathBuf::from(name)
}

/// Returns the group of the container whose bundle is `bundle`: the value of
/// a grouping annotation in `config.json`, else `id`.
pub fn group_of(bundle: &Path, id: &str) -> String {
    let spec: Option<serde_json::Value> = std::fs::read(bundle.join("config.json"))
        .ok()
        .and_then(|data| serde_json::from_slice(&data).ok());
    let annotations = spec.as_ref().and_then(|spec| spec.get("annotations"));
    GROUP_ANNOTATIONS
        .iter()
        .find_map(|key| annotations?.get(*key)?.as_str().map(str::to_owned))
        .unwrap_or_else(|| id.to_owned())
}

/// Returns what `start` prints: the plain address, or for a containerd that
/// sets `MAX_SHIM_VERSION` to 3 or more, the JSON bootstrap result.
pub fn start_output(address: &str, max_shim_version: Option<&str>) -> String {
    let version = max_shim_version.and_then(|value| value.trim().parse::<i32>().ok());
    match version {
        Some(version) if version >= 3 => serde_json::json!({
            "version": 3,
            "address": address,
            "protocol": "ttrpc",
        })
        .to_string(),
        _ => address.to_owned(),
    }
}

/// The standard input of `start`, decoded.
#[derive(Debug, Default, PartialEq)]
pub struct StartInput {
    /// The runtime options, when containerd sent any.
    pub options: Option<prost_types::Any>,
    /// The parameters of containerd 2.3 and later.
    pub params: Option<BootstrapParams>,
}

/// Decodes the standard input of `start`. Bytes that decode as
/// `BootstrapParams` naming this shim's id and namespace come from
/// containerd 2.3 or later. Anything else is an `Any` with the runtime
/// options: an `Any` decodes as `BootstrapParams` too, because the field
/// numbers and wire types are the same, but its id and namespace differ.
pub fn parse_start_input(
    input: &[u8],
    id: &str,
    namespace: &str,
) -> Result<StartInput, BootstrapError> {
    if input.is_empty() {
        return Ok(StartInput::default());
    }
    if let Ok(params) = BootstrapParams::decode(input) {
        if params.instance_id == id && params.namespace == namespace {
            let options = params
                .extensions
                .iter()
                .filter_map(|extension| extension.value.as_ref())
                .find(|any| {
                    !matches!(
                        ShimOptions::from_any(Some(any)),
                        Err(crate::options::OptionsError::UnsupportedType(_))
                    )
                })
                .cloned();
            return Ok(StartInput {
                options,
                params: Some(params),
            });
        }
    }
    let any = prost_types::Any::decode(input)
        .map_err(|error| BootstrapError::InvalidStdin(error.to_string()))?;
    Ok(StartInput {
        options: Some(any),
        params: None,
    })
}

/// Returns the bytes `start` writes to stdout for `input`: a protobuf
/// `BootstrapResult` for containerd 2.3 and later, else [`start_output`].
pub fn start_reply(address: &str, input: &StartInput, max_shim_version: Option<&str>) -> Vec<u8> {
    match input.params {
        Some(_) => BootstrapResult {
            version: 3,
            address: address.to_owned(),
            protocol: "ttrpc".to_owned(),
            ..Default::default()
        }
        .encode_to_vec(),
        None => start_output(address, max_shim_version).into_bytes(),
    }
}

/// Runs the `start` action and prints the shim's address.
pub fn start(flags: &Flags) -> Result<(), BootstrapError> {
    let bundle = std::env::current_dir().map_err(BootstrapError::Bundle)?;
    // containerd reads stdout and stderr together as the address, so
    // nothing may be printed here: a problem with the options fails start.
    let mut stdin = Vec::new();
    std::io::stdin()
        .read_to_end(&mut stdin)
        .map_err(|error| BootstrapError::InvalidStdin(error.to_string()))?;
    let input = parse_start_input(&stdin, &flags.id, &flags.namespace)?;
    let options = ShimOptions::from_any(input.options.as_ref())?;
    let socket_dir = input
        .params
        .as_ref()
        .and_then(|params| params.socket_dir.as_deref())
        .filter(|dir| !dir.is_empty())
        .map_or_else(|| PathBuf::from(SOCKET_DIR), PathBuf::from);
    let group = group_of(&bundle, &flags.id);
    let path = socket_path(&socket_dir, &flags.address, &flags.namespace, &group);
    let address = format!("unix://{}", path.display());
    let max_version = std::env::var("MAX_SHIM_VERSION").ok();
    let reply = start_reply(&address, &input, max_version.as_deref());

    std::fs::create_dir_all(&socket_dir).map_err(|source| BootstrapError::SocketDir {
        path: socket_dir.clone(),
        source,
    })?;
    let listener = match UnixListener::bind(&path) {
        Ok(listener) => listener,
        Err(error) if error.kind() == std::io::ErrorKind::AddrInUse => {
            if UnixStream::connect(&path).is_ok() {
                // A shim of this group runs already and serves this
                // container too.
                write_address(&bundle, &address)?;
                print_reply(&reply);
                return Ok(());
            }
            let _ = std::fs::remove_file(&path);
            UnixListener::bind(&path).map_err(|source| BootstrapError::Bind {
                path: path.clone(),
                source,
            })?
        }
        Err(source) => return Err(BootstrapError::Bind { path, source }),
    };
    // The gRPC socket is bound here too, so that a client may connect as
    // soon as `start` has printed the address.
    let grpc_path = grpc_socket_path(&path);
    let _ = std::fs::remove_file(&grpc_path);
    let grpc_listener = match UnixListener::bind(&grpc_path) {
        Ok(listener) => listener,
        Err(source) => {
            let _ = std::fs::remove_file(&path);
            return Err(BootstrapError::Bind {
                path: grpc_path,
                source,
            });
        }
    };
    let ttrpc_address = input
        .params
        .as_ref()
        .map(|params| params.containerd_ttrpc_address.as_str())
        .filter(|address| !address.is_empty());
    let listeners = Listeners {
        ttrpc: &listener,
        grpc: &grpc_listener,
    };
    let result = spawn_server(flags, &bundle, &address, listeners, ttrpc_address).and_then(|pid| {
        match options.shim_cgroup.as_str() {
            "" => Ok(()),
            cgroup => move_to_cgroup(pid, cgroup),
        }
    });
    if result.is_err() {
        let _ = std::fs::remove_file(&path);
        let _ = std::fs::remove_file(&grpc_path);
        return result;
    }
    print_reply(&reply);
    Ok(())
}

fn write_address(bundle: &Path, address: &str) -> Result<(), BootstrapError> {
    let path = bundle.join(ADDRESS_FILE);
    std::fs::write(&path, address).map_err(|source| BootstrapError::Write { path, source })
}

fn print_reply(reply: &[u8]) {
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(reply);
    let _ = stdout.flush();
}

/// The bound sockets that `start` hands to the server.
#[derive(Clone, Copy)]
struct Listeners<'a> {
    ttrpc: &'a UnixListener,
    grpc: &'a UnixListener,
}

/// Descriptor of the ttrpc socket in the server that `start` spawns.
pub const TTRPC_LISTENER_FD: i32 = 3;
/// Descriptor of the gRPC socket in the server that `start` spawns.
pub const GRPC_LISTENER_FD: i32 = 4;

/// Forks the server off this process and returns its pid. The child
/// detaches, takes the bound ttrpc socket as fd 3 and the gRPC socket as
/// fd 4, and serves. `ttrpc_address` is containerd's event address when
/// the bootstrap parameters carried it; otherwise the server reads
/// `TTRPC_ADDRESS`. A fork, where an exec of this binary would load and
/// link it a second time, saves about a millisecond of every container
/// start.
fn spawn_server(
    flags: &Flags,
    bundle: &Path,
    address: &str,
    listeners: Listeners<'_>,
    ttrpc_address: Option<&str>,
) -> Result<u32, BootstrapError> {
    write_address(bundle, address)?;
    // SAFETY: `start` runs no other thread, so the child is a complete
    // copy with no lock held by a thread that does not exist in it.
    match unsafe { libc::fork() } {
        -1 => Err(BootstrapError::Fork(std::io::Error::last_os_error())),
        0 => run_server(flags, listeners, ttrpc_address),
        pid => Ok(pid as u32),
    }
}

/// Runs the forked server: leaves containerd's session and pipes, serves
/// until Shutdown and exits.
fn run_server(flags: &Flags, listeners: Listeners<'_>, ttrpc_address: Option<&str>) -> ! {
    if detach(listeners).is_err() {
        // SAFETY: nothing of this copy needs to run at exit.
        unsafe { libc::_exit(1) }
    }
    if let Some(action) = &flags.action {
        clear_argument(action);
    }
    if let Some(ttrpc_address) = ttrpc_address {
        std::env::set_var("TTRPC_ADDRESS", ttrpc_address);
    }
    let server = Flags {
        action: None,
        socket: None,
        ..flags.clone()
    };
    let code = match crate::serve(&server) {
        Ok(()) => 0,
        Err(_) => 1,
    };
    std::process::exit(code)
}

/// Overwrites each argument equal to `argument` in this process's original
/// argument memory with NUL bytes, so that /proc/PID/cmdline and `ps` show
/// the forked server's command line without the `start` action, as they
/// would for a server started by exec. Best effort: nothing is cleared when
/// /proc/self/stat is unreadable.
fn clear_argument(argument: &str) {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return;
    };
    // The command name may contain spaces, so fields are counted from the
    // state, field 3. arg_start and arg_end are fields 48 and 49.
    let Some((_, fields)) = stat.rsplit_once(") ") else {
        return;
    };
    let fields: Vec<&str> = fields.split(' ').collect();
    let parse = |index: usize| fields.get(index - 3)?.parse::<usize>().ok();
    let (Some(start), Some(end)) = (parse(48), parse(49)) else {
        return;
    };
    if start == 0 || end <= start {
        return;
    }

    // SAFETY: [arg_start, arg_end) is this process's argument memory on
    // its initial stack, mapped and writable for the life of the process.
    // The arguments were parsed before the fork, and the bytes written are
    // NULs within that range.
    let memory = unsafe { std::slice::from_raw_parts_mut(start as *mut u8, end - start) };

    let mut offset = 0;
    while offset < memory.len() {
        let length = memory[offset..]
            .iter()
            .position(|&byte| byte == 0)
            .unwrap_or(memory.len() - offset);
        if &memory[offset..offset + length] == argument.as_bytes() {
            memory[offset..offset + length].fill(0);
        }
        offset += length + 1;
    }
}

/// Starts a new session, points stdio at /dev/null, since containerd reads
/// `start`'s stdout until every copy of it is closed, and moves the
/// listening sockets to fds 3 and 4, close-on-exec, so that no runtime or
/// container process inherits them.
fn detach(listeners: Listeners<'_>) -> std::io::Result<()> {
    let check = |rc: libc::c_int| {
        if rc == -1 {
            Err(std::io::Error::last_os_error())
        } else {
            Ok(rc)
        }
    };
    // SAFETY: plain syscalls on descriptors this process owns. The
    // listeners' originals are closed once copied and never used again.
    unsafe {
        check(libc::setsid())?;
        let null = check(libc::open(c"/dev/null".as_ptr(), libc::O_RDWR))?;
        for fd in 0..3 {
            check(libc::dup2(null, fd))?;
        }
        libc::close(null);
        // Copies above fd 4 first, so that placing one socket cannot close
        // the other.
        let ttrpc = check(libc::fcntl(
            listeners.ttrpc.as_raw_fd(),
            libc::F_DUPFD_CLOEXEC,
            10,
        ))?;
        let grpc = check(libc::fcntl(
            listeners.grpc.as_raw_fd(),
            libc::F_DUPFD_CLOEXEC,
            10,
        ))?;
        libc::close(listeners.ttrpc.as_raw_fd());
        libc::close(listeners.grpc.as_raw_fd());
        check(libc::dup3(ttrpc, TTRPC_LISTENER_FD, libc::O_CLOEXEC))?;
        check(libc::dup3(grpc, GRPC_LISTENER_FD, libc::O_CLOEXEC))?;
        libc::close(ttrpc);
        libc::close(grpc);
    }
    Ok(())
}

/// Adds `pid` to the cgroup at `path` in every mounted cgroup v1 hierarchy
/// that has it, or in the cgroup v2 hierarchy.
fn move_to_cgroup(pid: u32, path: &str) -> Result<(), BootstrapError> {
    let relative = path.trim_start_matches('/');
    let mut moved = false;
    if let Ok(entries) = std::fs::read_dir("/sys/fs/cgroup") {
        for entry in entries.flatten() {
            let procs = entry.path().join(relative).join("cgroup.procs");
            if procs.exists() && std::fs::write(&procs, pid.to_string()).is_ok() {
                moved = true;
            }
        }
    }
    let unified = Path::new("/sys/fs/cgroup")
        .join(relative)
        .join("cgroup.procs");
    if !moved {
        std::fs::write(&unified, pid.to_string()).map_err(|source| BootstrapError::Write {
            path: unified,
            source,
        })?;
    }
    Ok(())
}

/// Runs the `delete` action, which containerd calls for a shim that died:
/// force-deletes the container with the runtime, unmounts the rootfs and
/// prints a `DeleteResponse`.
pub fn delete(flags: &Flags) -> Result<(), BootstrapError> {
    let bundle = match &flags.bundle {
        Some(bundle) => bundle.clone(),
        None => std::env::current_dir().map_err(BootstrapError::Bundle)?,
    };
    let options = ShimOptions::load(&bundle)?;
    let root = options.runtime_root(&flags.namespace);
    // containerd 1.6 runs this action after every shim exit, also after a
    // Delete that removed the container. runc and hull keep a container's
    // state in `<root>/<id>` until their delete, so without that directory
    // there is nothing to delete and one runtime run is saved.
    if root.join(&flags.id).exists() {
        let status = Command::new(options.runtime_binary())
            .arg("--root")
            .arg(&root)
            .arg("--log")
            .arg(bundle.join("log.json"))
            .args(["--log-format", "json", "delete", "--force", &flags.id])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        match status {
            Ok(status) if status.success() => {}
            Ok(status) => eprintln!("runtime delete of {} exited with {status}", flags.id),
            Err(error) => eprintln!("failed to run the runtime delete of {}: {error}", flags.id),
        }
    }
    if let Err(error) = crate::mount::unmount_all(&bundle.join("rootfs")) {
        eprintln!("{error}");
    }
    remove_dead_sockets(&bundle);
    let response = DeleteResponse {
        pid: 0,
        exit_status: 128 + libc::SIGKILL as u32,
        exited_at: Some(prost_types::Timestamp::from(std::time::SystemTime::now())),
    };
    let mut stdout = std::io::stdout();
    let _ = stdout.write_all(&response.encode_to_vec());
    let _ = stdout.flush();
    Ok(())
}

/// Removes the ttrpc and gRPC sockets named in the bundle's address file
/// when no server accepts connections on them any more, as after the shim
/// was killed. A live shim of the same group keeps its sockets.
fn remove_dead_sockets(bundle: &Path) {
    let Ok(address) = std::fs::read_to_string(bundle.join(ADDRESS_FILE)) else {
        return;
    };
    let socket = PathBuf::from(address.trim().trim_start_matches("unix://"));
    let refused = matches!(
        UnixStream::connect(&socket),
        Err(error) if error.kind() == std::io::ErrorKind::ConnectionRefused
    );
    if refused {
        let _ = std::fs::remove_file(grpc_socket_path(&socket));
        let _ = std::fs::remove_file(&socket);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn runc_options(binary: &str) -> prost_types::Any {
        let options = hull_proto::containerd::runc::v1::Options {
            binary_name: binary.to_owned(),
            ..Default::default()
        };
        prost_types::Any {
            type_url: "containerd.runc.v1.Options".to_owned(),
            value: options.encode_to_vec(),
        }
    }

    #[test]
    fn legacy_stdin_holds_options() {
        let any = runc_options("/usr/bin/runc");
        let input = parse_start_input(&any.encode_to_vec(), "c1", "default").unwrap();
        assert_eq!(input.params, None);
        assert_eq!(input.options, Some(any));
        assert_eq!(
            parse_start_input(&[], "c1", "default").unwrap(),
            StartInput::default()
        );
        assert!(parse_start_input(b"\xff\xff", "c1", "default").is_err());
    }

    #[test]
    fn bootstrap_params_carry_options() {
        use hull_proto::containerd::runtime::bootstrap::v1::Extension;
        let any = runc_options("/usr/bin/crun");
        let params = BootstrapParams {
            instance_id: "c1".to_owned(),
            namespace: "default".to_owned(),
            socket_dir: Some("/run/x".to_owned()),
            extensions: vec![
                Extension {
                    value: Some(prost_types::Any {
                        type_url: "example.com/Other".to_owned(),
                        value: vec![],
                    }),
                },
                Extension {
                    value: Some(any.clone()),
                },
            ],
            ..Default::default()
        };
        let bytes = params.encode_to_vec();
        let input = parse_start_input(&bytes, "c1", "default").unwrap();
        assert_eq!(input.options, Some(any));
        assert_eq!(input.params, Some(params));
        // With another id, the same bytes decode as an options Any.
        let input = parse_start_input(&bytes, "c2", "default").unwrap();
        assert_eq!(input.params, None);

        let reply = start_reply(
            "unix:///run/x/a",
            &parse_start_input(&bytes, "c1", "default").unwrap(),
            None,
        );
        let result = BootstrapResult::decode(reply.as_slice()).unwrap();
        assert_eq!(result.version, 3);
        assert_eq!(result.protocol, "ttrpc");
        assert_eq!(result.address, "unix:///run/x/a");
    }

    #[test]
    fn socket_paths_are_stable_and_short() {
        let first = socket_path(
            Path::new(SOCKET_DIR),
            "/run/containerd/containerd.sock",
            "default",
            "c1",
        );
        let again = socket_path(
            Path::new(SOCKET_DIR),
            "/run/containerd/containerd.sock",
            "default",
            "c1",
        );
        let other = socket_path(
            Path::new(SOCKET_DIR),
            "/run/containerd/containerd.sock",
            "default",
            "c2",
        );
        assert_eq!(first, again);
        assert_ne!(first, other);
        assert!(grpc_socket_path(&first).as_os_str().len() < 108);
    }

    #[test]
    fn start_output_depends_on_max_shim_version() {
        let address = "unix:///run/hull/s/abc";
        assert_eq!(start_output(address, None), address);
        assert_eq!(start_output(address, Some("2")), address);
        let json: serde_json::Value =
            serde_json::from_str(&start_output(address, Some("3"))).unwrap();
        assert_eq!(json["version"], 3);
        assert_eq!(json["address"], address);
        assert_eq!(json["protocol"], "ttrpc");
    }

    #[test]
    fn group_comes_from_annotations() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(group_of(dir.path(), "c1"), "c1");
        std::fs::write(
            dir.path().join("config.json"),
            r#"{"annotations":{"io.kubernetes.cri.sandbox-id":"pod1"}}"#,
        )
        .unwrap();
        assert_eq!(group_of(dir.path(), "c1"), "pod1");
    }
}
