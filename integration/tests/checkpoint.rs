//! checkpoint and restore.
//!
//! A real dump and restore needs a criu that passes `criu check`. Where it
//! does not (criu 3.17 fails on the vDSO of recent kernels), that test
//! prints why and passes. The other tests run everywhere as root: they use
//! the failing criu itself, where its failure is the case under test, or
//! `src/fake_criu.py`, which speaks criu's RPC protocol through Debian's
//! pycriu messages so that hull's requests are decoded by criu's own
//! protobuf definitions.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Mutex;
use std::time::Duration;

use hull_integration::host::{cgroup_dirs, mounts_mentioning, process_alive};
use hull_integration::output::run_command;
use hull_integration::{require_root, unique_id, Bundle, Output, Runtime};
use serde_json::{json, Value};

const TIMEOUT: Duration = Duration::from_secs(60);
const WAIT: Duration = Duration::from_secs(10);

/// Restores bind-mount the rootfs below the temporary directory; tests that
/// check for leftovers there run one at a time.
static RESTORES: Mutex<()> = Mutex::new(());

fn fake_criu() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/fake_criu.py")
}

/// Returns true when `/usr/bin/python3` can import pycriu, which the fake
/// criu needs; otherwise prints why the calling test is skipped.
fn fake_criu_usable(test: &str) -> bool {
    let status = Command::new("/usr/bin/python3")
        .args(["-c", "import pycriu.rpc_pb2, google.protobuf"])
        .status();
    if matches!(status, Ok(s) if s.success()) {
        return true;
    }
    eprintln!("skipping {test}: /usr/bin/python3 cannot import pycriu (install python3-criu)");
    false
}

/// Runs `criu check`; returns its failure output, or `None` when criu works.
fn criu_check_failure() -> Option<String> {
    match Command::new("criu").arg("check").output() {
        Ok(output) if output.status.success() => None,
        Ok(output) => Some(String::from_utf8_lossy(&output.stderr).trim().to_string()),
        Err(e) => Some(format!("cannot run criu: {e}")),
    }
}

/// Returns a bundle that sleeps until the test ends, with a bind mount so
/// that the dump has an external mount.
fn sleeping_bundle(control: &Path) -> Bundle {
    let mut bundle = Bundle::busybox(&["sleep", "1000"]);
    bundle.add_mount(json!({
        "destination": "/mnt/control", "type": "bind",
        "source": control, "options": ["rbind", "ro"]
    }));
    bundle
}

/// Runs hull with `--criu CRIU` and, for the fake criu, the file where it
/// records requests.
fn hull_with_criu(runtime: &Runtime, criu: &Path, record: Option<&Path>, args: &[&str]) -> Output {
    let mut command = Command::new(runtime.binary());
    command
        .arg("--root")
        .arg(runtime.root())
        .arg("--criu")
        .arg(criu)
        .args(args)
        .stdin(std::process::Stdio::null());
    if let Some(record) = record {
        command.env("FAKE_CRIU_RECORD", record);
    }
    run_command(command, TIMEOUT)
}

/// Returns the requests the fake criu recorded, one JSON object each.
fn recorded(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .map(|line| serde_json::from_str(line).expect("fake criu wrote invalid JSON"))
        .collect()
}

fn request_of<'a>(requests: &'a [Value], kind: &str) -> &'a Value {
    requests
        .iter()
        .find(|r| r["type"] == kind)
        .unwrap_or_else(|| panic!("no {kind} request in {requests:?}"))
}

fn strings(value: &Value) -> Vec<String> {
    value
        .as_array()
        .map(|items| {
            items
                .iter()
                .map(|s| s.as_str().unwrap_or_default().to_string())
                .collect()
        })
        .unwrap_or_default()
}

/// Returns the mount points and directories left from restore's bind
/// mount of the rootfs for criu's `--root`.
fn criu_root_leftovers() -> Vec<String> {
    let mut found = mounts_mentioning(Path::new("hull-criu-root"));
    if let Ok(entries) = std::fs::read_dir(std::env::temp_dir()) {
        for entry in entries.filter_map(Result::ok) {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.starts_with("hull-criu-root-") {
                found.push(entry.path().display().to_string());
            }
        }
    }
    found
}

/// Force-deletes a container that `restore` made, which the runtime helper
/// does not track, also when the test panics.
struct DeleteOnDrop<'a> {
    runtime: &'a Runtime,
    id: String,
}

impl Drop for DeleteOnDrop<'_> {
    fn drop(&mut self) {
        let _ = self.runtime.exec(&["delete", "--force", &self.id]);
        hull_integration::host::remove_cgroups(&self.id);
    }
}

