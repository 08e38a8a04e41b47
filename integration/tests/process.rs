//! `run` in the foreground: output, exit status and process settings.

use hull_integration::{require_root, run_and_compare, unique_id, Bundle, Rootfs, Runtime};
use serde_json::json;

#[test]
fn run_echo_busybox() {
    require_root!();
    let bundle = Bundle::busybox(&["echo", "hi"]);
    let output = run_and_compare("echo hi", &bundle);
    assert_eq!(output.stdout, "hi\n");
    assert_eq!(output.code(), 0);
}

#[test]
fn run_id_busybox() {
    require_root!();
    let bundle = Bundle::busybox(&["id"]);
    let output = run_and_compare("id", &bundle);
    assert_eq!(output.stdout, "uid=0(root) gid=0(root)\n");
}

#[test]
fn run_debian_commands() {
    require_root!();
    for args in [
        &["cat", "/etc/os-release"][..],
        &["id"],
        &["echo", "hi"],
        &["sh", "-c", "ls / && cat /etc/debian_version"],
    ] {
        let bundle = Bundle::new(Rootfs::Debian, args);
        let output = run_and_compare(&args.join(" "), &bundle);
        assert_eq!(output.code(), 0, "{output}");
    }
}

#[test]
fn run_os_release_debian() {
    require_root!();
    let bundle = Bundle::new(Rootfs::Debian, &["cat", "/etc/os-release"]);
    let output = run_and_compare("os-release", &bundle);
    assert!(output.stdout.contains("bookworm"), "{output}");
}

#[test]
fn run_exit_codes() {
    require_root!();
    let cases = [
        ("exit 0", 0),
        ("exit 3", 3),
        ("exit 255", 255),
        // The shell is pid 1 of its pid namespace, which ignores signals
        // from inside the namespace that it has no handler for.
        ("kill -9 $$", 0),
        ("sh -c 'kill -9 $$'; exit $?", 137),
    ];
    for (script, code) in cases {
        let bundle = Bundle::busybox_sh(script);
        let output = run_and_compare(script, &bundle);
        assert_eq!(output.code(), code, "{script}:\n{output}");
    }
}

#[test]
fn run_init_killed_by_signal() {
    require_root!();
    // Without a pid namespace the shell is an ordinary process and SIGKILL
    // ends it; the runtime then exits with 128 + 9.
    for (script, code) in [("kill -9 $$", 137), ("kill -15 $$", 143)] {
        let mut bundle = Bundle::busybox_sh(script);
        bundle.remove_namespace("pid");
        let output = run_and_compare(script, &bundle);
        assert_eq!(output.code(), code, "{script}:\n{output}");
    }
}

#[test]
fn run_missing_program() {
    require_root!();
    let bundle = Bundle::busybox(&["/no/such/program"]);
    let runtime = Runtime::hull();
    let id = unique_id("noprog");
    let output = runtime.run(&id, &bundle);
    // runc 1.1.5 fails `run` with exit code 1 and names the program.
    assert_eq!(output.code(), 1, "{output}");
    assert!(output.stderr.contains("/no/such/program"), "{output}");
    runtime.delete_force(&id);
}

