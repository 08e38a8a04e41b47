//! Changing the resource limits of a live container (`hull update`), with
//! the rules of runc 1.1's `update`.
//!
//! Only the values runc 1.1 updates are taken: memory limit, reservation
//! and swap, CPU shares, CFS and real-time quota and period, cpuset CPUs
//! and memory nodes, blkio weight, pids limit and `unified`. A zero value
//! keeps the current setting. Kernel memory limits are ignored with a
//! warning.

use std::collections::HashMap;

use oci_spec::runtime::{LinuxCpu, LinuxMemory, LinuxPids, LinuxResources};

use crate::container::{Container, Status};
use crate::state::{self, Lock};
use crate::{Error, Result};

/// The values of one update. Zero and empty values leave the current
/// setting in place.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResourceUpdate {
    /// Memory limit in bytes, -1 for no limit.
    pub memory: i64,
    pub memory_reservation: i64,
    /// Memory plus swap limit in bytes, -1 for no limit.
    pub memory_swap: i64,
    /// Ignored with a warning, as by runc 1.1.
    pub kernel_memory: i64,
    /// Ignored with a warning, as by runc 1.1.
    pub kernel_memory_tcp: i64,
    pub cpu_shares: u64,
    /// CFS quota in microseconds per period, -1 for no limit.
    pub cpu_quota: i64,
    /// CFS period in microseconds.
    pub cpu_period: u64,
    pub cpu_rt_runtime: i64,
    pub cpu_rt_period: u64,
    pub cpuset_cpus: String,
    pub cpuset_mems: String,
    pub blkio_weight: u16,
    /// Maximum number of processes, -1 for no limit.
    pub pids_limit: i64,
    /// cgroup v2 files and values, replacing the stored ones when set.
    pub unified: Option<HashMap<String, String>>,
}

impl ResourceUpdate {
    /// Takes the updatable values of `resources`. Absent values are zero.
    pub fn from_resources(resources: &LinuxResources) -> ResourceUpdate {
        let mut update = ResourceUpdate::default();
        if let Some(memory) = resources.memory() {
            update.memory = memory.limit().unwrap_or(0);
            update.memory_reservation = memory.reservation().unwrap_or(0);
            update.memory_swap = memory.swap().unwrap_or(0);
            #[allow(deprecated)]
            let kernel = memory.kernel();
            update.kernel_memory = kernel.unwrap_or(0);
            update.kernel_memory_tcp = memory.kernel_tcp().unwrap_or(0);
        }
        if let Some(cpu) = resources.cpu() {
            update.cpu_shares = cpu.shares().unwrap_or(0);
            update.cpu_quota = cpu.quota().unwrap_or(0);
            update.cpu_period = cpu.period().unwrap_or(0);
            update.cpu_rt_runtime = cpu.realtime_runtime().unwrap_or(0);
            update.cpu_rt_period = cpu.realtime_period().unwrap_or(0);
            update.cpuset_cpus = cpu.cpus().clone().unwrap_or_default();
            update.cpuset_mems = cpu.mems().clone().unwrap_or_default();
        }
        if let Some(block_io) = resources.block_io() {
            update.blkio_weight = block_io.weight().unwrap_or(0);
        }
        if let Some(pids) = resources.pids() {
            update.pids_limit = pids.limit();
        }
        update.unified = resources.unified().clone();
        update
    }

    /// Returns true when a kernel memory value is set. Such values are
    /// ignored.
    pub fn sets_kernel_memory(&self) -> bool {
        self.kernel_memory != 0 || self.kernel_memory_tcp != 0
    }

    /// Fills a CFS quota without a period, or a period without a quota,
    /// with the other value of `current`: runc 1.1 keeps the old value of
    /// the one that is not given, and cgroup v2 writes both in `cpu.max`.
    pub fn complete_cfs(&mut self, current: &ResourceUpdate) {
        if self.cpu_quota != 0 && self.cpu_period == 0 {
            self.cpu_period = current.cpu_period;
        } else if self.cpu_period != 0 && self.cpu_quota == 0 {
            self.cpu_quota = current.cpu_quota;
        }
    }

