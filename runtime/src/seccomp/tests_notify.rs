//! SCMP_ACT_NOTIFY: compile checks, and a filter installed in a forked child
//! whose notifications this process receives and responds to through the
//! listener fd.

use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};

use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, pipe, read, ForkResult, Pid};
use serde_json::{json, Value};

use super::tests::{profile, ret_errno, run_native, RET_ALLOW};
use super::{compile, Filter, SeccompError};

const RET_USER_NOTIF: u32 = libc::SECCOMP_RET_USER_NOTIF;
const NEW_LISTENER: u32 = libc::SECCOMP_FILTER_FLAG_NEW_LISTENER as u32;

/// Builds a profile that allows all but `names`, which notify.
fn notify_profile(names: &[&str]) -> Value {
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": names, "action": "SCMP_ACT_NOTIFY"}]
    })
}

#[test]
fn notify_compiles_to_user_notif() {
    let filter = compile(&profile(notify_profile(&["getcwd"]))).unwrap();
    assert_eq!(
        run_native(filter.program(), "getcwd", [0; 6]),
        RET_USER_NOTIF
    );
    assert_eq!(run_native(filter.program(), "getpid", [0; 6]), RET_ALLOW);
    assert!(filter.needs_listener());
    let expected = NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_SPEC_ALLOW as u32;
    assert_eq!(filter.flags(), expected);
    assert_eq!(
        filter.listener_path(),
        Some(std::path::Path::new("/run/agent.sock"))
    );
}

#[test]
fn notify_requires_listener_path() {
    let mut value = notify_profile(&["getcwd"]);
    value.as_object_mut().unwrap().remove("listenerPath");
    let error = compile(&profile(value)).unwrap_err();
    assert!(
        matches!(error, SeccompError::MissingListenerPath),
        "{error}"
    );
    assert!(error.to_string().contains("listenerPath"), "{error}");
}

#[test]
fn listener_path_without_notify_ignored() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap();
    assert!(!filter.needs_listener());
    assert_eq!(filter.flags() & NEW_LISTENER, 0);
}

#[test]
fn notify_default_action_rejected() {
    let error = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_NOTIFY",
        "listenerPath": "/run/agent.sock"
    })))
    .unwrap_err();
    assert!(
        matches!(error, SeccompError::NotifyDefaultAction),
        "{error}"
    );
}

#[test]
fn notify_for_handoff_syscalls_rejected() {
    for name in ["write", "sendmsg"] {
        let error = compile(&profile(notify_profile(&["getcwd", name]))).unwrap_err();
        assert!(
            matches!(error, SeccompError::NotifyForbiddenSyscall { name: ref n } if n == name),
            "{name}: {error}"
        );
    }
}

#[test]
fn wait_killable_recv_needs_notify() {
    let mut value = notify_profile(&["getcwd"]);
    value["flags"] = json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
    let filter = compile(&profile(value)).unwrap();
    let expected = NEW_LISTENER | libc::SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV as u32;
    assert_eq!(filter.flags(), expected);

    let error = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]
    })))
    .unwrap_err();
    assert!(
        matches!(error, SeccompError::FlagNeedsNotify { .. }),
        "{error}"
    );
}

#[test]
fn tsync_with_notify_adds_esrch() {
    let mut value = notify_profile(&["getcwd"]);
    value["flags"] = json!(["SECCOMP_FILTER_FLAG_TSYNC"]);
    let filter = compile(&profile(value)).unwrap();
    let expected = libc::SECCOMP_FILTER_FLAG_TSYNC
        | libc::SECCOMP_FILTER_FLAG_NEW_LISTENER
        | libc::SECCOMP_FILTER_FLAG_TSYNC_ESRCH;
    assert_eq!(filter.flags(), expected as u32);
}

/// mkdirat rules on mode (argument 2) that all match mode 0o700.
fn mkdirat_rules(actions: &[&str]) -> Value {
    let rules: Vec<Value> = actions
        .iter()
        .map(|action| {
            json!({
                "names": ["mkdirat"], "action": action,
                "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]
            })
        })
        .collect();
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "listenerPath": "/run/agent.sock",
        "syscalls": rules
    })
}

