//! Seccomp user notification: a seccomp agent in this process receives the
//! container process state with the listener fd, and responds to the
//! container's notified syscalls, for `run` and `exec`, on hull and runc.

use std::io::{IoSliceMut, Read};
use std::os::fd::{AsFd, AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use hull_integration::{host, require_root, unique_id, Bundle, Output, Runtime};
use nix::poll::{poll, PollFd, PollFlags, PollTimeout};
use nix::sys::socket::{recvmsg, ControlMessageOwned, MsgFlags, UnixAddr};
use serde_json::{json, Value};
use tempfile::TempDir;

/// The `listenerMetadata` of the test profiles.
const METADATA: &str = "agent=hull-test";

/// The errno the agent returns for mkdir and mkdirat.
const MKDIR_ERRNO: i32 = libc::EXDEV;

/// How long a test waits for the agent to receive a container process state.
const STATE_TIMEOUT: Duration = Duration::from_secs(10);

/// A seccomp agent listening on a unix socket in a temporary directory.
/// Each connection brings one container process state and one listener fd.
/// A thread per listener fails mkdir and mkdirat with [`MKDIR_ERRNO`] and
/// lets every other notified syscall continue.
struct Agent {
    _dir: TempDir,
    path: PathBuf,
    states: Arc<Mutex<Vec<Value>>>,
    /// Syscall numbers of the notifications received, in order.
    notified: Arc<Mutex<Vec<i64>>>,
    stop: Arc<AtomicBool>,
    acceptor: Option<JoinHandle<()>>,
}

impl Agent {
    fn start() -> Agent {
        let dir = tempfile::Builder::new()
            .prefix("hull-agent-")
            .tempdir()
            .expect("create the agent's directory");
        let path = dir.path().join("agent.sock");
        let socket = UnixListener::bind(&path).expect("bind the agent socket");
        let states = Arc::new(Mutex::new(Vec::new()));
        let notified = Arc::new(Mutex::new(Vec::new()));
        let stop = Arc::new(AtomicBool::new(false));
        let acceptor = {
            let (states, notified, stop) = (states.clone(), notified.clone(), stop.clone());
            thread::spawn(move || accept_loop(socket, states, notified, stop))
        };
        Agent {
            _dir: dir,
            path,
            states,
            notified,
            stop,
            acceptor: Some(acceptor),
        }
    }

    /// Waits until the agent has received `count` states and returns them.
    fn wait_for_states(&self, count: usize) -> Vec<Value> {
        let deadline = Instant::now() + STATE_TIMEOUT;
        loop {
            let states = self.states.lock().unwrap().clone();
            if states.len() >= count || Instant::now() > deadline {
                return states;
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    fn notified(&self) -> Vec<i64> {
        self.notified.lock().unwrap().clone()
    }
}

impl Drop for Agent {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wakes the acceptor, which then checks the stop flag.
        let _ = UnixStream::connect(&self.path);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join();
        }
    }
}

fn accept_loop(
    socket: UnixListener,
    states: Arc<Mutex<Vec<Value>>>,
    notified: Arc<Mutex<Vec<i64>>>,
    stop: Arc<AtomicBool>,
) {
    let mut servers = vec![];
    for connection in socket.incoming() {
        if stop.load(Ordering::SeqCst) {
            break;
        }
        let Ok(connection) = connection else {
            continue;
        };
        let Some((state, listener)) = receive_state(&connection) else {
            continue;
        };
        states.lock().unwrap().push(state);
        let (notified, stop) = (notified.clone(), stop.clone());
        servers.push(thread::spawn(move || serve(listener, notified, stop)));
    }
    for server in servers {
        let _ = server.join();
    }
}

/// Reads one container process state and the fd attached to it; `None`
/// for a connection without an fd (the wake-up of [`Agent::drop`]).
fn receive_state(connection: &UnixStream) -> Option<(Value, OwnedFd)> {
    let mut buffer = vec![0u8; 64 * 1024];
    let mut space = nix::cmsg_space!([RawFd; 1]);
    let mut iov = [IoSliceMut::new(&mut buffer)];
    let message = recvmsg::<UnixAddr>(
        connection.as_raw_fd(),
        &mut iov,
        Some(&mut space),
        MsgFlags::MSG_CMSG_CLOEXEC,
    )
    .ok()?;

    let mut fds = vec![];
    for control in message.cmsgs().ok()? {
        if let ControlMessageOwned::ScmRights(received) = control {
            fds.extend(received);
        }
    }
    let len = message.bytes;
    // SAFETY: every fd was just received with SCM_RIGHTS and is owned here.
    let mut fds: Vec<OwnedFd> = fds
        .into_iter()
        .map(|fd| unsafe { OwnedFd::from_raw_fd(fd) })
        .collect();
    assert!(
        fds.len() <= 1,
        "more than one fd in the container process state"
    );
    let listener = fds.pop()?;

    // The state may span several reads. runc 1.1.5 keeps the connection
    // open after sending it, so the end of the JSON ends the read, not EOF.
    let mut payload = buffer[..len].to_vec();
    let state = loop {
        match serde_json::from_slice::<Value>(&payload) {
            Ok(state) => break state,
            Err(e) if e.is_eof() => {
                let mut more = [0u8; 4096];
                let read = (&mut &*connection)
                    .read(&mut more)
                    .expect("read the rest of the container process state");
                assert!(read > 0, "the container process state ends early: {e}");
                payload.extend_from_slice(&more[..read]);
            }
            Err(e) => panic!("the container process state is not JSON: {e}"),
        }
    };
    Some((state, listener))
}

/// Responds to the notifications of one listener until every process of
/// its filter has exited, or the agent stops.
fn serve(listener: OwnedFd, notified: Arc<Mutex<Vec<i64>>>, stop: Arc<AtomicBool>) {
    while !stop.load(Ordering::SeqCst) {
        let mut fds = [PollFd::new(listener.as_fd(), PollFlags::POLLIN)];
        match poll(&mut fds, PollTimeout::from(100u16)) {
            Ok(0) | Err(nix::Error::EINTR) => continue,
            Ok(_) => {}
            Err(e) => panic!("poll the seccomp listener: {e}"),
        }
        let events = fds[0].revents().unwrap_or(PollFlags::empty());
        if events.contains(PollFlags::POLLIN) {
            respond_once(&listener, &notified);
        } else if events.intersects(PollFlags::POLLHUP | PollFlags::POLLERR) {
            return;
        }
    }
}

fn respond_once(listener: &OwnedFd, notified: &Mutex<Vec<i64>>) {
    // SAFETY: seccomp_notif is plain data, and the kernel requires it zeroed.
    let mut request: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: NOTIF_RECV writes one seccomp_notif into the live local.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut request,
        )
    };
    if rc != 0 {
        // ENOENT: the process was killed between poll and receive.
        return;
    }
    let nr = i64::from(request.data.nr);
    notified.lock().unwrap().push(nr);

    // SAFETY: seccomp_notif_resp is plain data.
    let mut response: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
    response.id = request.id;
    if nr == libc::SYS_mkdir || nr == libc::SYS_mkdirat {
        response.error = -MKDIR_ERRNO;
    } else {
        response.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32;
    }
    // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from the live local.
    // It fails with ENOENT when the process died meanwhile, which is fine.
    unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut response,
        )
    };
}