#[test]
fn checkpoint_help_lists_runc_flags() {
    let runtime = Runtime::hull();
    let help = runtime.exec_without_root(&["checkpoint", "--help"]);
    help.expect_success();
    for flag in [
        "--image-path",
        "--work-path",
        "--parent-path",
        "--leave-running",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--lazy-pages",
        "--status-fd",
        "--page-server",
        "--file-locks",
        "--pre-dump",
        "--manage-cgroups-mode",
        "--empty-ns",
        "--auto-dedup",
    ] {
        assert!(
            help.stdout.contains(flag),
            "checkpoint lacks {flag}:\n{help}"
        );
    }
}

#[test]
fn restore_help_lists_runc_flags() {
    let runtime = Runtime::hull();
    let help = runtime.exec_without_root(&["restore", "--help"]);
    help.expect_success();
    for flag in [
        "--image-path",
        "--work-path",
        "--tcp-established",
        "--ext-unix-sk",
        "--shell-job",
        "--file-locks",
        "--manage-cgroups-mode",
        "--bundle",
        "--detach",
        "--pid-file",
        "--no-subreaper",
        "--no-pivot",
        "--console-socket",
        "--empty-ns",
        "--auto-dedup",
        "--lazy-pages",
        "--lsm-profile",
    ] {
        assert!(help.stdout.contains(flag), "restore lacks {flag}:\n{help}");
    }
}

#[test]
fn checkpoint_rejects_bad_flag_values() {
    let runtime = Runtime::hull();
    let mode = runtime.exec(&["checkpoint", "--manage-cgroups-mode", "loose", "c"]);
    // A usage error exits 1, as in runc.
    assert_eq!(mode.code(), 1, "{mode}");
    assert!(mode.stderr.contains("loose"), "{mode}");

    let empty_ns = runtime.exec(&["checkpoint", "--empty-ns", "net", "c"]);
    assert_eq!(empty_ns.code(), 1, "{empty_ns}");
    assert!(
        empty_ns.stderr.contains("invalid --empty-ns value"),
        "{empty_ns}"
    );

    let restore = runtime.exec(&["restore", "--manage-cgroups-mode", "loose", "c"]);
    assert_eq!(restore.code(), 1, "{restore}");
}

#[test]
fn checkpoint_of_missing_container_fails() {
    let runtime = Runtime::hull();
    let output = runtime.exec(&["checkpoint", "no-such-container"]);
    output.expect_code(1);
    assert!(
        output
            .stderr
            .contains("container does not exist: no-such-container"),
        "{output}"
    );
}

#[test]
fn checkpoint_missing_criu_names_binary() {
    require_root!();
    let runtime = Runtime::hull();
    let control = tempfile::tempdir().unwrap();
    let bundle = sleeping_bundle(control.path());
    let id = unique_id("ckpt-nocriu");
    runtime.run_detached(&id, &bundle).expect_success();

    let images = tempfile::tempdir().unwrap();
    let images_arg = images.path().to_str().unwrap();
    let missing = Path::new("/nonexistent/criu");
    let output = hull_with_criu(
        &runtime,
        missing,
        None,
        &["checkpoint", "--image-path", images_arg, &id],
    );
    output.expect_code(1);
    assert!(output.stderr.contains("/nonexistent/criu"), "{output}");
    assert!(output.stderr.contains("--criu"), "{output}");
    assert_eq!(runtime.status(&id), "running");
}

#[test]
fn restore_missing_criu_leaves_nothing() {
    require_root!();
    let runtime = Runtime::hull();
    let control = tempfile::tempdir().unwrap();
    let bundle = sleeping_bundle(control.path());
    bundle.write();
    let images = tempfile::tempdir().unwrap();
    std::fs::write(images.path().join("descriptors.json"), "[]").unwrap();
    let id = unique_id("rst-nocriu");
    let missing = Path::new("/nonexistent/criu");
    let args = [
        "restore",
        "--detach",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--image-path",
        images.path().to_str().unwrap(),
        &id,
    ];
    let output = hull_with_criu(&runtime, missing, None, &args);
    output.expect_code(1);
    assert!(output.stderr.contains("/nonexistent/criu"), "{output}");
    assert!(output.stderr.contains("--criu"), "{output}");
    assert!(!runtime.state_dir(&id).exists());
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new());
}

