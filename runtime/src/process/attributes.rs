//! Scheduling and execution attributes of the container's process:
//! `process.scheduler`, `process.ioPriority` and `linux.personality`.

use oci_spec::runtime::{
    IOPriorityClass, LinuxPersonality, LinuxPersonalityDomain, LinuxSchedulerFlag,
    LinuxSchedulerPolicy, Scheduler,
};

use crate::{Error, Result};

/// `struct sched_attr` of sched_setattr(2), version 1 (56 bytes).
#[repr(C)]
#[derive(Debug, Default)]
struct SchedAttr {
    size: u32,
    policy: u32,
    flags: u64,
    nice: i32,
    priority: u32,
    runtime: u64,
    deadline: u64,
    period: u64,
    util_min: u32,
    util_max: u32,
}

fn policy_number(policy: LinuxSchedulerPolicy) -> u32 {
    match policy {
        LinuxSchedulerPolicy::SchedOther => 0,
        LinuxSchedulerPolicy::SchedFifo => 1,
        LinuxSchedulerPolicy::SchedRr => 2,
        LinuxSchedulerPolicy::SchedBatch => 3,
        LinuxSchedulerPolicy::SchedIso => 4,
        LinuxSchedulerPolicy::SchedIdle => 5,
        LinuxSchedulerPolicy::SchedDeadline => 6,
    }
}

fn flag_bit(flag: LinuxSchedulerFlag) -> u64 {
    match flag {
        LinuxSchedulerFlag::SchedResetOnFork => 0x01,
        LinuxSchedulerFlag::SchedFlagReclaim => 0x02,
        LinuxSchedulerFlag::SchedFlagDLOverrun => 0x04,
        LinuxSchedulerFlag::SchedFlagKeepPolicy => 0x08,
        LinuxSchedulerFlag::SchedFlagKeepParams => 0x10,
        LinuxSchedulerFlag::SchedFlagUtilClampMin => 0x20,
        LinuxSchedulerFlag::SchedFlagUtilClampMax => 0x40,
    }
}

/// Checks the scheduler settings before anything is created, with the
/// kernel's rules for each policy.
pub fn check_scheduler(scheduler: &Scheduler) -> Result<()> {
    let policy = *scheduler.policy();
    let priority = scheduler.priority().unwrap_or(0);
    let realtime = matches!(
        policy,
        LinuxSchedulerPolicy::SchedFifo | LinuxSchedulerPolicy::SchedRr
    );
    if realtime && !(1..=99).contains(&priority) {
        return Err(Error::Spec(format!(
            "process.scheduler: priority {priority} of {policy} must be 1 to 99"
        )));
    }
    if !realtime && priority != 0 {
        return Err(Error::Spec(format!(
            "process.scheduler: priority {priority} is only valid with SCHED_FIFO or SCHED_RR"
        )));
    }
    if let Some(nice) = scheduler.nice() {
        if !(-20..=19).contains(nice) {
            return Err(Error::Spec(format!(
                "process.scheduler: nice {nice} must be -20 to 19"
            )));
        }
    }
    if policy == LinuxSchedulerPolicy::SchedIso {
        return Err(Error::Spec(
            "process.scheduler: SCHED_ISO does not exist in Linux".into(),
        ));
    }
    Ok(())
}

/// Applies `process.scheduler` to the calling process.
pub fn set_scheduler(scheduler: &Scheduler) -> Result<()> {
    let attr = SchedAttr {
        size: std::mem::size_of::<SchedAttr>() as u32,
        policy: policy_number(*scheduler.policy()),
        flags: scheduler
            .flags()
            .iter()
            .flatten()
            .map(|f| flag_bit(*f))
            .fold(0, |a, b| a | b),
        nice: scheduler.nice().unwrap_or(0),
        priority: scheduler.priority().unwrap_or(0) as u32,
        runtime: scheduler.runtime().unwrap_or(0),
        deadline: scheduler.deadline().unwrap_or(0),
        period: scheduler.period().unwrap_or(0),
        ..SchedAttr::default()
    };
    // SAFETY: sched_setattr reads `attr.size` bytes from the pointer, which
    // points to a live struct of that size.
    let rc = unsafe { libc::syscall(libc::SYS_sched_setattr, 0, &attr as *const SchedAttr, 0) };
    if rc != 0 {
        return Err(Error::io(
            format!("set scheduler {}", scheduler.policy()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Applies `process.ioPriority` with ioprio_set(2).
pub fn set_io_priority(class: IOPriorityClass, priority: i64) -> Result<()> {
    const IOPRIO_WHO_PROCESS: libc::c_int = 1;
    const IOPRIO_CLASS_SHIFT: i64 = 13;
    let class_number = match class {
        IOPriorityClass::IoprioClassRt => 1,
        IOPriorityClass::IoprioClassBe => 2,
        IOPriorityClass::IoprioClassIdle => 3,
    };
    if !(0..=7).contains(&priority) {
        return Err(Error::Spec(format!(
            "process.ioPriority: priority {priority} must be 0 to 7"
        )));
    }
    let value = (class_number << IOPRIO_CLASS_SHIFT) | priority;
    // SAFETY: ioprio_set takes three integers and touches no memory.
    let rc = unsafe { libc::syscall(libc::SYS_ioprio_set, IOPRIO_WHO_PROCESS, 0, value) };
    if rc != 0 {
        return Err(Error::io(
            format!("set I/O priority {class} {priority}"),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

/// Checks `linux.personality`: only the LINUX and LINUX32 domains exist
/// in the runtime spec, and no flags are defined.
pub fn check_personality(personality: &LinuxPersonality) -> Result<()> {
    if let Some(flag) = personality.flags().iter().flatten().next() {
        return Err(Error::Spec(format!(
            "linux.personality: unknown flag {flag:?}: the runtime spec defines none"
        )));
    }
    Ok(())
}

/// Applies `linux.personality` with personality(2).
pub fn set_personality(personality: &LinuxPersonality) -> Result<()> {
    const PER_LINUX: libc::c_ulong = 0x0000;
    const PER_LINUX32: libc::c_ulong = 0x0008;
    let persona = match personality.domain() {
        LinuxPersonalityDomain::PerLinux => PER_LINUX,
        LinuxPersonalityDomain::PerLinux32 => PER_LINUX32,
    };
    // SAFETY: personality takes an integer and touches no memory.
    if unsafe { libc::personality(persona) } < 0 {
        return Err(Error::io(
            format!("set personality {:?}", personality.domain()),
            std::io::Error::last_os_error(),
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scheduler(json: &str) -> Scheduler {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn sched_attr_has_the_kernel_size() {
        assert_eq!(std::mem::size_of::<SchedAttr>(), 56);
    }

    #[test]
    fn realtime_priority_range() {
        assert!(check_scheduler(&scheduler(r#"{"policy":"SCHED_FIFO","priority":10}"#)).is_ok());
        assert!(check_scheduler(&scheduler(r#"{"policy":"SCHED_RR","priority":0}"#)).is_err());
        assert!(check_scheduler(&scheduler(r#"{"policy":"SCHED_OTHER","priority":3}"#)).is_err());
        assert!(check_scheduler(&scheduler(r#"{"policy":"SCHED_BATCH","nice":25}"#)).is_err());
    }

    #[test]
    fn personality_flags_are_rejected() {
        let personality: LinuxPersonality =
            serde_json::from_str(r#"{"domain":"LINUX32","flags":["X"]}"#).unwrap();
        assert!(check_personality(&personality).is_err());
    }
}