/// Builds a profile that allows everything but mkdir, mkdirat and chdir, which
/// notify the agent at `listener`.
fn notify_profile(listener: &Path) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "listenerPath": listener,
        "listenerMetadata": METADATA,
        "syscalls": [{"names": ["mkdir", "mkdirat", "chdir"], "action": "SCMP_ACT_NOTIFY"}]
    })
}

/// Makes a directory (the agent fails it) and changes into one (the agent
/// lets it continue), printing both exit statuses.
const SCRIPT: &str = "mkdir /tmp/notified; echo mkdir=$?; cd /tmp && echo cd=$?";

fn assert_script_output(what: &str, output: &Output) {
    assert!(output.stdout.contains("mkdir=1"), "{what}:\n{output}");
    assert!(output.stdout.contains("cd=0"), "{what}:\n{output}");
    // busybox prints strerror(EXDEV).
    assert!(
        output.stderr.contains("Invalid cross-device link"),
        "{what}:\n{output}"
    );
}

/// Checks the fields of a container process state that both runtimes fill
/// alike, and returns its `pid`.
fn check_state(what: &str, state: &Value, id: &str, status: &str, bundle: &Bundle) -> i64 {
    assert!(state["ociVersion"].is_string(), "{what}: {state}");
    assert_eq!(state["fds"], json!(["seccompFd"]), "{what}: {state}");
    assert_eq!(state["metadata"], json!(METADATA), "{what}: {state}");
    let pid = state["pid"].as_i64().unwrap_or(0);
    assert!(pid > 0, "{what}: {state}");
    let container = &state["state"];
    assert!(container["ociVersion"].is_string(), "{what}: {state}");
    assert_eq!(container["id"], json!(id), "{what}: {state}");
    assert_eq!(container["status"], json!(status), "{what}: {state}");
    let bundle_path = bundle.path().to_string_lossy();
    assert_eq!(container["bundle"], json!(bundle_path), "{what}: {state}");
    pid
}

