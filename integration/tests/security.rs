//! Capabilities and seccomp.

use hull_integration::{require_root, run_and_compare, Bundle};
use serde_json::{json, Value};

const CAP_LINES: &str = "grep -E '^Cap(Inh|Prm|Eff|Bnd|Amb):' /proc/self/status";

fn set_caps(bundle: &mut Bundle, caps: Value, inheritable: bool) {
    let mut set = json!({
        "bounding": caps, "effective": caps, "permitted": caps, "ambient": caps
    });
    if inheritable {
        set["inheritable"] = caps.clone();
    }
    bundle.config["process"]["capabilities"] = set;
}

#[test]
fn capabilities_default_set() {
    require_root!();
    let bundle = Bundle::busybox_sh(CAP_LINES);
    let output = run_and_compare("default capabilities", &bundle);
    // CAP_KILL (5), CAP_NET_BIND_SERVICE (10) and CAP_AUDIT_WRITE (29).
    for line in [
        "CapPrm:\t0000000020000420",
        "CapEff:\t0000000020000420",
        "CapBnd:\t0000000020000420",
    ] {
        assert!(output.stdout.contains(line), "missing {line}:\n{output}");
    }
}

#[test]
fn capabilities_with_inheritable() {
    require_root!();
    let mut bundle = Bundle::busybox_sh(CAP_LINES);
    set_caps(
        &mut bundle,
        json!(["CAP_CHOWN", "CAP_SYS_ADMIN", "CAP_NET_RAW"]),
        true,
    );
    let output = run_and_compare("inheritable capabilities", &bundle);
    assert!(
        output.stdout.contains("CapInh:\t0000000000202001"),
        "{output}"
    );
    assert!(
        output.stdout.contains("CapAmb:\t0000000000202001"),
        "{output}"
    );
}

#[test]
fn capabilities_empty() {
    require_root!();
    let mut bundle = Bundle::busybox_sh(CAP_LINES);
    set_caps(&mut bundle, json!([]), false);
    let output = run_and_compare("no capabilities", &bundle);
    assert!(
        output.stdout.contains("CapEff:\t0000000000000000"),
        "{output}"
    );
    assert!(
        output.stdout.contains("CapBnd:\t0000000000000000"),
        "{output}"
    );
}

#[test]
fn capabilities_non_root_ambient() {
    require_root!();
    let mut bundle = Bundle::busybox_sh(CAP_LINES);
    bundle.config["process"]["user"] = json!({ "uid": 1000, "gid": 1000 });
    set_caps(&mut bundle, json!(["CAP_NET_BIND_SERVICE"]), true);
    let output = run_and_compare("ambient capabilities", &bundle);
    assert!(
        output.stdout.contains("CapEff:\t0000000000000400"),
        "{output}"
    );
    assert!(
        output.stdout.contains("CapAmb:\t0000000000000400"),
        "{output}"
    );
}

fn seccomp_blocking(names: &[&str], action: &str, errno: Option<u32>) -> Value {
    let mut rule = json!({ "names": names, "action": action });
    if let Some(errno) = errno {
        rule["errnoRet"] = json!(errno);
    }
    json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [rule]
    })
}