#[test]
fn checkpoint_of_created_container_fails() {
    require_root!();
    let runtime = Runtime::hull();
    let control = tempfile::tempdir().unwrap();
    let bundle = sleeping_bundle(control.path());
    let id = unique_id("ckpt-created");
    runtime.create(&id, &bundle).expect_success();

    let images = tempfile::tempdir().unwrap();
    let output = runtime.exec(&[
        "checkpoint",
        "--image-path",
        images.path().to_str().unwrap(),
        &id,
    ]);
    output.expect_code(1);
    assert!(
        output
            .stderr
            .contains(&format!("cannot checkpoint container {id}: it is created")),
        "{output}"
    );
    assert_eq!(runtime.status(&id), "created");
    let image_files = std::fs::read_dir(images.path()).unwrap().count();
    assert_eq!(image_files, 0, "checkpoint wrote images");
}

#[test]
fn checkpoint_of_stopped_container_fails() {
    require_root!();
    let runtime = Runtime::hull();
    let bundle = Bundle::busybox(&["true"]);
    let id = unique_id("ckpt-stopped");
    runtime.run_detached(&id, &bundle).expect_success();
    assert!(runtime.wait_for_status(&id, "stopped", WAIT));

    let images = tempfile::tempdir().unwrap();
    let output = runtime.exec(&[
        "checkpoint",
        "--image-path",
        images.path().to_str().unwrap(),
        &id,
    ]);
    output.expect_code(1);
    assert!(
        output
            .stderr
            .contains(&format!("cannot checkpoint container {id}: it is stopped")),
        "{output}"
    );
}

/// Returns the criu to fail with: the installed one where `criu check`
/// fails, else the fake in failure mode.
fn failing_criu() -> Option<(PathBuf, &'static str)> {
    match criu_check_failure() {
        Some(_) => Some((PathBuf::from("criu"), "")),
        None if fake_criu_usable("failing criu") => Some((fake_criu(), "Error (fake-criu.c:")),
        None => None,
    }
}

fn hull_failing(runtime: &Runtime, criu: &Path, args: &[&str]) -> Output {
    let mut command = Command::new(runtime.binary());
    command
        .arg("--root")
        .arg(runtime.root())
        .arg("--criu")
        .arg(criu)
        .args(args)
        .env("FAKE_CRIU_FAIL", "1")
        .stdin(std::process::Stdio::null());
    run_command(command, TIMEOUT)
}

#[test]
fn checkpoint_failure_names_criu_log() {
    require_root!();
    let Some((criu, marker)) = failing_criu() else {
        return;
    };
    let runtime = Runtime::hull();
    let control = tempfile::tempdir().unwrap();
    let bundle = sleeping_bundle(control.path());
    let id = unique_id("ckpt-fail");
    runtime.run_detached(&id, &bundle).expect_success();

    let images = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    let args = [
        "checkpoint",
        "--image-path",
        images.path().to_str().unwrap(),
        "--work-path",
        work.path().to_str().unwrap(),
        &id,
    ];
    let output = hull_failing(&runtime, &criu, &args);
    output.expect_code(1);
    let log = work.path().join("dump.log");
    assert!(log.is_file(), "criu wrote no {}", log.display());
    assert!(output.stderr.contains("criu dump failed"), "{output}");
    assert!(output.stderr.contains(log.to_str().unwrap()), "{output}");
    let text = std::fs::read_to_string(&log).unwrap();
    let last_error = text
        .lines()
        .rev()
        .find(|l| l.contains(") Error"))
        .and_then(|l| l.split_once(") "))
        .map(|(_, rest)| rest.to_string())
        .expect("the log has no error line");
    assert!(last_error.contains(marker), "{last_error}");
    assert!(
        output.stderr.contains(&last_error),
        "{output}\nexpected {last_error}"
    );

    assert_eq!(
        runtime.status(&id),
        "running",
        "a failed dump stops nothing"
    );
    assert!(images.path().join("descriptors.json").is_file());
}

#[test]
fn restore_failure_leaves_nothing() {
    require_root!();
    let Some((criu, _)) = failing_criu() else {
        return;
    };
    let _serial = RESTORES.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = Runtime::hull();
    let control = tempfile::tempdir().unwrap();
    let bundle = sleeping_bundle(control.path());
    bundle.write();
    let images = tempfile::tempdir().unwrap();
    std::fs::write(
        images.path().join("descriptors.json"),
        r#"["/dev/null","/dev/null","/dev/null"]"#,
    )
    .unwrap();
    let id = unique_id("rst-fail");
    let pid_file = images.path().join("pid");
    let args = [
        "restore",
        "--detach",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--image-path",
        images.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ];
    let output = hull_failing(&runtime, &criu, &args);
    output.expect_code(1);
    let log = images.path().join("restore.log");
    assert!(output.stderr.contains("criu restore failed"), "{output}");
    assert!(output.stderr.contains(log.to_str().unwrap()), "{output}");
    assert!(!runtime.state_dir(&id).exists(), "state directory is left");
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new(), "cgroups are left");
    assert_eq!(criu_root_leftovers(), Vec::<String>::new());
    assert!(!pid_file.exists(), "pid file written by a failed restore");
    assert!(runtime.list_json().is_empty());
}

