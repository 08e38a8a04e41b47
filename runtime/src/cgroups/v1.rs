//! cgroup v1: directory creation, resource limits and the freezer, through
//! the controllers of `cgroups_rs::fs`.
//!
//! The controllers are built with `XController::new(dir, mount_point, false)`
//! so that they point at the container's cgroup directly. `cgroups_rs` has
//! no setter for `cpu.idle` and `cpu.cfs_burst_us`, so those files are
//! written directly.

use std::collections::BTreeMap;
use std::fs;
use std::path::Path;
use std::thread;
use std::time::{Duration, Instant};

use cgroups_rs::fs::blkio::BlkIoController;
use cgroups_rs::fs::cpu::CpuController;
use cgroups_rs::fs::cpuset::CpuSetController;
use cgroups_rs::fs::hugetlb::HugeTlbController;
use cgroups_rs::fs::net_cls::NetClsController;
use cgroups_rs::fs::net_prio::NetPrioController;
use cgroups_rs::fs::pid::PidController;
use cgroups_rs::fs::{Controller, MaxValue};
use oci_spec::runtime::{LinuxBlockIo, LinuxCpu, LinuxNetwork, LinuxResources};

use super::files::{read_file, setter_error, write_errno, write_file};
use super::{devices, memory_v1, CgroupDir, CgroupError};

/// Creates the cgroup directory of every v1 hierarchy. A new cpuset cgroup
/// starts with empty `cpuset.cpus` and `cpuset.mems`, which would reject
/// every process, so they are copied from the nearest non-empty ancestor.
pub fn create(dirs: &BTreeMap<String, CgroupDir>) -> Result<(), CgroupError> {
    for (name, cgroup) in dirs {
        fs::create_dir_all(&cgroup.dir).map_err(|source| CgroupError::Create {
            path: cgroup.dir.clone(),
            source,
        })?;
        if name == "cpuset" {
            let cpuset =
                CpuSetController::new(cgroup.dir.clone(), cgroup.mount_point.clone(), false);
            // `create` runs the parent copy but only logs copy errors, so
            // the result is checked below.
            cpuset
                .create()
                .map_err(|err| setter_error(&cgroup.dir, "cpuset.cpus", "<parent's>", err))?;
            for file in ["cpuset.cpus", "cpuset.mems"] {
                if read_file(&cgroup.dir, file)?.is_empty() {
                    return Err(CgroupError::Other {
                        path: cgroup.dir.display().to_string(),
                        message: format!(
                            "{file} is empty after copying it from the parent cgroups"
                        ),
                    });
                }
            }
        }
    }
    Ok(())
}

/// Looks up the directory of `controller`, failing when the controller is
/// not mounted although `resource` needs it.
fn require<'a>(
    path: &str,
    dirs: &'a BTreeMap<String, CgroupDir>,
    controller: &'static str,
    resource: &'static str,
) -> Result<&'a CgroupDir, CgroupError> {
    dirs.get(controller)
        .ok_or_else(|| CgroupError::ControllerMissing {
            path: path.to_string(),
            resource,
            controller,
        })
}

/// Applies `resources` to the v1 cgroups. Zero values mean "unset", as in
/// runc's conversion of the OCI spec.
pub fn apply(
    path: &str,
    dirs: &BTreeMap<String, CgroupDir>,
    resources: &LinuxResources,
) -> Result<(), CgroupError> {
    apply_limits(path, dirs, resources)?;
    if let Some(cgroup) = dirs.get("devices") {
        devices::apply_v1(cgroup, resources.devices().as_deref().unwrap_or_default())?;
    }
    Ok(())
}