#[test]
fn seccomp_errno_ret() {
    require_root!();
    for (errno, text) in [
        (1, "Operation not permitted"),
        (13, "Permission denied"),
        (28, "No space left on device"),
    ] {
        let mut bundle = Bundle::busybox_sh("mkdir /dev/shm/blocked; echo $?");
        bundle.config["linux"]["seccomp"] =
            seccomp_blocking(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", Some(errno));
        let output = run_and_compare("seccomp errnoRet", &bundle);
        assert_eq!(output.stdout, "1\n", "{output}");
        assert!(output.stderr.contains(text), "errno {errno}: {output}");
    }
}

#[test]
fn seccomp_errno_default_eperm() {
    require_root!();
    let mut bundle = Bundle::busybox_sh("mkdir /dev/shm/blocked");
    bundle.config["linux"]["seccomp"] =
        seccomp_blocking(&["mkdir", "mkdirat"], "SCMP_ACT_ERRNO", None);
    let output = run_and_compare("seccomp errno", &bundle);
    assert!(
        output.stderr.contains("Operation not permitted"),
        "{output}"
    );
}

#[test]
fn seccomp_kill_exits_159() {
    require_root!();
    let mut bundle = Bundle::busybox(&["uname"]);
    bundle.config["linux"]["seccomp"] = seccomp_blocking(&["uname"], "SCMP_ACT_KILL", None);
    let output = run_and_compare("seccomp kill", &bundle);
    // 128 + SIGSYS (31).
    assert_eq!(output.code(), 159, "{output}");
}

#[test]
fn seccomp_several_rules() {
    require_root!();
    let mut bundle = Bundle::busybox_sh("echo before; mkdir /dev/shm/x; echo $?");
    bundle.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [
            { "names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1 },
            { "names": ["getpid"], "action": "SCMP_ACT_ALLOW" }
        ]
    });
    let output = run_and_compare("seccomp rules", &bundle);
    assert_eq!(output.stdout, "before\n1\n", "{output}");
}

#[test]
fn seccomp_trap_and_kill_process_exit_159() {
    require_root!();
    for action in [
        "SCMP_ACT_TRAP",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_KILL_THREAD",
    ] {
        let mut bundle = Bundle::busybox(&["uname"]);
        bundle.config["linux"]["seccomp"] = seccomp_blocking(&["uname"], action, None);
        let output = run_and_compare(action, &bundle);
        // 128 + SIGSYS (31).
        assert_eq!(output.code(), 159, "{action}: {output}");
    }
}

#[test]
fn seccomp_log_allows_the_call() {
    require_root!();
    let mut bundle = Bundle::busybox(&["uname", "-s"]);
    bundle.config["linux"]["seccomp"] = seccomp_blocking(&["uname"], "SCMP_ACT_LOG", None);
    let output = run_and_compare("seccomp log", &bundle);
    assert_eq!(output.stdout, "Linux\n", "{output}");
}

#[test]
fn seccomp_trace_without_tracer_is_enosys() {
    require_root!();
    let mut bundle = Bundle::busybox_sh("mkdir /dev/shm/traced");
    bundle.config["linux"]["seccomp"] =
        seccomp_blocking(&["mkdir", "mkdirat"], "SCMP_ACT_TRACE", Some(1));
    let output = run_and_compare("seccomp trace", &bundle);
    assert!(
        output.stderr.contains("Function not implemented"),
        "{output}"
    );
}

#[test]
fn seccomp_default_errno_with_allow_list() {
    require_root!();
    // Every x86_64 system call but mkdir is allowed, so mkdir gets the
    // default action with its errno.
    let header = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h";
    let Ok(text) = std::fs::read_to_string(header) else {
        eprintln!("skipped: {header} is missing (linux-libc-dev)");
        return;
    };
    let names: Vec<&str> = text
        .lines()
        .filter_map(|line| line.strip_prefix("#define __NR_"))
        .filter_map(|rest| rest.split_whitespace().next())
        .filter(|name| *name != "mkdir" && *name != "mkdirat")
        .collect();
    let mut bundle = Bundle::busybox_sh("mkdir /dev/shm/x 2>&1; echo $?");
    bundle.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ERRNO",
        "defaultErrnoRet": 38,
        "architectures": ["SCMP_ARCH_X86_64", "SCMP_ARCH_X86", "SCMP_ARCH_X32"],
        "syscalls": [{ "names": names, "action": "SCMP_ACT_ALLOW" }]
    });
    let output = run_and_compare("seccomp default errno", &bundle);
    assert!(
        output.stdout.contains("Function not implemented"),
        "{output}"
    );
    assert!(output.stdout.ends_with("1\n"), "{output}");
}