#[test]
fn dump_request_reaches_criu() {
    require_root!();
    if !fake_criu_usable(module_path!()) {
        return;
    }
    let runtime = Runtime::hull();
    let control = tempfile::tempdir().unwrap();
    let bundle = sleeping_bundle(control.path());
    let id = unique_id("ckpt-fake");
    runtime.run_detached(&id, &bundle).expect_success();
    let pid = runtime.state_json(&id)["pid"].as_i64().unwrap();

    let images = tempfile::tempdir().unwrap();
    let record = images.path().join("requests.jsonl");
    let image_dir = images.path().join("image");
    let args = [
        "checkpoint",
        "--image-path",
        image_dir.to_str().unwrap(),
        "--leave-running",
        "--tcp-established",
        "--manage-cgroups-mode",
        "soft",
        &id,
    ];
    hull_with_criu(&runtime, &fake_criu(), Some(&record), &args).expect_success();
    assert_eq!(runtime.status(&id), "running", "--leave-running stopped it");

    let requests = recorded(&record);
    let dump = request_of(&requests, "DUMP");
    let opts = &dump["opts"];
    assert_eq!(opts["pid"], pid);
    assert_eq!(opts["log_file"], "dump.log");
    assert_eq!(opts["leave_running"], true);
    assert_eq!(opts["tcp_established"], true);
    assert_eq!(opts["manage_cgroups_mode"], "SOFT");
    assert_eq!(opts["root"], bundle.rootfs().to_str().unwrap());
    assert_eq!(dump["images_dir"], image_dir.to_str().unwrap());
    let external = strings(&opts["external"]);
    assert!(
        external.contains(&"mnt[/mnt/control]:/mnt/control".to_string()),
        "{external:?}"
    );
    assert!(
        external.iter().any(|e| e.ends_with("]:/dev/null")),
        "masked files are not external: {external:?}"
    );
    let descriptors: Vec<String> =
        serde_json::from_slice(&std::fs::read(image_dir.join("descriptors.json")).unwrap())
            .unwrap();
    assert_eq!(descriptors.len(), 3);
    assert!(image_dir.join("hull-state.json").is_file());
}

#[test]
fn checkpoint_deletes_dumped_container() {
    require_root!();
    if !fake_criu_usable(module_path!()) {
        return;
    }
    let runtime = Runtime::hull();
    let control = tempfile::tempdir().unwrap();
    let bundle = sleeping_bundle(control.path());
    let id = unique_id("ckpt-stop");
    runtime.run_detached(&id, &bundle).expect_success();
    let pid = runtime.state_json(&id)["pid"].as_i64().unwrap() as i32;

    let images = tempfile::tempdir().unwrap();
    let args = [
        "checkpoint",
        "--image-path",
        images.path().to_str().unwrap(),
        &id,
    ];
    hull_with_criu(&runtime, &fake_criu(), None, &args).expect_success();
    assert!(!process_alive(pid), "the dumped init {pid} still runs");
    assert!(!runtime.state_dir(&id).exists(), "state directory is left");
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new(), "cgroups are left");
    assert!(runtime.list_json().is_empty());
}