    /// Returns `base` with every non-zero value of this update written over
    /// it. Kernel memory values are never written.
    pub fn merge_into(&self, base: &LinuxResources) -> LinuxResources {
        let mut merged = base.clone();

        let mut memory = base.memory().unwrap_or_default();
        set_nonzero(&mut memory, self.memory, LinuxMemory::set_limit);
        set_nonzero(
            &mut memory,
            self.memory_reservation,
            LinuxMemory::set_reservation,
        );
        set_nonzero(&mut memory, self.memory_swap, LinuxMemory::set_swap);
        if memory != LinuxMemory::default() {
            merged.set_memory(Some(memory));
        }

        let mut cpu = base.cpu().clone().unwrap_or_default();
        set_nonzero(&mut cpu, self.cpu_shares, LinuxCpu::set_shares);
        set_nonzero(&mut cpu, self.cpu_quota, LinuxCpu::set_quota);
        set_nonzero(&mut cpu, self.cpu_period, LinuxCpu::set_period);
        set_nonzero(
            &mut cpu,
            self.cpu_rt_runtime,
            LinuxCpu::set_realtime_runtime,
        );
        set_nonzero(&mut cpu, self.cpu_rt_period, LinuxCpu::set_realtime_period);
        if !self.cpuset_cpus.is_empty() {
            cpu.set_cpus(Some(self.cpuset_cpus.clone()));
        }
        if !self.cpuset_mems.is_empty() {
            cpu.set_mems(Some(self.cpuset_mems.clone()));
        }
        if cpu != LinuxCpu::default() {
            merged.set_cpu(Some(cpu));
        }

        if self.blkio_weight != 0 {
            let mut block_io = base.block_io().clone().unwrap_or_default();
            block_io.set_weight(Some(self.blkio_weight));
            merged.set_block_io(Some(block_io));
        }
        if self.pids_limit != 0 {
            let mut pids = LinuxPids::default();
            pids.set_limit(self.pids_limit);
            merged.set_pids(Some(pids));
        }
        if let Some(unified) = &self.unified {
            merged.set_unified(Some(unified.clone()));
        }
        merged
    }

    /// Returns the resources that apply exactly this update to a cgroup.
    pub fn to_resources(&self) -> LinuxResources {
        self.merge_into(&LinuxResources::default())
    }
}

fn set_nonzero<T, V: Default + PartialEq>(
    target: &mut T,
    value: V,
    setter: fn(&mut T, Option<V>) -> &mut T,
) {
    if value != V::default() {
        setter(target, Some(value));
    }
}

