//! cgroup v1 memory limits through `cgroups_rs::fs::memory::MemController`.

use cgroups_rs::fs::memory::MemController;
use oci_spec::runtime::LinuxMemory;

use super::files::{read_file, setter_error, write_errno};
use super::{CgroupDir, CgroupError};

const LIMIT_FILE: &str = "memory.limit_in_bytes";
const SWAP_FILE: &str = "memory.memsw.limit_in_bytes";

/// Returns true when `memory` sets anything. Zero values mean "unset".
pub fn is_set(memory: &LinuxMemory) -> bool {
    #[allow(deprecated)]
    let kernel = memory.kernel();
    memory.limit().is_some_and(|v| v != 0)
        || memory.swap().is_some_and(|v| v != 0)
        || memory.reservation().is_some_and(|v| v != 0)
        || kernel.is_some_and(|v| v != 0)
        || memory.kernel_tcp().is_some_and(|v| v != 0)
        || memory.swappiness().is_some()
        || memory.disable_oom_killer() == Some(true)
}

/// Returns the memory and memory+swap limits to write, after checking them:
/// a limit of -1 without a swap value also lifts the swap limit, and a
/// memory+swap limit must not be below the memory limit.
pub fn limits(memory: &LinuxMemory) -> Result<(Option<i64>, Option<i64>), String> {
    let limit = memory.limit().filter(|v| *v != 0);
    let mut swap = memory.swap().filter(|v| *v != 0);
    if limit == Some(-1) && swap.is_none() {
        swap = Some(-1);
    }
    for value in [limit, swap].into_iter().flatten() {
        if value < -1 {
            return Err(format!("{value} is negative (use -1 for no limit)"));
        }
    }
    if let (Some(limit), Some(swap)) = (limit, swap) {
        if limit > 0 && swap > 0 && swap < limit {
            return Err(format!(
                "memory+swap limit {swap} is below the memory limit {limit}"
            ));
        }
    }
    Ok((limit, swap))
}

/// Applies `memory` to the cgroup. Kernel memory limits are ignored, as in
/// runc 1.1, because kernels since 5.4 deprecate them.
pub fn apply(cgroup: &CgroupDir, memory: &LinuxMemory) -> Result<(), CgroupError> {
    let dir = &cgroup.dir;
    let ctl = MemController::new(dir.clone(), cgroup.mount_point.clone(), false);
    let (limit, swap) = limits(memory).map_err(|reason| CgroupError::InvalidValue {
        path: dir.join(LIMIT_FILE),
        resource: "memory limit",
        value: format!(
            "limit {}, swap {}",
            memory.limit().unwrap_or(0),
            memory.swap().unwrap_or(0)
        ),
        reason,
    })?;

    let set_limit = |value: i64| {
        ctl.set_limit(value)
            .map_err(|e| explain_limit_error(dir, value, setter_error(dir, LIMIT_FILE, value, e)))
    };
    let set_swap = |value: i64| {
        ctl.set_memswap_limit(value)
            .map_err(|e| setter_error(dir, SWAP_FILE, value, e))
    };
    match (limit, swap) {
        (Some(limit), Some(swap)) => {
            // The kernel keeps memory <= memory+swap at every step: when the
            // memory limit grows, the memory+swap limit must grow first.
            let current: u64 = read_file(dir, LIMIT_FILE)?.parse().unwrap_or(u64::MAX);
            let grows = limit == -1 || (limit as u64) > current;
            if grows {
                set_swap(swap)?;
                set_limit(limit)?;
            } else {
                set_limit(limit)?;
                set_swap(swap)?;
            }
        }
        (Some(limit), None) => set_limit(limit)?,
        (None, Some(swap)) => set_swap(swap)?,
        (None, None) => {}
    }

    if let Some(reservation) = memory.reservation().filter(|v| *v != 0) {
        ctl.set_soft_limit(reservation)
            .map_err(|e| setter_error(dir, "memory.soft_limit_in_bytes", reservation, e))?;
    }
    #[allow(deprecated)]
    if memory.kernel().is_some_and(|v| v != 0) {
        tracing::warn!(path = %dir.display(), "ignoring linux.resources.memory.kernel: kernel memory limits are deprecated");
    }
    if let Some(tcp) = memory.kernel_tcp().filter(|v| *v != 0) {
        ctl.set_tcp_limit(tcp)
            .map_err(|e| setter_error(dir, "memory.kmem.tcp.limit_in_bytes", tcp, e))?;
    }
    if let Some(swappiness) = memory.swappiness() {
        // -1 in the Go spec (u64::MAX here) keeps the inherited value.
        if swappiness != u64::MAX {
            if swappiness > 100 {
                return Err(CgroupError::InvalidValue {
                    path: dir.join("memory.swappiness"),
                    resource: "memory swappiness",
                    value: swappiness.to_string(),
                    reason: "the valid range is 0 to 100".to_string(),
                });
            }
            ctl.set_swappiness(swappiness)
                .map_err(|e| setter_error(dir, "memory.swappiness", swappiness, e))?;
        }
    }
    if memory.disable_oom_killer() == Some(true) {
        ctl.disable_oom_killer()
            .map_err(|e| setter_error(dir, "memory.oom_control", 1, e))?;
    }
    Ok(())
}

/// Replaces the kernel's EBUSY (limit below current usage) and EINVAL
/// (limit above memory+swap) with errors that state the cause.
fn explain_limit_error(dir: &std::path::Path, value: i64, err: CgroupError) -> CgroupError {
    let reason = match write_errno(&err) {
        Some(libc::EBUSY) => {
            let usage =
                read_file(dir, "memory.usage_in_bytes").unwrap_or_else(|_| "unknown".into());
            format!("the cgroup already uses {usage} bytes and the kernel cannot reclaim enough")
        }
        Some(libc::EINVAL) => {
            let swap = read_file(dir, SWAP_FILE).unwrap_or_else(|_| "unknown".into());
            format!("the kernel rejected it (memory+swap limit is {swap})")
        }
        _ => return err,
    };
    CgroupError::InvalidValue {
        path: dir.join(LIMIT_FILE),
        resource: "memory limit",
        value: value.to_string(),
        reason,
    }
}
