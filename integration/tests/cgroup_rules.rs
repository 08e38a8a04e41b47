//! Cgroup configuration that runc 1.1 accepts or rejects in a particular
//! way: unified resources on cgroup v1, device access letters, real-time
//! period changes and a cgroup frozen before the container starts.

use std::fs;
use std::path::{Path, PathBuf};

use hull_integration::host::{cgroup_dirs, remove_empty_cgroups};
use hull_integration::{require_root, unique_id, Bundle, Runtime};
use serde_json::json;

const CPU_ROOT: &str = "/sys/fs/cgroup/cpu";
const FREEZER_ROOT: &str = "/sys/fs/cgroup/freezer";

fn v1_dir(id: &str, controller: &str) -> PathBuf {
    let root = Path::new("/sys/fs/cgroup").join(controller);
    cgroup_dirs(id)
        .into_iter()
        .find(|dir| dir.starts_with(&root))
        .unwrap_or_else(|| panic!("no {controller} cgroup for {id}"))
}

fn read_trimmed(path: &Path) -> String {
    fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("failed to read {}: {e}", path.display()))
        .trim()
        .to_string()
}

#[test]
fn unified_on_v1_is_invalid_configuration() {
    require_root!();
    if Path::new("/sys/fs/cgroup/cgroup.controllers").exists() {
        eprintln!("skipped: the host uses cgroup v2 only");
        return;
    }
    let hull = Runtime::hull();
    let mut bundle = Bundle::busybox(&["true"]);
    bundle.config["linux"]["resources"]["unified"] = json!({"memory.min": "131072"});
    let id = unique_id("unified-v1");

    let output = hull.run(&id, &bundle);

    assert!(!output.success(), "{output}");
    assert!(output.stderr.contains("invalid configuration"), "{output}");
    assert!(output.stderr.contains("memory.min"), "{output}");
}

#[test]
fn device_access_ignores_letter_a() {
    require_root!();
    let hull = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sleep", "100"]);
    bundle.config["linux"]["resources"]["devices"] = json!([
        {"allow": false, "access": "rwm"},
        {"allow": true, "type": "c", "major": 1, "minor": 11, "access": "rwa"}
    ]);
    let id = unique_id("devices-rwa");

    hull.run_detached(&id, &bundle).expect_success();

    let list = read_trimmed(&v1_dir(&id, "devices").join("devices.list"));
    assert!(
        list.lines().any(|l| l == "c 1:11 rw"),
        "devices.list:\n{list}"
    );
}

/// A cgroup below the cpu root, with the real-time budget that a child
/// needs. On drop it is removed from every hierarchy, where the runtime
/// also created it as the parent of the container's cgroup.
struct RtParent(String);

impl Drop for RtParent {
    fn drop(&mut self) {
        remove_empty_cgroups(&self.0);
    }
}

#[test]
fn rt_period_shrinks_below_runtime() {
    require_root!();
    if !Path::new(CPU_ROOT).join("cpu.rt_runtime_us").exists() {
        eprintln!("skipped: the kernel has no real-time group scheduling");
        return;
    }
    let parent_name = unique_id("rt-parent");
    let _parent = RtParent(parent_name.clone());
    let parent_dir = Path::new(CPU_ROOT).join(&parent_name);
    fs::create_dir(&parent_dir).expect("failed to create the parent cgroup");
    fs::write(parent_dir.join("cpu.rt_runtime_us"), "950000")
        .expect("failed to give the parent cgroup a real-time runtime");

    let hull = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sleep", "100"]);
    let id = unique_id("rt-period");
    bundle.config["linux"]["cgroupsPath"] = json!(format!("/{parent_name}/{id}"));
    hull.run_detached(&id, &bundle).expect_success();
    let dir = v1_dir(&id, "cpu");

    // Each step fails with EINVAL unless the shrinking period goes after
    // the runtime and the growing period before it.
    for (period, runtime) in [("900001", "600001"), ("10000", "3000"), ("100000", "20000")] {
        hull.exec(&[
            "update",
            "--cpu-rt-period",
            period,
            "--cpu-rt-runtime",
            runtime,
            &id,
        ])
        .expect_success();
        assert_eq!(read_trimmed(&dir.join("cpu.rt_period_us")), period);
        assert_eq!(read_trimmed(&dir.join("cpu.rt_runtime_us")), runtime);
    }

    hull.exec(&["delete", "--force", &id]).expect_success();
}

/// A v1 freezer cgroup set to FROZEN, thawed and removed on drop.
struct FrozenCgroup(PathBuf);

impl Drop for FrozenCgroup {
    fn drop(&mut self) {
        let _ = fs::write(self.0.join("freezer.state"), "THAWED");
        let _ = fs::remove_dir(&self.0);
    }
}

#[test]
fn frozen_cgroup_is_rejected() {
    require_root!();
    if !Path::new(FREEZER_ROOT).exists() {
        eprintln!("skipped: no v1 freezer hierarchy");
        return;
    }
    let id = unique_id("frozen");
    let frozen = FrozenCgroup(Path::new(FREEZER_ROOT).join(&id));
    fs::create_dir(&frozen.0).expect("failed to create the freezer cgroup");
    fs::write(frozen.0.join("freezer.state"), "FROZEN").expect("failed to freeze the cgroup");

    let hull = Runtime::hull();
    let mut bundle = Bundle::busybox(&["sleep", "100"]);
    bundle.config["linux"]["cgroupsPath"] = json!(format!("/{id}"));

    let output = hull.run_detached(&id, &bundle);

    assert!(!output.success(), "{output}");
    assert!(
        output
            .stderr
            .contains("container's cgroup unexpectedly frozen"),
        "{output}"
    );
}