#[test]
fn process_cwd_env_args() {
    require_root!();
    let mut bundle = Bundle::busybox_sh(r#"pwd; echo "$FOO|$BAR"; echo "$0" "$@""#);
    bundle.set_args(&[
        "sh",
        "-c",
        r#"pwd; echo "$FOO|$BAR"; echo "$0" "$@""#,
        "zero",
        "one two",
        "three",
    ]);
    bundle.config["process"]["cwd"] = json!("/tmp");
    bundle.config["process"]["env"] = json!(["PATH=/bin", "FOO=foo value", "BAR="]);
    let output = run_and_compare("cwd env args", &bundle);
    assert_eq!(output.stdout, "/tmp\nfoo value|\nzero one two three\n");
}

#[test]
fn process_cwd_created_when_missing() {
    require_root!();
    let mut bundle = Bundle::new(Rootfs::BusyboxCopy, &["pwd"]);
    bundle.config["process"]["cwd"] = json!("/new/work/dir");
    let output = run_and_compare("missing cwd", &bundle);
    assert_eq!(output.stdout, "/new/work/dir\n");
}

#[test]
fn process_user_and_groups() {
    require_root!();
    let script = "id; grep -E '^(Uid|Gid|Groups|Umask):' /proc/self/status; umask; touch /tmp/f && stat -c %a /tmp/f";
    let mut bundle = Bundle::busybox_sh(script);
    bundle.config["process"]["user"] = json!({
        "uid": 1000, "gid": 1000, "additionalGids": [10, 29, 1001], "umask": 0o22
    });
    bundle.add_mount(json!({
        "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["mode=1777"]
    }));
    let output = run_and_compare("user", &bundle);
    assert!(
        output
            .stdout
            .contains("uid=1000(hulluser) gid=1000(hulluser)"),
        "{output}"
    );
    assert!(output.stdout.contains("Groups:\t10 29 1001"), "{output}");
    assert!(output.stdout.contains("Umask:\t0022"), "{output}");
    assert!(output.stdout.ends_with("0022\n644\n"), "{output}");
}

#[test]
fn process_rlimits() {
    require_root!();
    let mut bundle = Bundle::busybox(&["cat", "/proc/self/limits"]);
    bundle.config["process"]["rlimits"] = json!([
        { "type": "RLIMIT_NOFILE", "soft": 512, "hard": 1024 },
        { "type": "RLIMIT_NPROC", "soft": 100, "hard": 200 },
        { "type": "RLIMIT_CORE", "soft": 0, "hard": 0 },
        { "type": "RLIMIT_STACK", "soft": 8388608, "hard": 16777216 }
    ]);
    let output = run_and_compare("rlimits", &bundle);
    let line = |name: &str| {
        output
            .stdout
            .lines()
            .find(|l| l.starts_with(name))
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .unwrap_or_default()
    };
    assert_eq!(line("Max open files"), "Max open files 512 1024 files");
    assert_eq!(line("Max processes"), "Max processes 100 200 processes");
    assert_eq!(line("Max core file size"), "Max core file size 0 0 bytes");
    assert_eq!(
        line("Max stack size"),
        "Max stack size 8388608 16777216 bytes"
    );
}

#[test]
fn process_no_new_privileges() {
    require_root!();
    for (value, expected) in [(true, "NoNewPrivs:\t1\n"), (false, "NoNewPrivs:\t0\n")] {
        let mut bundle = Bundle::busybox(&["grep", "NoNewPrivs", "/proc/self/status"]);
        bundle.config["process"]["noNewPrivileges"] = json!(value);
        let output = run_and_compare("noNewPrivileges", &bundle);
        assert_eq!(output.stdout, expected);
    }
}

#[test]
fn process_oom_score_adj() {
    require_root!();
    let mut bundle = Bundle::busybox(&["cat", "/proc/self/oom_score_adj"]);
    bundle.config["process"]["oomScoreAdj"] = json!(500);
    let output = run_and_compare("oomScoreAdj", &bundle);
    assert_eq!(output.stdout, "500\n");
}

#[test]
fn process_hostname() {
    require_root!();
    let mut bundle = Bundle::busybox_sh("hostname");
    bundle.config["hostname"] = json!("box-one");
    let output = run_and_compare("hostname", &bundle);
    assert_eq!(output.stdout, "box-one\n");
}

/// runc 1.1.5 ignores `domainname` and leaves "(none)", so only hull is
/// checked.
#[test]
fn process_domainname() {
    require_root!();
    let mut bundle = Bundle::busybox(&["cat", "/proc/sys/kernel/domainname"]);
    bundle.config["domainname"] = json!("example.test");
    let runtime = Runtime::hull();
    let output = runtime.run(&unique_id("domain"), &bundle);
    assert_eq!(output.stdout, "example.test\n", "{output}");
}

#[test]
fn process_sysctl() {
    require_root!();
    let script =
        "cat /proc/sys/net/ipv4/ip_forward /proc/sys/kernel/shmmax /proc/sys/kernel/msgmax";
    let mut bundle = Bundle::busybox_sh(script);
    bundle.config["linux"]["sysctl"] = json!({
        "net.ipv4.ip_forward": "1",
        "kernel.shmmax": "123456789",
        "kernel.msgmax": "4096"
    });
    let output = run_and_compare("sysctl", &bundle);
    assert_eq!(output.stdout, "1\n123456789\n4096\n");
}

#[test]
fn cgroup_limits_seen_inside() {
    require_root!();
    let mut bundle = Bundle::busybox_sh(
        "cat /sys/fs/cgroup/memory/memory.limit_in_bytes /sys/fs/cgroup/pids/pids.max \
         /sys/fs/cgroup/cpu/cpu.shares /sys/fs/cgroup/cpu/cpu.cfs_quota_us",
    );
    bundle.config["linux"]["resources"] = serde_json::json!({
        "memory": { "limit": 67108864 },
        "pids": { "limit": 42 },
        "cpu": { "shares": 512, "quota": 50000, "period": 100000 }
    });
    let has_cgroup_namespace = bundle.config["linux"]["namespaces"]
        .as_array()
        .is_some_and(|list| list.iter().any(|n| n["type"] == "cgroup"));
    assert!(
        has_cgroup_namespace,
        "the cgroup files are read at the namespace root"
    );
    let output = run_and_compare("cgroup limits", &bundle);
    assert_eq!(output.stdout, "67108864\n42\n512\n50000\n", "{output}");
}