/// Applies every part of `resources` except the device rules.
pub fn apply_limits(
    path: &str,
    dirs: &BTreeMap<String, CgroupDir>,
    resources: &LinuxResources,
) -> Result<(), CgroupError> {
    if let Some(memory) = resources.memory() {
        if memory_v1::is_set(memory) {
            let cgroup = require(path, dirs, "memory", "linux.resources.memory")?;
            memory_v1::apply(cgroup, memory)?;
        }
    }
    if let Some(cpu) = resources.cpu() {
        apply_cpu(path, dirs, cpu)?;
    }
    if let Some(pids) = resources.pids() {
        if pids.limit() != 0 {
            let cgroup = require(path, dirs, "pids", "linux.resources.pids")?;
            let ctl = PidController::new(cgroup.dir.clone(), cgroup.mount_point.clone(), false);
            let max = if pids.limit() > 0 {
                MaxValue::Value(pids.limit())
            } else {
                MaxValue::Max
            };
            ctl.set_pid_max(max)
                .map_err(|e| setter_error(&cgroup.dir, "pids.max", max, e))?;
        }
    }
    if let Some(block_io) = resources.block_io() {
        apply_blkio(path, dirs, block_io)?;
    }
    if let Some(limits) = resources.hugepage_limits() {
        if !limits.is_empty() {
            let cgroup = require(path, dirs, "hugetlb", "linux.resources.hugepageLimits")?;
            let ctl = HugeTlbController::new(cgroup.dir.clone(), cgroup.mount_point.clone(), false);
            for limit in limits {
                let file = format!("hugetlb.{}.limit_in_bytes", limit.page_size());
                if !cgroup.dir.join(&file).exists() {
                    return Err(unsupported_page_size(&cgroup.dir, limit.page_size()));
                }
                let bytes =
                    u64::try_from(limit.limit()).map_err(|_| CgroupError::InvalidValue {
                        path: cgroup.dir.join(&file),
                        resource: "hugepage limit",
                        value: limit.limit().to_string(),
                        reason: "must not be negative".to_string(),
                    })?;
                ctl.set_limit_in_bytes(limit.page_size(), bytes)
                    .map_err(|e| setter_error(&cgroup.dir, &file, bytes, e))?;
            }
        }
    }
    if let Some(network) = resources.network() {
        apply_network(path, dirs, network)?;
    }
    Ok(())
}

pub fn unsupported_page_size(dir: &Path, page_size: &str) -> CgroupError {
    CgroupError::InvalidValue {
        path: dir.to_path_buf(),
        resource: "hugepage size",
        value: page_size.to_string(),
        reason:
            "the kernel has no hugetlb file for this page size (expected a size such as 2MB or 1GB)"
                .to_string(),
    }
}

/// Writes the real-time period and runtime in the order the kernel
/// accepts. The runtime must fit in the period at every step, so a
/// shrinking period goes after the runtime and a growing one before it.
fn set_rt(
    dir: &Path,
    ctl: &CpuController,
    rt_period: Option<u64>,
    rt_runtime: Option<i64>,
) -> Result<(), CgroupError> {
    let write_period = |period: u64| {
        ctl.set_rt_period_us(period)
            .map_err(|e| setter_error(dir, "cpu.rt_period_us", period, e))
    };
    let write_runtime = |runtime: i64| {
        ctl.set_rt_runtime(runtime)
            .map_err(|e| setter_error(dir, "cpu.rt_runtime_us", runtime, e))
    };
    match (rt_period, rt_runtime) {
        (Some(period), Some(runtime)) => {
            let text = read_file(dir, "cpu.rt_period_us")?;
            let current: u64 = text.parse().map_err(|_| CgroupError::Parse {
                path: dir.join("cpu.rt_period_us"),
                text,
            })?;
            if period < current {
                write_runtime(runtime)?;
                write_period(period)
            } else {
                write_period(period)?;
                write_runtime(runtime)
            }
        }
        (Some(period), None) => write_period(period),
        (None, Some(runtime)) => write_runtime(runtime),
        (None, None) => Ok(()),
    }
}

fn apply_cpu(
    path: &str,
    dirs: &BTreeMap<String, CgroupDir>,
    cpu: &LinuxCpu,
) -> Result<(), CgroupError> {
    let shares = cpu.shares().filter(|v| *v != 0);
    let quota = cpu.quota().filter(|v| *v != 0);
    let period = cpu.period().filter(|v| *v != 0);
    let rt_runtime = cpu.realtime_runtime().filter(|v| *v != 0);
    let rt_period = cpu.realtime_period().filter(|v| *v != 0);
    let uses_cpu = shares.is_some()
        || quota.is_some()
        || period.is_some()
        || rt_runtime.is_some()
        || rt_period.is_some()
        || cpu.idle().is_some()
        || cpu.burst().is_some();

    if uses_cpu {
        let cgroup = require(path, dirs, "cpu", "linux.resources.cpu")?;
        let dir = &cgroup.dir;
        let ctl = CpuController::new(dir.clone(), cgroup.mount_point.clone(), false);
        if let Some(shares) = shares {
            ctl.set_shares(shares)
                .map_err(|e| setter_error(dir, "cpu.shares", shares, e))?;
            // The kernel clamps out-of-range shares instead of failing.
            let applied = read_file(dir, "cpu.shares")?;
            if applied != shares.to_string() {
                return Err(CgroupError::InvalidValue {
                    path: dir.join("cpu.shares"),
                    resource: "cpu shares",
                    value: shares.to_string(),
                    reason: format!("the kernel clamped it to {applied}"),
                });
            }
        }
        set_cfs(dir, &ctl, quota, period)?;
        set_rt(dir, &ctl, rt_period, rt_runtime)?;
        if let Some(idle) = cpu.idle() {
            write_file(dir, "cpu.idle", idle)?;
        }
        if let Some(burst) = cpu.burst() {
            write_file(dir, "cpu.cfs_burst_us", burst)?;
        }
    }

    let cpus = cpu.cpus().as_deref().filter(|s| !s.is_empty());
    let mems = cpu.mems().as_deref().filter(|s| !s.is_empty());
    if cpus.is_some() || mems.is_some() {
        let cgroup = require(path, dirs, "cpuset", "linux.resources.cpu.cpus/mems")?;
        let ctl = CpuSetController::new(cgroup.dir.clone(), cgroup.mount_point.clone(), false);
        if let Some(cpus) = cpus {
            ctl.set_cpus(cpus)
                .map_err(|e| setter_error(&cgroup.dir, "cpuset.cpus", cpus, e))?;
        }
        if let Some(mems) = mems {
            ctl.set_mems(mems)
                .map_err(|e| setter_error(&cgroup.dir, "cpuset.mems", mems, e))?;
        }
    }
    Ok(())
}

