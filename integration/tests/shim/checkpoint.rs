//! Checkpoint and restore through containerd: `ctr containers checkpoint
//! --task` and `ctr containers restore --live`, which creates the task from
//! the checkpoint image. The round trip needs a working criu.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use hull_integration::callers::{run_command, BUSYBOX_IMAGE};
use hull_integration::{require_root, require_tools, unique_id};

use crate::fixture::{Binary, Fixture};
use crate::shim_test;

shim_test!(shim_checkpoint_restore_live, checkpoint_restore_live);

/// A shell loop that prints `tick-N` every 100 ms. Its counter lives in
/// the shell's memory, so a restored loop continues the numbers.
const TICKER: &str = "i=0; while true; do echo tick-$i; i=$((i+1)); sleep 0.1; done";

/// Returns why criu cannot checkpoint on this machine, or `None` when
/// `criu check` passes.
fn criu_unusable() -> Option<String> {
    let mut check = Command::new("criu");
    check.arg("check");
    let output = run_command(check, Duration::from_secs(60));
    if output.success() {
        return None;
    }
    Some(format!("`criu check` failed: {output}"))
}

/// Returns the tick numbers in `log`, in order.
fn ticks(log: &Path) -> Vec<u64> {
    std::fs::read_to_string(log)
        .unwrap_or_default()
        .lines()
        .filter_map(|line| line.strip_prefix("tick-")?.parse().ok())
        .collect()
}

fn wait_for_ticks(log: &Path, count: usize) {
    for _ in 0..100 {
        if ticks(log).len() >= count {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!("fewer than {count} ticks in {}", log.display());
}

fn checkpoint_restore_live(binary: Binary) {
    require_root!();
    require_tools!("containerd", "ctr", "umoci", "criu");
    if let Some(reason) = criu_unusable() {
        println!("skipping the checkpoint round trip: {reason}");
        return;
    }
    let fixture = Fixture::start_with(binary);
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("ticks.log");
    let uri = format!("file://{}", log.display());
    let id = unique_id("shim");
    fixture.run_ok(
        &["-d", "--log-uri", &uri],
        &[BUSYBOX_IMAGE, &id, "sh", "-c", TICKER],
    );
    fixture.wait_for_status(&id, "RUNNING");
    wait_for_ticks(&log, 5);

    let image = format!("localhost/{id}:checkpoint");
    fixture.ctr_ok(&["containers", "checkpoint", "--task", &id, &image]);
    fixture.ctr_ok(&["task", "kill", "-s", "SIGKILL", &id]);
    fixture.wait_for_status(&id, "STOPPED");
    fixture.ctr_ok(&["task", "delete", &id]);
    fixture.ctr_ok(&["containers", "delete", &id]);
    let before = ticks(&log);

    let restored = unique_id("shim");
    fixture.ctr_ok(&["containers", "restore", "--live", &restored, &image]);
    fixture.wait_for_status(&restored, "RUNNING");
    fixture.assert_runtime_state(&restored, "running");
    wait_for_ticks(&log, before.len() + 5);
    let after = ticks(&log);

    // The restored shell appends to the same log file and continues
    // counting where the checkpoint left it, so no number restarts at 0.
    let zeros = after.iter().filter(|&&tick| tick == 0).count();
    assert_eq!(zeros, 1, "the loop started again: {after:?}");
    assert!(
        after.windows(2).all(|pair| pair[1] > pair[0]),
        "tick numbers not increasing: {after:?}"
    );

    fixture.ctr_ok(&["task", "kill", "-s", "SIGKILL", &restored]);
    fixture.wait_for_status(&restored, "STOPPED");
    fixture.ctr_ok(&["task", "delete", &restored]);
    fixture.ctr_ok(&["containers", "delete", &restored]);
    fixture.ctr_ok(&["images", "rm", &image]);
    fixture.assert_binary_used();
}
