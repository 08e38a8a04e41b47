//! cgroup v2: directory creation with controller delegation, resource
//! limits with runc 1.1's conversions of v1 values, and `cgroup.freeze`.
//!
//! Files are written directly: `cgroups_rs` fixes its v2 root at
//! `/sys/fs/cgroup` and maps some values differently from runc (swappiness
//! goes to `memory.swap.max`, blkio weights go to `io.bfq.weight` without
//! conversion).

use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxMemory, LinuxResources};

use super::files::{read_file, write_file};
use super::v1::{device_numbers, unsupported_page_size};
use super::{CgroupDir, CgroupError};

/// Highest cgroup v1 `cpu.shares` value.
const MAX_CPU_SHARES: u64 = 262_144;
/// Highest cgroup v2 `cpu.weight` and `io.weight` value.
const MAX_WEIGHT: u64 = 10_000;

/// Converts v1 `cpu.shares` (2 to 262144, default 1024) to v2 `cpu.weight`
/// (1 to 10000, default 100) with runc 1.1's linear map. 0 stays 0 (unset).
pub fn cpu_shares_to_weight(shares: u64) -> u64 {
    if shares == 0 {
        return 0;
    }
    let shares = shares.clamp(2, MAX_CPU_SHARES);
    1 + (shares - 2) * (MAX_WEIGHT - 1) / (MAX_CPU_SHARES - 2)
}

/// Converts a v1 `blkio.weight` (10 to 1000) to a v2 `io.weight` (1 to
/// 10000) with runc 1.1's linear map. 0 stays 0 (unset).
pub fn blkio_weight_to_io_weight(weight: u64) -> u64 {
    if weight == 0 {
        return 0;
    }
    let weight = weight.clamp(10, 1000);
    1 + (weight - 10) * (MAX_WEIGHT - 1) / 990
}

/// Converts the OCI memory+swap limit `swap` to the v2 `memory.swap.max`
/// value, which counts swap alone: `swap - memory`. Returns -1 for "max"
/// and 0 for "unset". A memory limit of -1 without a swap value lifts the
/// swap limit too, as on v1.
pub fn swap_to_v2(swap: i64, memory: i64) -> Result<i64, String> {
    if memory == -1 && swap == 0 {
        return Ok(-1);
    }
    if swap == -1 || swap == 0 {
        return Ok(swap);
    }
    if swap < -1 {
        return Err(format!(
            "memory+swap limit {swap} is negative (use -1 for no limit)"
        ));
    }
    if memory == 0 || memory == -1 {
        return Err(format!(
            "memory+swap limit {swap} needs a memory limit, but the memory limit is unset"
        ));
    }
    if memory < 0 {
        return Err(format!(
            "memory limit {memory} is negative (use -1 for no limit)"
        ));
    }
    if swap < memory {
        return Err(format!(
            "memory+swap limit {swap} is below the memory limit {memory}"
        ));
    }
    Ok(swap - memory)
}

/// Formats a limit for a v2 file, where -1 (and any negative) means "max".
fn max_or(value: i64) -> String {
    if value < 0 {
        "max".to_string()
    } else {
        value.to_string()
    }
}

/// Creates the cgroup directory and, when `enable_controllers` is set, turns
/// on every available controller in the `cgroup.subtree_control` of each
/// ancestor from the mount point down, so that the new cgroup gets the
/// controllers' files.
pub fn create(cgroup: &CgroupDir, enable_controllers: bool) -> Result<(), CgroupError> {
    let relative =
        cgroup
            .dir
            .strip_prefix(&cgroup.mount_point)
            .map_err(|_| CgroupError::InvalidPath {
                path: cgroup.dir.display().to_string(),
                reason: format!(
                    "not below the cgroup2 mount at {}",
                    cgroup.mount_point.display()
                ),
            })?;
    let mut current = cgroup.mount_point.clone();
    for component in relative.components() {
        if enable_controllers {
            enable_subtree_controllers(&current)?;
        }
        current.push(component);
        match fs::create_dir(&current) {
            Ok(()) => {}
            Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
            Err(source) => {
                return Err(CgroupError::Create {
                    path: current,
                    source,
                })
            }
        }
    }
    Ok(())
}

/// Enables the controllers of `dir` for its children. Controllers that the
/// kernel rejects one by one, such as when `dir` has processes of its own,
/// are skipped, so the limits that need them fail later with a clear error.
fn enable_subtree_controllers(dir: &Path) -> Result<(), CgroupError> {
    let available = read_file(dir, "cgroup.controllers")?;
    let controllers: Vec<&str> = available.split_whitespace().collect();
    if controllers.is_empty() {
        return Ok(());
    }
    let all = controllers
        .iter()
        .map(|c| format!("+{c}"))
        .collect::<Vec<_>>()
        .join(" ");
    if write_file(dir, "cgroup.subtree_control", &all).is_ok() {
        return Ok(());
    }
    for controller in controllers {
        if let Err(err) = write_file(dir, "cgroup.subtree_control", format!("+{controller}")) {
            tracing::debug!(error = %err, "controller not enabled");
        }
    }
    Ok(())
}