/// Writes the CFS period, then the quota. A period that the current quota
/// does not fit (EINVAL) is retried after the quota.
fn set_cfs(
    dir: &Path,
    ctl: &CpuController,
    quota: Option<i64>,
    period: Option<u64>,
) -> Result<(), CgroupError> {
    let set_period = |p: u64| {
        ctl.set_cfs_period(p)
            .map_err(|e| setter_error(dir, "cpu.cfs_period_us", p, e))
    };
    let set_quota = |q: i64| {
        ctl.set_cfs_quota(q)
            .map_err(|e| setter_error(dir, "cpu.cfs_quota_us", q, e))
    };
    if let Some(p) = period {
        match set_period(p) {
            Ok(()) => {}
            Err(err) if write_errno(&err) == Some(libc::EINVAL) && quota.is_some() => {
                if let Some(q) = quota {
                    set_quota(q)?;
                }
                return set_period(p);
            }
            Err(err) => return Err(err),
        }
    }
    if let Some(q) = quota {
        set_quota(q)?;
    }
    Ok(())
}

fn apply_blkio(
    path: &str,
    dirs: &BTreeMap<String, CgroupDir>,
    block_io: &LinuxBlockIo,
) -> Result<(), CgroupError> {
    let weight = block_io.weight().filter(|v| *v != 0);
    let leaf_weight = block_io.leaf_weight().filter(|v| *v != 0);
    let weight_devices = block_io.weight_device().as_deref().unwrap_or_default();
    let throttles = [
        (
            "blkio.throttle.read_bps_device",
            block_io.throttle_read_bps_device(),
        ),
        (
            "blkio.throttle.write_bps_device",
            block_io.throttle_write_bps_device(),
        ),
        (
            "blkio.throttle.read_iops_device",
            block_io.throttle_read_iops_device(),
        ),
        (
            "blkio.throttle.write_iops_device",
            block_io.throttle_write_iops_device(),
        ),
    ];
    let any_throttle = throttles
        .iter()
        .any(|(_, list)| list.as_ref().is_some_and(|l| !l.is_empty()));
    if weight.is_none() && leaf_weight.is_none() && weight_devices.is_empty() && !any_throttle {
        return Ok(());
    }

    let cgroup = require(path, dirs, "blkio", "linux.resources.blockIO")?;
    let dir = &cgroup.dir;
    let ctl = BlkIoController::new(dir.clone(), cgroup.mount_point.clone(), false);
    if let Some(weight) = weight {
        ctl.set_weight(weight.into())
            .map_err(|e| setter_error(dir, "blkio.weight", weight, e))?;
    }
    if let Some(leaf_weight) = leaf_weight {
        ctl.set_leaf_weight(leaf_weight.into())
            .map_err(|e| setter_error(dir, "blkio.leaf_weight", leaf_weight, e))?;
    }
    for device in weight_devices {
        let (major, minor) = device_numbers(dir, device.major(), device.minor())?;
        if let Some(w) = device.weight() {
            ctl.set_weight_for_device(major, minor, w.into())
                .map_err(|e| {
                    setter_error(
                        dir,
                        "blkio.weight_device",
                        format!("{major}:{minor} {w}"),
                        e,
                    )
                })?;
        }
        if let Some(w) = device.leaf_weight() {
            ctl.set_leaf_weight_for_device(major, minor, w.into())
                .map_err(|e| {
                    setter_error(
                        dir,
                        "blkio.leaf_weight_device",
                        format!("{major}:{minor} {w}"),
                        e,
                    )
                })?;
        }
    }
    for (file, list) in throttles {
        for device in list.as_deref().unwrap_or_default() {
            let (major, minor) = device_numbers(dir, device.major(), device.minor())?;
            let rate = device.rate();
            let result = match file {
                "blkio.throttle.read_bps_device" => {
                    ctl.throttle_read_bps_for_device(major, minor, rate)
                }
                "blkio.throttle.write_bps_device" => {
                    ctl.throttle_write_bps_for_device(major, minor, rate)
                }
                "blkio.throttle.read_iops_device" => {
                    ctl.throttle_read_iops_for_device(major, minor, rate)
                }
                _ => ctl.throttle_write_iops_for_device(major, minor, rate),
            };
            result.map_err(|e| setter_error(dir, file, format!("{major}:{minor} {rate}"), e))?;
        }
    }
    Ok(())
}

