//! Commands that start no container: --version, spec, features, and the
//! global logging flags.

use std::fs;

use hull_integration::{require_root, Runtime};
use serde_json::Value;

/// Runs `spec ARGS` in a fresh directory and returns the written config.
fn spec_in_tempdir(runtime: &Runtime, args: &[&str]) -> Value {
    let dir = tempfile::tempdir().unwrap();
    let mut full = vec!["spec", "--bundle", dir.path().to_str().unwrap()];
    full.extend_from_slice(args);
    runtime.exec(&full).expect_success();
    let text =
        fs::read_to_string(dir.path().join("config.json")).expect("spec wrote no config.json");
    serde_json::from_str(&text).expect("spec wrote invalid JSON")
}

#[test]
fn version_names_spec() {
    require_root!();
    let hull = Runtime::hull().exec_without_root(&["--version"]);
    let runc = Runtime::runc().exec_without_root(&["--version"]);
    hull.expect_success();
    assert!(
        hull.stdout
            .lines()
            .next()
            .unwrap_or("")
            .contains(" version "),
        "{hull}"
    );
    let spec_line = |text: &str| {
        text.lines()
            .find(|l| l.starts_with("spec: "))
            .map(str::to_owned)
    };
    assert!(spec_line(&runc.stdout).is_some(), "{runc}");
    // hull implements runtime spec 1.2; runc 1.1.5 prints 1.0.2-dev.
    let line = spec_line(&hull.stdout).unwrap_or_default();
    assert!(line.starts_with("spec: 1."), "{hull}");
}

/// Returns whether `/sys/fs/cgroup` is a cgroup2 file system (a cgroup v2
/// host, not a hybrid one).
fn cgroup2_at_root() -> bool {
    let stat = nix::sys::statfs::statfs("/sys/fs/cgroup").unwrap();
    stat.filesystem_type() == nix::sys::statfs::CGROUP2_SUPER_MAGIC
}

#[test]
fn spec_matches_runc() {
    require_root!();
    for args in [&[][..], &["--rootless"]] {
        let mut hull = spec_in_tempdir(&Runtime::hull(), args);
        let mut runc = spec_in_tempdir(&Runtime::runc(), args);
        // Intended differences: the spec version, the hostname, and on a
        // cgroup v2 host a cgroup namespace (as runc 1.2 has).
        for spec in [&mut hull, &mut runc] {
            spec["ociVersion"] = Value::Null;
            spec["hostname"] = Value::Null;
        }
        let namespaces = hull["linux"]["namespaces"].as_array_mut().unwrap();
        let before = namespaces.len();
        namespaces.retain(|n| n["type"] != "cgroup");
        let has_cgroup_namespace = namespaces.len() != before;
        assert_eq!(
            has_cgroup_namespace,
            cgroup2_at_root(),
            "spec {args:?}: cgroup namespace"
        );
        assert_eq!(hull, runc, "spec {args:?} differs");
    }
}

#[test]
fn spec_keeps_existing_config() {
    require_root!();
    let mut codes = Vec::new();
    for runtime in [Runtime::hull(), Runtime::runc()] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("config.json"), "keep").unwrap();
        let output = runtime.exec(&["spec", "--bundle", dir.path().to_str().unwrap()]);
        assert_eq!(
            fs::read_to_string(dir.path().join("config.json")).unwrap(),
            "keep"
        );
        codes.push(output.code);
    }
    assert_eq!(codes[0], codes[1]);
    assert_eq!(codes[0], Some(1));
}

#[test]
fn features_lists_hooks_and_namespaces() {
    require_root!();
    let parse = |runtime: Runtime| -> Value {
        let output = runtime.exec(&["features"]);
        output.expect_success();
        serde_json::from_str(&output.stdout)
            .unwrap_or_else(|e| panic!("invalid JSON ({e}):\n{output}"))
    };
    let hull = parse(Runtime::hull());
    let runc = parse(Runtime::runc());
    assert_eq!(hull["ociVersionMin"], runc["ociVersionMin"]);
    // hull implements a newer runtime spec than runc 1.1.5 (1.0.2-dev).
    let max = hull["ociVersionMax"].as_str().unwrap_or_default();
    assert!(max.starts_with("1."), "ociVersionMax {max}");
    assert_eq!(hull["hooks"], runc["hooks"]);
    // hull lists only the namespaces it can create or join.
    let names = |value: &Value| -> Vec<String> {
        let list = value["linux"]["namespaces"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        list.iter()
            .filter_map(|n| n.as_str().map(str::to_owned))
            .collect()
    };
    let (hull_names, runc_names) = (names(&hull), names(&runc));
    for name in ["cgroup", "ipc", "mount", "network", "pid", "uts"] {
        assert!(
            hull_names.iter().any(|n| n == name),
            "{name} missing: {hull_names:?}"
        );
    }
    // runc 1.1.5 predates time namespaces, which hull creates and joins.
    for name in hull_names.iter().filter(|n| *n != "time") {
        assert!(
            runc_names.contains(name),
            "{name} unknown to runc: {runc_names:?}"
        );
    }
}

#[test]
fn log_file_json_format() {
    require_root!();
    let runtime = Runtime::hull();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("log.json");
    let output = runtime.exec_without_root(&[
        "--root",
        runtime.root().to_str().unwrap(),
        "--log",
        log.to_str().unwrap(),
        "--log-format",
        "json",
        "state",
        "no-such-container",
    ]);
    output.expect_code(1);
    let text = fs::read_to_string(&log).expect("no log file written");
    let entry: Value = serde_json::from_str(text.lines().last().unwrap_or(""))
        .unwrap_or_else(|e| panic!("log line is not JSON ({e}): {text}"));
    assert_eq!(entry["level"], "error", "{entry}");
    let message = entry["msg"].as_str().unwrap_or_default();
    // runc's words, which callers match, followed by the id.
    assert!(message.starts_with("container does not exist"), "{entry}");
    assert!(message.contains("no-such-container"), "{entry}");
    assert!(entry["time"].is_string(), "{entry}");
    assert!(
        output.stderr.contains("container does not exist"),
        "{output}"
    );
}

#[test]
fn usage_errors_exit_as_runc() {
    require_root!();
    for args in [&["--bogus"][..], &["list", "--bogus"], &["state"], &[]] {
        let hull = Runtime::hull().exec(args);
        let runc = Runtime::runc().exec(args);
        assert_eq!(hull.code, runc.code, "{args:?}\n{hull}\n{runc}");
    }
}

#[test]
fn unknown_command_fails() {
    require_root!();
    let hull = Runtime::hull().exec(&["no-such-command"]);
    let runc = Runtime::runc().exec(&["no-such-command"]);
    assert_eq!(hull.code, runc.code, "{hull}\n{runc}");
    assert!(hull.stderr.contains("no-such-command"), "{hull}");
}