/// Writes `value` to `dir/file`, reporting a missing file as the controller
/// `controller` not being enabled for the cgroup.
fn write_controller_file(
    dir: &Path,
    file: &str,
    value: impl ToString,
    controller: &'static str,
    resource: &'static str,
) -> Result<(), CgroupError> {
    if !dir.join(file).exists() {
        return Err(CgroupError::ControllerMissing {
            path: dir.display().to_string(),
            resource,
            controller,
        });
    }
    write_file(dir, file, value)
}

/// Applies `resources` to the v2 cgroup at `dir`. Zero values mean "unset",
/// and `linux.resources.unified` entries go last so that they override.
pub fn apply(dir: &Path, resources: &LinuxResources) -> Result<(), CgroupError> {
    if let Some(memory) = resources.memory() {
        apply_memory(dir, memory)?;
    }
    if let Some(cpu) = resources.cpu() {
        apply_cpu(dir, cpu)?;
    }
    if let Some(pids) = resources.pids() {
        if pids.limit() != 0 {
            write_controller_file(
                dir,
                "pids.max",
                max_or(pids.limit()),
                "pids",
                "linux.resources.pids",
            )?;
        }
    }
    if let Some(block_io) = resources.block_io() {
        apply_io(dir, block_io)?;
    }
    for limit in resources.hugepage_limits().as_deref().unwrap_or_default() {
        let file = format!("hugetlb.{}.max", limit.page_size());
        if !dir.join(&file).exists() {
            let controllers = read_file(dir, "cgroup.controllers")?;
            if !controllers.split_whitespace().any(|c| c == "hugetlb") {
                return Err(CgroupError::ControllerMissing {
                    path: dir.display().to_string(),
                    resource: "linux.resources.hugepageLimits",
                    controller: "hugetlb",
                });
            }
            return Err(unsupported_page_size(dir, limit.page_size()));
        }
        write_file(dir, &file, max_or(limit.limit()))?;
    }
    if resources.network().is_some() {
        tracing::warn!(path = %dir.display(), "ignoring linux.resources.network: cgroup v2 has no net_cls or net_prio");
    }
    if resources.devices().as_ref().is_some_and(|d| !d.is_empty()) {
        tracing::warn!(path = %dir.display(), "device rules are not enforced on cgroup v2");
    }
    if let Some(unified) = resources.unified() {
        let mut entries: Vec<_> = unified.iter().collect();
        entries.sort();
        for (key, value) in entries {
            apply_unified_entry(dir, key, value)?;
        }
    }
    Ok(())
}

fn apply_unified_entry(dir: &Path, key: &str, value: &str) -> Result<(), CgroupError> {
    let invalid = |reason: String| CgroupError::InvalidValue {
        path: dir.join(key),
        resource: "linux.resources.unified key",
        value: key.to_string(),
        reason,
    };
    if key.is_empty() || key.contains('/') || key.starts_with('.') {
        return Err(invalid(
            "must be the name of a file in the cgroup directory".to_string(),
        ));
    }
    if !dir.join(key).exists() {
        let controller = key.split('.').next().unwrap_or(key);
        return Err(invalid(format!(
            "no such file; the {controller} controller may not be enabled for this cgroup"
        )));
    }
    write_file(dir, key, value)
}

fn apply_memory(dir: &Path, memory: &LinuxMemory) -> Result<(), CgroupError> {
    let limit = memory.limit().unwrap_or(0);
    let swap = memory.swap().unwrap_or(0);
    let swap_max = swap_to_v2(swap, limit).map_err(|reason| CgroupError::InvalidValue {
        path: dir.join("memory.swap.max"),
        resource: "memory+swap limit",
        value: swap.to_string(),
        reason,
    })?;
    let resource = "linux.resources.memory";
    // memory.swap.max first: a lower memory.max can then push pages to swap
    // within the new swap limit.
    if swap_max != 0 {
        write_controller_file(dir, "memory.swap.max", max_or(swap_max), "memory", resource)?;
    }
    if limit != 0 {
        if limit < -1 {
            return Err(CgroupError::InvalidValue {
                path: dir.join("memory.max"),
                resource: "memory limit",
                value: limit.to_string(),
                reason: "negative (use -1 for no limit)".to_string(),
            });
        }
        write_controller_file(dir, "memory.max", max_or(limit), "memory", resource)?;
    }
    if let Some(reservation) = memory.reservation().filter(|v| *v != 0) {
        write_controller_file(dir, "memory.low", max_or(reservation), "memory", resource)?;
    }
    #[allow(deprecated)]
    let kernel = memory.kernel();
    if kernel.is_some() || memory.kernel_tcp().is_some() {
        tracing::warn!(path = %dir.display(), "ignoring kernel memory limits: cgroup v2 has none");
    }
    if memory.swappiness().is_some() || memory.disable_oom_killer() == Some(true) {
        tracing::warn!(path = %dir.display(), "ignoring memory swappiness and disableOOMKiller: cgroup v2 has neither");
    }
    Ok(())
}