#[test]
fn notify_precedence_between_errno_and_trace() {
    let args = [0, 0, 0o700, 0, 0, 0];
    // ERRNO outranks USER_NOTIF, in either profile order.
    for actions in [
        ["SCMP_ACT_NOTIFY", "SCMP_ACT_ERRNO"],
        ["SCMP_ACT_ERRNO", "SCMP_ACT_NOTIFY"],
    ] {
        let filter = compile(&profile(mkdirat_rules(&actions))).unwrap();
        let result = run_native(filter.program(), "mkdirat", args);
        assert_eq!(result, ret_errno(libc::EPERM), "{actions:?}");
    }
    // USER_NOTIF outranks TRACE and LOG.
    for actions in [
        ["SCMP_ACT_TRACE", "SCMP_ACT_NOTIFY"],
        ["SCMP_ACT_LOG", "SCMP_ACT_NOTIFY"],
    ] {
        let filter = compile(&profile(mkdirat_rules(&actions))).unwrap();
        let result = run_native(filter.program(), "mkdirat", args);
        assert_eq!(result, RET_USER_NOTIF, "{actions:?}");
    }
    // A mode that no condition matches gets the default action.
    let filter = compile(&profile(mkdirat_rules(&["SCMP_ACT_NOTIFY"]))).unwrap();
    let other_mode = [0, 0, 0o755, 0, 0, 0];
    assert_eq!(
        run_native(filter.program(), "mkdirat", other_mode),
        RET_ALLOW
    );
}

/// The test agent's response to the child's notified getcwd.
#[derive(Clone, Copy)]
enum Answer {
    Errno(i32),
    Continue,
}

/// Installs `filter` in a forked child, which writes the listener's fd
/// number to a pipe and calls getcwd. This process takes the listener with
/// pidfd_getfd, receives the notification, checks it, and sends `answer`. Returns
/// how the child ended: its exit status is getcwd's errno, 0 on success.
fn answer_child(filter: &Filter, answer: Answer) -> WaitStatus {
    let (read_end, write_end) = pipe().expect("pipe");
    // SAFETY: the child only calls prctl, seccomp, write, getcwd and _exit,
    // which neither allocate nor take locks, so forking from the
    // multi-threaded test process is sound.
    let child = match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
            let nnp = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let listener = match filter.install() {
                Ok(Some(listener)) if nnp == 0 => listener,
                // SAFETY: _exit ends the child without running destructors.
                _ => unsafe { libc::_exit(200) },
            };
            let number = listener.as_raw_fd().to_ne_bytes();
            // SAFETY: write reads 4 bytes from a live local array.
            unsafe { libc::write(write_end.as_raw_fd(), number.as_ptr().cast(), 4) };
            let mut buffer = [0u8; 256];
            // SAFETY: getcwd writes at most buffer.len() bytes into buffer.
            let result =
                unsafe { libc::syscall(libc::SYS_getcwd, buffer.as_mut_ptr(), buffer.len()) };
            let errno = if result < 0 {
                std::io::Error::last_os_error()
                    .raw_os_error()
                    .unwrap_or(255)
            } else {
                0
            };
            // SAFETY: as above.
            unsafe { libc::_exit(errno) }
        }
        ForkResult::Parent { child } => child,
    };
    drop(write_end);

    let mut number = [0u8; 4];
    let len = read(&read_end, &mut number).expect("read the listener fd number");
    if len == 4 {
        let listener = take_fd(child, i32::from_ne_bytes(number));
        serve_one(&listener, child, answer);
    }
    waitpid(child, None).expect("waitpid")
}