#[test]
fn restore_records_restored_init() {
    require_root!();
    if !fake_criu_usable(module_path!()) {
        return;
    }
    let _serial = RESTORES.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = Runtime::hull();
    let control = tempfile::tempdir().unwrap();
    let bundle = sleeping_bundle(control.path());
    bundle.write();
    let images = tempfile::tempdir().unwrap();
    std::fs::write(
        images.path().join("descriptors.json"),
        r#"["/dev/null","pipe:[12345]","/dev/null"]"#,
    )
    .unwrap();
    let record = images.path().join("requests.jsonl");
    let pid_file = images.path().join("pid");
    let id = unique_id("rst-fake");
    let _delete = DeleteOnDrop {
        runtime: &runtime,
        id: id.clone(),
    };
    let args = [
        "restore",
        "--detach",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--image-path",
        images.path().to_str().unwrap(),
        "--pid-file",
        pid_file.to_str().unwrap(),
        &id,
    ];
    hull_with_criu(&runtime, &fake_criu(), Some(&record), &args).expect_success();

    let state = runtime.state_json(&id);
    assert_eq!(state["status"], "running", "{state}");
    let pid = state["pid"].as_i64().unwrap();
    assert!(process_alive(pid as i32));
    assert_eq!(std::fs::read_to_string(&pid_file).unwrap(), pid.to_string());
    let in_cgroup = cgroup_dirs(&id).iter().any(|dir| {
        std::fs::read_to_string(dir.join("cgroup.procs"))
            .unwrap_or_default()
            .lines()
            .any(|line| line == pid.to_string())
    });
    assert!(
        in_cgroup,
        "restored init {pid} is not in the container's cgroup"
    );
    assert_eq!(criu_root_leftovers(), Vec::<String>::new());

    let requests = recorded(&record);
    let restore = request_of(&requests, "RESTORE");
    let opts = &restore["opts"];
    assert_eq!(opts["rst_sibling"], true);
    assert_eq!(opts["log_file"], "restore.log");
    let root = opts["root"].as_str().unwrap();
    assert!(root.contains("hull-criu-root-"), "{root}");
    let external = strings(&opts["external"]);
    let bind = format!("mnt[/mnt/control]:{}", control.path().display());
    assert!(external.contains(&bind), "{external:?}");
    assert!(
        external.contains(&"mnt[/dev/null]:/dev/null".to_string()),
        "{external:?}"
    );
    let inherit = opts["inherit_fd"].as_array().unwrap();
    assert_eq!(inherit.len(), 1, "{inherit:?}");
    assert_eq!(inherit[0]["key"], "pipe:[12345]");
    assert_eq!(inherit[0]["fd"], 1);
    assert!(
        opts["cg_root"]
            .as_array()
            .is_some_and(|roots| !roots.is_empty())
            || Path::new("/sys/fs/cgroup/cgroup.controllers").exists(),
        "no cgroup roots on a v1 host: {opts}"
    );

    runtime.exec(&["delete", "--force", &id]).expect_success();
    assert!(!process_alive(pid as i32));
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new());
}

#[test]
fn real_checkpoint_and_restore() {
    require_root!();
    if let Some(reason) = criu_check_failure() {
        eprintln!(
            "skipping {}: `criu check` fails here: {reason}",
            module_path!()
        );
        return;
    }
    let _serial = RESTORES.lock().unwrap_or_else(|e| e.into_inner());
    let runtime = Runtime::hull();
    let bundle =
        Bundle::busybox_sh("i=0; while true; do i=$((i+1)); echo $i > /dev/null; sleep 0.1; done");
    let id = unique_id("ckpt-real");
    runtime.run_detached(&id, &bundle).expect_success();
    let _delete = DeleteOnDrop {
        runtime: &runtime,
        id: id.clone(),
    };
    let images = tempfile::tempdir().unwrap();
    let image_dir = images.path().join("image");
    let output = runtime.exec(&[
        "checkpoint",
        "--image-path",
        image_dir.to_str().unwrap(),
        &id,
    ]);
    output.expect_success();
    assert!(!runtime.state_dir(&id).exists());

    let output = runtime.exec(&[
        "restore",
        "--detach",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--image-path",
        image_dir.to_str().unwrap(),
        &id,
    ]);
    output.expect_success();
    assert_eq!(runtime.status(&id), "running");
}

#[test]
fn detached_terminal_restore_needs_socket() {
    require_root!();
    let runtime = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sh"]);
    bundle.config["process"]["terminal"] = json!(true);
    bundle.write();
    let images = tempfile::tempdir().unwrap();
    std::fs::write(images.path().join("descriptors.json"), "[]").unwrap();
    let id = unique_id("rst-tty");
    let output = runtime.exec(&[
        "restore",
        "--detach",
        "--bundle",
        bundle.path().to_str().unwrap(),
        "--image-path",
        images.path().to_str().unwrap(),
        &id,
    ]);
    output.expect_code(1);
    assert!(output.stderr.contains("--console-socket"), "{output}");
    assert!(!runtime.state_dir(&id).exists());
    assert_eq!(cgroup_dirs(&id), Vec::<PathBuf>::new());
}

#[test]
fn features_claim_no_checkpoint() {
    // Whether criu works depends on the host's kernel, so hull does not
    // announce checkpoint support the way runc's features annotations do.
    let runtime = Runtime::hull();
    let output = runtime.exec_without_root(&["features"]);
    output.expect_success();
    let features: Value = serde_json::from_str(&output.stdout).unwrap();
    let annotations = features["annotations"].as_object().unwrap();
    let claims: Vec<&String> = annotations
        .keys()
        .filter(|key| key.contains("checkpoint"))
        .collect();
    assert!(claims.is_empty(), "{claims:?}");
}