fn apply_cpu(dir: &Path, cpu: &LinuxCpu) -> Result<(), CgroupError> {
    let resource = "linux.resources.cpu";
    if cpu.realtime_runtime().is_some_and(|v| v != 0)
        || cpu.realtime_period().is_some_and(|v| v != 0)
    {
        return Err(CgroupError::InvalidValue {
            path: dir.to_path_buf(),
            resource: "cpu realtime runtime/period",
            value: format!(
                "runtime {}, period {}",
                cpu.realtime_runtime().unwrap_or(0),
                cpu.realtime_period().unwrap_or(0)
            ),
            reason: "cgroup v2 has no real-time CPU limits".to_string(),
        });
    }
    if let Some(shares) = cpu.shares().filter(|v| *v != 0) {
        write_controller_file(
            dir,
            "cpu.weight",
            cpu_shares_to_weight(shares),
            "cpu",
            resource,
        )?;
    }
    let quota = cpu.quota().unwrap_or(0);
    let period = cpu.period().unwrap_or(0);
    if quota != 0 || period != 0 {
        // "$MAX $PERIOD", or "$MAX" alone to keep the current period.
        let mut line = max_or(if quota > 0 { quota } else { -1 });
        if period != 0 {
            line = format!("{line} {period}");
        }
        write_controller_file(dir, "cpu.max", line, "cpu", resource)?;
    }
    if let Some(burst) = cpu.burst() {
        write_controller_file(dir, "cpu.max.burst", burst, "cpu", resource)?;
    }
    if let Some(idle) = cpu.idle() {
        write_controller_file(dir, "cpu.idle", idle, "cpu", resource)?;
    }
    if let Some(cpus) = cpu.cpus().as_deref().filter(|s| !s.is_empty()) {
        write_controller_file(dir, "cpuset.cpus", cpus, "cpuset", resource)?;
    }
    if let Some(mems) = cpu.mems().as_deref().filter(|s| !s.is_empty()) {
        write_controller_file(dir, "cpuset.mems", mems, "cpuset", resource)?;
    }
    Ok(())
}

/// Applies blkio values to the io controller. With BFQ, `io.bfq.weight`
/// takes the v1 weight unchanged. Otherwise, `io.weight` takes it converted.
/// Leaf weights have no v2 equivalent and are ignored.
fn apply_io(dir: &Path, block_io: &LinuxBlockIo) -> Result<(), CgroupError> {
    let resource = "linux.resources.blockIO";
    let bfq = dir.join("io.bfq.weight").exists();
    let (weight_file, convert): (&str, fn(u64) -> u64) = if bfq {
        ("io.bfq.weight", |w| w)
    } else {
        ("io.weight", blkio_weight_to_io_weight)
    };
    if let Some(weight) = block_io.weight().filter(|v| *v != 0) {
        write_controller_file(dir, weight_file, convert(weight.into()), "io", resource)?;
    }
    for device in block_io.weight_device().as_deref().unwrap_or_default() {
        let (major, minor) = device_numbers(dir, device.major(), device.minor())?;
        if let Some(weight) = device.weight().filter(|v| *v != 0) {
            let line = format!("{major}:{minor} {}", convert(weight.into()));
            write_controller_file(dir, weight_file, line, "io", resource)?;
        }
    }
    let throttles = [
        ("rbps", block_io.throttle_read_bps_device()),
        ("wbps", block_io.throttle_write_bps_device()),
        ("riops", block_io.throttle_read_iops_device()),
        ("wiops", block_io.throttle_write_iops_device()),
    ];
    for (key, list) in throttles {
        for device in list.as_deref().unwrap_or_default() {
            let (major, minor) = device_numbers(dir, device.major(), device.minor())?;
            let line = format!("{major}:{minor} {key}={}", device.rate());
            write_controller_file(dir, "io.max", line, "io", resource)?;
        }
    }
    Ok(())
}

/// Time a v2 freeze or thaw may take before it counts as failed.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes `cgroup.freeze` and waits until `cgroup.events` reports the new
/// state. A freeze that times out is undone.
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let target = if frozen { "1" } else { "0" };
    write_file(dir, "cgroup.freeze", target)?;
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    loop {
        if events_frozen(dir)? == frozen {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if frozen {
                let _ = write_file(dir, "cgroup.freeze", "0");
            }
            return Err(CgroupError::FreezeTimeout {
                path: dir.to_path_buf(),
                state: if frozen { "frozen" } else { "thawed" },
            });
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Returns true when `cgroup.events` reports the cgroup frozen.
pub fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    events_frozen(dir)
}

fn events_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let events = read_file(dir, "cgroup.events")?;
    for line in events.lines() {
        if let Some(value) = line.strip_prefix("frozen ") {
            return Ok(value.trim() == "1");
        }
    }
    Err(CgroupError::Parse {
        path: PathBuf::from(dir).join("cgroup.events"),
        text: events,
    })
}