/// Applies `request` to the cgroup of container `id` and stores the merged
/// resources in its record, so that later commands see them. Fails with
/// "container not running" when the container is stopped. When the kernel
/// rejects a value, the stored resources are applied again.
pub fn update(container: &Container, mut request: ResourceUpdate) -> Result<()> {
    let _lock = Lock::acquire(&container.root, container.id())?;
    // Another update may have finished while this one waited for the lock.
    let mut current_state = state::load(&container.root, container.id())?;
    let current = Container {
        root: container.root.clone(),
        state: current_state.clone(),
    };
    if current.status() == Status::Stopped {
        return Err(Error::NotRunning);
    }

    if request.sets_kernel_memory() {
        tracing::warn!("kernel memory settings are ignored and will be removed");
        request.kernel_memory = 0;
        request.kernel_memory_tcp = 0;
    }
    let stored = current_state
        .config
        .linux()
        .as_ref()
        .and_then(|linux| linux.resources().clone())
        .unwrap_or_default();
    let stored_values = ResourceUpdate::from_resources(&stored);
    request.complete_cfs(&stored_values);

    let cgroup = &current_state.cgroup;
    if let Err(err) = cgroup.update(&request.to_resources()) {
        let mut previous = stored_values;
        previous.kernel_memory = 0;
        previous.kernel_memory_tcp = 0;
        if let Err(revert_err) = cgroup.update(&previous.to_resources()) {
            tracing::warn!(error = %revert_err, "failed to apply the stored resources again after a failed update; the cgroup and the record may differ");
        }
        return Err(err.into());
    }

    let merged = request.merge_into(&stored);
    let mut linux = current_state.config.linux().clone().unwrap_or_default();
    linux.set_resources(Some(merged));
    current_state.config.set_linux(Some(linux));
    state::save(&container.root, &current_state)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resources(json: &str) -> LinuxResources {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn quota_alone_keeps_stored_period() {
        let stored = ResourceUpdate::from_resources(&resources(
            r#"{"cpu": {"quota": 20000, "period": 50000}}"#,
        ));
        let mut request = ResourceUpdate {
            cpu_quota: 10000,
            ..Default::default()
        };
        request.complete_cfs(&stored);
        assert_eq!(request.cpu_quota, 10000);
        assert_eq!(request.cpu_period, 50000);
    }

    #[test]
    fn period_alone_keeps_stored_quota() {
        let stored = ResourceUpdate::from_resources(&resources(
            r#"{"cpu": {"quota": 20000, "period": 50000}}"#,
        ));
        let mut request = ResourceUpdate {
            cpu_period: 100000,
            ..Default::default()
        };
        request.complete_cfs(&stored);
        assert_eq!(request.cpu_quota, 20000);
        assert_eq!(request.cpu_period, 100000);
    }

    #[test]
    fn quota_without_any_period_stays_alone() {
        let mut request = ResourceUpdate {
            cpu_quota: 10000,
            ..Default::default()
        };
        request.complete_cfs(&ResourceUpdate::default());
        assert_eq!(request.cpu_period, 0);
    }

    #[test]
    fn merge_keeps_unset_values() {
        let stored = resources(
            r#"{"memory": {"limit": 1000, "swappiness": 10},
                "cpu": {"shares": 512, "cpus": "0"},
                "pids": {"limit": 20},
                "hugepageLimits": [{"pageSize": "2MB", "limit": 0}]}"#,
        );
        let request = ResourceUpdate {
            memory_reservation: 500,
            cpu_quota: 1000,
            ..Default::default()
        };
        let merged = request.merge_into(&stored);
        let memory = merged.memory().unwrap();
        assert_eq!(memory.limit(), Some(1000));
        assert_eq!(memory.reservation(), Some(500));
        assert_eq!(memory.swappiness(), Some(10));
        let cpu = merged.cpu().clone().unwrap();
        assert_eq!(cpu.shares(), Some(512));
        assert_eq!(cpu.quota(), Some(1000));
        assert_eq!(cpu.cpus().as_deref(), Some("0"));
        assert_eq!(merged.pids().unwrap().limit(), 20);
        assert_eq!(merged.hugepage_limits().as_ref().map(Vec::len), Some(1));
    }

    #[test]
    fn merge_overrides_set_values() {
        let stored = resources(r#"{"memory": {"limit": 1000}, "pids": {"limit": 20}}"#);
        let request = ResourceUpdate {
            memory: -1,
            pids_limit: 64,
            blkio_weight: 300,
            cpuset_mems: "0".into(),
            ..Default::default()
        };
        let merged = request.merge_into(&stored);
        assert_eq!(merged.memory().unwrap().limit(), Some(-1));
        assert_eq!(merged.pids().unwrap().limit(), 64);
        assert_eq!(merged.block_io().clone().unwrap().weight(), Some(300));
        assert_eq!(merged.cpu().clone().unwrap().mems().as_deref(), Some("0"));
    }

    #[test]
    fn empty_update_sets_nothing() {
        let resources = ResourceUpdate::default().to_resources();
        assert_eq!(resources, LinuxResources::default());
    }

    #[test]
    fn kernel_memory_is_not_merged() {
        let request = ResourceUpdate {
            kernel_memory: 1 << 20,
            kernel_memory_tcp: 1 << 20,
            ..Default::default()
        };
        assert!(request.sets_kernel_memory());
        assert_eq!(request.to_resources(), LinuxResources::default());
    }
}