fn assert_mkdir_and_chdir_notified(what: &str, notified: &[i64]) {
    assert!(
        notified
            .iter()
            .any(|nr| *nr == libc::SYS_mkdir || *nr == libc::SYS_mkdirat),
        "{what}: mkdir not notified: {notified:?}"
    );
    assert!(
        notified.contains(&libc::SYS_chdir),
        "{what}: chdir not notified: {notified:?}"
    );
}

#[test]
fn notify_run_answered_by_agent() {
    require_root!();
    for no_new_privileges in [true, false] {
        for runtime in [Runtime::hull(), Runtime::runc()] {
            let what = format!(
                "{} run, noNewPrivileges {no_new_privileges}",
                runtime.name()
            );
            let agent = Agent::start();
            let mut bundle = Bundle::busybox_sh(SCRIPT);
            bundle.config["process"]["noNewPrivileges"] = json!(no_new_privileges);
            bundle.config["linux"]["seccomp"] = notify_profile(&agent.path);
            let id = unique_id("notify-run");
            let output = runtime.run(&id, &bundle);
            output.expect_code(0);
            assert_script_output(&what, &output);

            let states = agent.wait_for_states(1);
            assert_eq!(states.len(), 1, "{what}: {states:?}");
            let pid = check_state(&what, &states[0], &id, "creating", &bundle);
            assert_eq!(states[0]["state"]["pid"], json!(pid), "{what}");
            if runtime.name() == "hull" {
                // hull reports the config's version, as in its hook state.
                assert_eq!(states[0]["ociVersion"], json!("1.0.2-dev"), "{what}");
            }
            assert_mkdir_and_chdir_notified(&what, &agent.notified());
            runtime.delete_force(&id);
        }
    }
}

#[test]
fn notify_exec_answered_by_agent() {
    require_root!();
    for runtime in [Runtime::hull(), Runtime::runc()] {
        let what = format!("{} exec", runtime.name());
        let agent = Agent::start();
        let mut bundle = Bundle::busybox(&["sleep", "600"]);
        bundle.config["linux"]["seccomp"] = notify_profile(&agent.path);
        let id = unique_id("notify-exec");
        runtime.run_detached(&id, &bundle).expect_success();
        let init_pid = runtime.state_json(&id)["pid"].as_i64().unwrap_or(0);

        let output = runtime.exec(&["exec", &id, "sh", "-c", SCRIPT]);
        output.expect_code(0);
        assert_script_output(&what, &output);

        let states = agent.wait_for_states(2);
        assert_eq!(states.len(), 2, "{what}: {states:?}");
        let created = check_state(&what, &states[0], &id, "creating", &bundle);
        assert_eq!(created, init_pid, "{what}");
        let exec_pid = check_state(&what, &states[1], &id, "running", &bundle);
        assert_ne!(
            exec_pid, init_pid,
            "{what}: the exec'd process has its own pid"
        );
        assert_eq!(states[1]["state"]["pid"], json!(init_pid), "{what}");
        assert_mkdir_and_chdir_notified(&what, &agent.notified());
        runtime.delete_force(&id).expect_success();
    }
}

#[test]
fn notify_exec_without_agent_fails() {
    require_root!();
    for runtime in [Runtime::hull(), Runtime::runc()] {
        let what = format!("{} exec without agent", runtime.name());
        let agent = Agent::start();
        let listener = agent.path.clone();
        let mut bundle = Bundle::busybox(&["sleep", "600"]);
        bundle.config["linux"]["seccomp"] = notify_profile(&listener);
        let id = unique_id("notify-gone");
        runtime.run_detached(&id, &bundle).expect_success();
        assert_eq!(agent.wait_for_states(1).len(), 1, "{what}");
        // Stopping the agent removes its socket.
        drop(agent);

        let marker = format!("echo {id}");
        let output = runtime.exec(&["exec", &id, "sh", "-c", &marker]);
        assert!(!output.success(), "{what}:\n{output}");
        if runtime.name() == "hull" {
            assert!(
                output.stderr.contains(&listener.display().to_string()),
                "{what}: the error names the socket:\n{output}"
            );
            assert!(
                host::pids_with_cmdline(&marker).is_empty(),
                "{what}: exec process left: {:?}",
                host::pids_with_cmdline(&marker)
            );
        }
        assert_eq!(runtime.status(&id), "running", "{what}");
        runtime.delete_force(&id).expect_success();
    }
}