/// Checks that a block device's numbers are not negative.
pub fn device_numbers(dir: &Path, major: i64, minor: i64) -> Result<(u64, u64), CgroupError> {
    match (u64::try_from(major), u64::try_from(minor)) {
        (Ok(major), Ok(minor)) => Ok((major, minor)),
        _ => Err(CgroupError::InvalidValue {
            path: dir.to_path_buf(),
            resource: "block device",
            value: format!("{major}:{minor}"),
            reason: "device numbers must not be negative".to_string(),
        }),
    }
}

fn apply_network(
    path: &str,
    dirs: &BTreeMap<String, CgroupDir>,
    network: &LinuxNetwork,
) -> Result<(), CgroupError> {
    if let Some(class_id) = network.class_id() {
        let cgroup = require(path, dirs, "net_cls", "linux.resources.network.classID")?;
        let ctl = NetClsController::new(cgroup.dir.clone(), cgroup.mount_point.clone());
        ctl.set_class(class_id.into())
            .map_err(|e| setter_error(&cgroup.dir, "net_cls.classid", class_id, e))?;
    }
    let priorities = network.priorities().as_deref().unwrap_or_default();
    if !priorities.is_empty() {
        let cgroup = require(path, dirs, "net_prio", "linux.resources.network.priorities")?;
        let ctl = NetPrioController::new(cgroup.dir.clone(), cgroup.mount_point.clone());
        for prio in priorities {
            ctl.set_if_prio(prio.name(), prio.priority().into())
                .map_err(|e| {
                    setter_error(
                        &cgroup.dir,
                        "net_prio.ifpriomap",
                        format!("{} {}", prio.name(), prio.priority()),
                        e,
                    )
                })?;
        }
    }
    Ok(())
}

/// Time a v1 freeze or thaw may take before it counts as failed.
const FREEZE_TIMEOUT: Duration = Duration::from_secs(5);

/// Writes FROZEN or THAWED to `freezer.state` and waits until the kernel
/// reports that state. While the state reads FREEZING, the request is
/// repeated, since a process that forks during the freeze can leave the
/// cgroup FREEZING. A freeze that times out is undone.
pub fn set_frozen(dir: &Path, frozen: bool) -> Result<(), CgroupError> {
    let target = if frozen { "FROZEN" } else { "THAWED" };
    let deadline = Instant::now() + FREEZE_TIMEOUT;
    loop {
        write_file(dir, "freezer.state", target)?;
        if read_file(dir, "freezer.state")? == target {
            return Ok(());
        }
        if Instant::now() >= deadline {
            if frozen {
                let _ = write_file(dir, "freezer.state", "THAWED");
            }
            return Err(CgroupError::FreezeTimeout {
                path: dir.to_path_buf(),
                state: target,
            });
        }
        thread::sleep(Duration::from_millis(1));
    }
}

/// Returns true when `freezer.state` reads FROZEN. A cgroup that is still
/// FREEZING counts as not frozen.
pub fn is_frozen(dir: &Path) -> Result<bool, CgroupError> {
    let state = read_file(dir, "freezer.state")?;
    match state.as_str() {
        "FROZEN" => Ok(true),
        "THAWED" | "FREEZING" => Ok(false),
        _ => Err(CgroupError::Parse {
            path: dir.join("freezer.state"),
            text: state,
        }),
    }
}
