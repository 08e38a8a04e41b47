//! Install tests: each installs a filter in a forked child, makes a syscall
//! and reports its errno as the exit status, or dies by the filter's signal.

use nix::sys::signal::Signal;
use nix::sys::wait::{waitpid, WaitStatus};
use nix::unistd::{fork, ForkResult};
use serde_json::json;

use super::tests::profile;
use super::{compile, Filter};

/// The child's syscall. It returns the errno, or 0 on success.
type Probe = fn() -> i32;

/// Installs `filter` in a forked child, runs `probe` there and returns how
/// the child ended. The child only makes syscalls, because it may have been
/// forked from a multi-threaded test process.
fn run_in_child(filter: &Filter, probe: Probe) -> WaitStatus {
    // SAFETY: the child only calls prctl, seccomp, the probe's syscall and
    // _exit, which neither allocate nor take locks.
    match unsafe { fork() }.expect("fork") {
        ForkResult::Child => {
            // SAFETY: prctl(PR_SET_NO_NEW_PRIVS) takes integer arguments only.
            let nnp = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
            if nnp != 0 || filter.install().is_err() {
                // SAFETY: _exit ends the child without running destructors.
                unsafe { libc::_exit(200) };
            }
            let errno = probe();
            // SAFETY: as above.
            unsafe { libc::_exit(errno) }
        }
        ForkResult::Parent { child } => waitpid(child, None).expect("waitpid"),
    }
}

fn errno_of(result: libc::c_long) -> i32 {
    if result < 0 {
        std::io::Error::last_os_error()
            .raw_os_error()
            .unwrap_or(255)
    } else {
        0
    }
}

fn getcwd_probe() -> i32 {
    let mut buffer = [0u8; 256];
    // SAFETY: getcwd writes at most buffer.len() bytes into buffer.
    let result = unsafe { libc::syscall(libc::SYS_getcwd, buffer.as_mut_ptr(), buffer.len()) };
    errno_of(result)
}

/// mkdirat(AT_FDCWD, "/", mode) with mode 0o700: EEXIST unless blocked.
fn mkdirat_700_probe() -> i32 {
    mkdirat_probe(0o700)
}

fn mkdirat_755_probe() -> i32 {
    mkdirat_probe(0o755)
}

fn mkdirat_probe(mode: libc::c_long) -> i32 {
    let path = c"/";
    // SAFETY: path is a NUL-terminated string that outlives the call.
    let result = unsafe { libc::syscall(libc::SYS_mkdirat, libc::AT_FDCWD, path.as_ptr(), mode) };
    errno_of(result)
}

fn exit_code(status: WaitStatus) -> Option<i32> {
    match status {
        WaitStatus::Exited(_, code) => Some(code),
        _ => None,
    }
}

fn killing_signal(status: WaitStatus) -> Option<Signal> {
    match status {
        WaitStatus::Signaled(_, signal, _) => Some(signal),
        _ => None,
    }
}

fn block_getcwd(action: &str, errno_ret: Option<u32>) -> Filter {
    let mut rule = json!({"names": ["getcwd"], "action": action});
    if let Some(errno) = errno_ret {
        rule["errnoRet"] = json!(errno);
    }
    compile(&profile(
        json!({"defaultAction": "SCMP_ACT_ALLOW", "syscalls": [rule]}),
    ))
    .unwrap()
}

#[test]
fn install_unfiltered_getcwd_succeeds() {
    let filter = compile(&profile(json!({"defaultAction": "SCMP_ACT_ALLOW"}))).unwrap();
    assert_eq!(exit_code(run_in_child(&filter, getcwd_probe)), Some(0));
}

#[test]
fn install_errno_default_eperm() {
    let filter = block_getcwd("SCMP_ACT_ERRNO", None);
    let status = run_in_child(&filter, getcwd_probe);
    assert_eq!(exit_code(status), Some(libc::EPERM));
}

#[test]
fn install_errno_custom_value() {
    let filter = block_getcwd("SCMP_ACT_ERRNO", Some(libc::ENOTSUP as u32));
    let status = run_in_child(&filter, getcwd_probe);
    assert_eq!(exit_code(status), Some(libc::ENOTSUP));
}

#[test]
fn install_default_errno_ret() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": libc::EACCES,
        "syscalls": [{"names": ["exit", "exit_group", "prctl", "seccomp", "mkdirat"],
                      "action": "SCMP_ACT_ALLOW"}]
    })))
    .unwrap();
    let status = run_in_child(&filter, getcwd_probe);
    assert_eq!(exit_code(status), Some(libc::EACCES));
}

#[test]
fn install_argument_condition() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO",
                      "errnoRet": libc::EROFS,
                      "args": [{"index": 2, "value": 0o700, "op": "SCMP_CMP_EQ"}]}]
    })))
    .unwrap();
    let blocked = run_in_child(&filter, mkdirat_700_probe);
    assert_eq!(exit_code(blocked), Some(libc::EROFS));
    let allowed = run_in_child(&filter, mkdirat_755_probe);
    assert_eq!(exit_code(allowed), Some(libc::EEXIST));
}

#[test]
fn install_kill_sends_sigsys() {
    for action in [
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
    ] {
        let status = run_in_child(&block_getcwd(action, None), getcwd_probe);
        assert_eq!(killing_signal(status), Some(Signal::SIGSYS), "{action}");
    }
}

#[test]
fn install_trap_sends_sigsys() {
    let status = run_in_child(&block_getcwd("SCMP_ACT_TRAP", None), getcwd_probe);
    assert_eq!(killing_signal(status), Some(Signal::SIGSYS));
}

#[test]
fn install_log_and_trace_run_syscall() {
    // Without a tracer, SECCOMP_RET_TRACE fails the syscall with ENOSYS.
    let traced = run_in_child(&block_getcwd("SCMP_ACT_TRACE", None), getcwd_probe);
    assert_eq!(exit_code(traced), Some(libc::ENOSYS));
    let logged = run_in_child(&block_getcwd("SCMP_ACT_LOG", None), getcwd_probe);
    assert_eq!(exit_code(logged), Some(0));
}

#[test]
fn install_with_flags() {
    let filter = compile(&profile(json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "flags": ["SECCOMP_FILTER_FLAG_TSYNC", "SECCOMP_FILTER_FLAG_LOG",
                  "SECCOMP_FILTER_FLAG_SPEC_ALLOW"],
        "syscalls": [{"names": ["getcwd"], "action": "SCMP_ACT_ERRNO"}]
    })))
    .unwrap();
    let status = run_in_child(&filter, getcwd_probe);
    assert_eq!(exit_code(status), Some(libc::EPERM));
}

#[test]
fn install_podman_default_profile() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/data/podman-seccomp.json"
    );
    let text = std::fs::read_to_string(path).expect("read podman-seccomp.json");
    let source = serde_json::from_str(&text).unwrap();
    let filter = compile(&super::tests::podman_profile(&source)).unwrap();
    assert_eq!(exit_code(run_in_child(&filter, getcwd_probe)), Some(0));
    let mkdirat = run_in_child(&filter, mkdirat_755_probe);
    assert_eq!(exit_code(mkdirat), Some(libc::EEXIST));
}