#[test]
fn notify_exec_into_paused_rejected() {
    require_root!();
    let runtime = Runtime::hull();
    let agent = Agent::start();
    let mut bundle = Bundle::busybox(&["sleep", "600"]);
    bundle.config["linux"]["seccomp"] = notify_profile(&agent.path);
    let id = unique_id("notify-paused");
    runtime.run_detached(&id, &bundle).expect_success();
    runtime.exec(&["pause", &id]).expect_success();

    let output = runtime.exec(&["exec", "--ignore-paused", &id, "true"]);
    assert!(!output.success(), "{output}");
    assert!(output.stderr.contains("SCMP_ACT_NOTIFY"), "{output}");
    assert_eq!(
        agent.wait_for_states(1).len(),
        1,
        "only create reached the agent"
    );

    runtime.exec(&["resume", &id]).expect_success();
    runtime.delete_force(&id).expect_success();
}

#[test]
fn notify_missing_agent_fails_create() {
    require_root!();
    let missing = tempfile::tempdir().expect("create a directory for the socket path");
    let listener = missing.path().join("no-agent.sock");
    for runtime in [Runtime::hull(), Runtime::runc()] {
        let what = format!("{} create", runtime.name());
        let mut bundle = Bundle::busybox(&["true"]);
        bundle.config["linux"]["seccomp"] = notify_profile(&listener);
        let id = unique_id("notify-missing");
        let output = runtime.create(&id, &bundle);
        assert!(!output.success(), "{what}:\n{output}");
        if runtime.name() != "hull" {
            continue;
        }
        assert!(
            output.stderr.contains(&listener.display().to_string()),
            "{what}: the error names the socket:\n{output}"
        );
        assert!(output.stderr.contains("listenerPath"), "{what}:\n{output}");
        assert!(!runtime.state_dir(&id).exists(), "{what}: state left");
        assert!(
            host::cgroup_dirs(&id).is_empty(),
            "{what}: cgroups left: {:?}",
            host::cgroup_dirs(&id)
        );
        assert!(
            host::pids_with_cmdline(&id).is_empty(),
            "{what}: processes left: {:?}",
            host::pids_with_cmdline(&id)
        );
        assert!(!runtime.state(&id).success(), "{what}: state found");
    }
}

#[test]
fn notify_without_listener_path_rejected() {
    require_root!();
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&["true"]);
    let mut profile = notify_profile(Path::new("/unused"));
    profile.as_object_mut().unwrap().remove("listenerPath");
    profile.as_object_mut().unwrap().remove("listenerMetadata");
    bundle.config["linux"]["seccomp"] = profile;
    let id = unique_id("notify-no-path");
    let output = runtime.create(&id, &bundle);
    assert!(!output.success(), "{output}");
    assert!(output.stderr.contains("listenerPath"), "{output}");
    assert!(!runtime.state_dir(&id).exists(), "state left:\n{output}");
}

#[test]
fn features_list_notify() {
    require_root!();
    let output = Runtime::hull().exec(&["features"]);
    output.expect_success();
    let features: Value = serde_json::from_str(&output.stdout)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{output}"));
    let seccomp = &features["linux"]["seccomp"];
    let contains = |list: &str, name: &str| {
        seccomp[list]
            .as_array()
            .is_some_and(|items| items.iter().any(|item| item == name))
    };
    assert!(contains("actions", "SCMP_ACT_NOTIFY"), "{seccomp}");
    let flag = "SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV";
    assert!(contains("knownFlags", flag), "{seccomp}");
    assert!(contains("supportedFlags", flag), "{seccomp}");

    // runc 1.1.5 lists the same actions.
    let runc_output = Runtime::runc().exec(&["features"]);
    runc_output.expect_success();
    let runc: Value = serde_json::from_str(&runc_output.stdout)
        .unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{runc_output}"));
    assert_eq!(
        seccomp["actions"], runc["linux"]["seccomp"]["actions"],
        "hull and runc list different seccomp actions"
    );
}