/// Copies fd `number` of process `pid` into this process.
fn take_fd(pid: Pid, number: i32) -> OwnedFd {
    // SAFETY: pidfd_open takes integer arguments only.
    let pidfd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid.as_raw(), 0) };
    assert!(
        pidfd >= 0,
        "pidfd_open: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: pidfd_open returned a new fd owned by nothing else.
    let pidfd = unsafe { OwnedFd::from_raw_fd(pidfd as i32) };
    // SAFETY: pidfd_getfd takes integer arguments only.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_getfd, pidfd.as_raw_fd(), number, 0) };
    assert!(fd >= 0, "pidfd_getfd: {}", std::io::Error::last_os_error());
    // SAFETY: pidfd_getfd returned a new fd owned by nothing else.
    unsafe { OwnedFd::from_raw_fd(fd as i32) }
}

/// Receives one notification on `listener`, checks that it is getcwd of
/// `child`, and sends `answer`.
fn serve_one(listener: &OwnedFd, child: Pid, answer: Answer) {
    // SAFETY: seccomp_notif is plain data; the kernel requires it zeroed.
    let mut request: libc::seccomp_notif = unsafe { std::mem::zeroed() };
    // SAFETY: NOTIF_RECV writes one seccomp_notif into the live local.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_RECV,
            &mut request,
        )
    };
    assert_eq!(rc, 0, "NOTIF_RECV: {}", std::io::Error::last_os_error());
    assert_eq!(i64::from(request.data.nr), libc::SYS_getcwd);
    assert_eq!(request.pid, child.as_raw() as u32);

    // SAFETY: seccomp_notif_resp is plain data.
    let mut response: libc::seccomp_notif_resp = unsafe { std::mem::zeroed() };
    response.id = request.id;
    match answer {
        Answer::Errno(errno) => response.error = -errno,
        Answer::Continue => response.flags = libc::SECCOMP_USER_NOTIF_FLAG_CONTINUE as u32,
    }
    // SAFETY: NOTIF_SEND reads one seccomp_notif_resp from the live local.
    let rc = unsafe {
        libc::ioctl(
            listener.as_raw_fd(),
            libc::SECCOMP_IOCTL_NOTIF_SEND,
            &mut response,
        )
    };
    assert_eq!(rc, 0, "NOTIF_SEND: {}", std::io::Error::last_os_error());
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    }
}

#[test]
fn install_returns_listener() {
    let filter = compile(&profile(notify_profile(&["getcwd"]))).unwrap();
    let answered = answer_child(&filter, Answer::Errno(libc::EXDEV));
    assert_eq!(exit_code(answered), Some(libc::EXDEV));
    let continued = answer_child(&filter, Answer::Continue);
    assert_eq!(exit_code(continued), Some(0));
}

#[test]
fn install_with_wait_killable_recv() {
    let mut value = notify_profile(&["getcwd"]);
    value["flags"] = json!(["SECCOMP_FILTER_FLAG_WAIT_KILLABLE_RECV"]);
    let filter = compile(&profile(value)).unwrap();
    let status = answer_child(&filter, Answer::Errno(libc::EROFS));
    assert_eq!(exit_code(status), Some(libc::EROFS));
}

#[test]
fn install_tsync_with_notify() {
    let mut value = notify_profile(&["getcwd"]);
    value["flags"] = json!(["SECCOMP_FILTER_FLAG_TSYNC"]);
    let filter = compile(&profile(value)).unwrap();
    let status = answer_child(&filter, Answer::Errno(libc::ENOLINK));
    assert_eq!(exit_code(status), Some(libc::ENOLINK));
}

#[test]
fn install_without_notify_returns_none() {
    let filter = compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW"}))).unwrap();
    assert!(!filter.needs_listener());
    // SAFETY: the child only calls prctl, seccomp and _exit.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
            unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            let code = match filter.install() {
                Ok(None) => 0,
                Ok(Some(_)) => 1,
                Err(_) => 2,
            };
            // SAFETY: _exit ends the child without running destructors.
            unsafe { libc::_exit(code) }
        }
        ForkResult::Parent { child } => {
            let status = waitpid(child, None).expect("waitpid");
            assert_eq!(exit_code(status), Some(0));
        }
    }
}