#[test]
fn seccomp_argument_condition() {
    require_root!();
    // kill(pid, 0) is blocked by a condition on the signal argument;
    // kill(pid, SIGCONT) passes.
    let mut bundle =
        Bundle::busybox_sh("kill -0 $$ 2>/dev/null && echo zero; kill -CONT $$ && echo cont");
    bundle.config["linux"]["seccomp"] = json!({
        "defaultAction": "SCMP_ACT_ALLOW",
        "architectures": ["SCMP_ARCH_X86_64"],
        "syscalls": [{
            "names": ["kill"],
            "action": "SCMP_ACT_ERRNO",
            "errnoRet": 1,
            "args": [{ "index": 1, "value": 0, "op": "SCMP_CMP_EQ" }]
        }]
    });
    let output = run_and_compare("seccomp args", &bundle);
    assert_eq!(output.stdout, "cont\n", "{output}");
}

#[test]
fn cwd_through_fd_never_reaches_the_host() {
    require_root!();
    // The caller keeps a host directory open on fd 5, without preserving it;
    // a cwd of /proc/self/fd/N must never land outside the container.
    let runtime = hull_integration::Runtime::hull();
    for n in 3..=16 {
        let mut bundle = Bundle::busybox(&["sh", "-c", "pwd; ls"]);
        bundle.config["process"]["cwd"] = json!(format!("/proc/self/fd/{n}"));
        bundle.write();
        let id = hull_integration::unique_id("cwdfd");
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg("exec 5</tmp; exec \"$@\"")
            .arg("sh")
            .arg(runtime.binary())
            .arg("--root")
            .arg(runtime.root())
            .args(["run", "--bundle", bundle.path().to_str().unwrap(), &id]);
        let output =
            hull_integration::output::run_command(command, std::time::Duration::from_secs(30));
        assert!(
            !output.success() || !output.stdout.contains("hull-"),
            "fd {n} reached a host directory:\n{output}"
        );
    }
}

#[test]
fn exec_cwd_through_fd_never_reaches_the_host() {
    require_root!();
    let runtime = hull_integration::Runtime::hull();
    let id = hull_integration::unique_id("execfd");
    let bundle = Bundle::busybox(&["sleep", "600"]);
    runtime.run_detached(&id, &bundle).expect_success();
    for n in 3..=16 {
        let cwd = format!("/proc/self/fd/{n}");
        let mut command = std::process::Command::new("sh");
        command
            .arg("-c")
            .arg("exec 5</tmp; exec \"$@\"")
            .arg("sh")
            .arg(runtime.binary())
            .arg("--root")
            .arg(runtime.root())
            .args(["exec", "--cwd", &cwd, &id, "ls"]);
        let output =
            hull_integration::output::run_command(command, std::time::Duration::from_secs(30));
        assert!(
            !output.success() || !output.stdout.contains("hull-"),
            "fd {n} reached a host directory:\n{output}"
        );
    }
    runtime.delete_force(&id).expect_success();
}

#[test]
fn start_container_hook_runs_under_seccomp() {
    require_root!();
    let runtime = hull_integration::Runtime::hull();
    let mut bundle = Bundle::busybox(&["true"]);
    bundle.config["linux"]["seccomp"] =
        seccomp_blocking(&["mkdir", "mkdirat"], "SCMP_ACT_KILL", None);
    bundle.config["hooks"] = json!({
        "startContainer": [{ "path": "/bin/sh", "args": ["sh", "-c", "mkdir /dev/shm/foo"] }]
    });
    let output = runtime.run(&hull_integration::unique_id("hookseccomp"), &bundle);
    assert_ne!(output.code(), 0, "{output}");
    assert!(output.stderr.contains("error running"), "{output}");
    assert!(output.stderr.contains("bad system call"), "{output}");
}
