//! The default mounts, namespaces, masked paths and resources of a
//! non-privileged container.

use oci_spec::runtime::{
    LinuxCpuBuilder, LinuxDeviceCgroupBuilder, LinuxMemoryBuilder, LinuxNamespace,
    LinuxNamespaceBuilder, LinuxNamespaceType, LinuxPidsBuilder, LinuxResources,
    LinuxResourcesBuilder, Mount, MountBuilder,
};

use super::options::{BundleOptions, NetworkMode};
use super::BundleError;

/// Paths hidden from the container: `/dev/null` is bound over files and an
/// empty read-only tmpfs over directories. They expose host hardware,
/// kernel memory or kernel internals.
pub const MASKED_PATHS: [&str; 11] = [
    "/proc/asound",
    "/proc/acpi",
    "/proc/kcore",
    "/proc/keys",
    "/proc/latency_stats",
    "/proc/timer_list",
    "/proc/timer_stats",
    "/proc/sched_debug",
    "/proc/scsi",
    "/sys/firmware",
    "/sys/devices/virtual/powercap",
];

/// Paths bind-mounted read-only: writing them would change host-wide
/// kernel settings.
pub const READONLY_PATHS: [&str; 5] = [
    "/proc/bus",
    "/proc/fs",
    "/proc/irq",
    "/proc/sys",
    "/proc/sysrq-trigger",
];

/// Upper bound of the default soft and hard `RLIMIT_NOFILE`: the kernel's
/// default `fs.nr_open`, the largest value setrlimit accepts unless that
/// sysctl is raised.
pub const NOFILE_LIMIT: u64 = 1_048_576;

/// Returns the default `RLIMIT_NOFILE` of a container: [`NOFILE_LIMIT`], or
/// the calling process's hard limit when that is lower.
///
/// A runtime started by this process inherits that hard limit and cannot
/// raise it without CAP_SYS_RESOURCE: hull rejects a higher container limit
/// and runc 1.1.5 fails with EPERM. When getrlimit fails, the result is
/// [`NOFILE_LIMIT`].
pub fn default_nofile_limit() -> u64 {
    match rustix::process::getrlimit(rustix::process::Resource::Nofile).maximum {
        Some(hard) => hard.min(NOFILE_LIMIT),
        None => NOFILE_LIMIT,
    }
}

fn mount(
    destination: &str,
    fs_type: &str,
    source: &str,
    options: &[&str],
) -> Result<Mount, BundleError> {
    Ok(MountBuilder::default()
        .destination(destination)
        .typ(fs_type)
        .source(source)
        .options(options.iter().map(|o| o.to_string()).collect::<Vec<_>>())
        .build()?)
}

/// Returns the default mounts followed by the options' bind mounts.
pub fn mounts(options: &BundleOptions) -> Result<Vec<Mount>, BundleError> {
    let mut mounts = vec![
        mount("/proc", "proc", "proc", &["nosuid", "noexec", "nodev"])?,
        mount(
            "/dev",
            "tmpfs",
            "tmpfs",
            &["nosuid", "strictatime", "mode=755", "size=65536k"],
        )?,
        mount(
            "/dev/pts",
            "devpts",
            "devpts",
            &[
                "nosuid",
                "noexec",
                "newinstance",
                "ptmxmode=0666",
                "mode=0620",
                "gid=5",
            ],
        )?,
        mount(
            "/dev/shm",
            "tmpfs",
            "shm",
            &["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"],
        )?,
        mount(
            "/dev/mqueue",
            "mqueue",
            "mqueue",
            &["nosuid", "noexec", "nodev"],
        )?,
        mount(
            "/sys",
            "sysfs",
            "sysfs",
            &["nosuid", "noexec", "nodev", "ro"],
        )?,
        mount(
            "/sys/fs/cgroup",
            "cgroup",
            "cgroup",
            &["nosuid", "noexec", "nodev", "relatime", "ro"],
        )?,
    ];
    for bind in &options.mounts {
        let mode = if bind.readonly { "ro" } else { "rw" };
        let source = bind.source.to_string_lossy();
        mounts.push(mount(
            &bind.destination,
            "bind",
            &source,
            &["rbind", "rprivate", mode],
        )?);
    }
    Ok(mounts)
}

fn namespace(typ: LinuxNamespaceType) -> Result<LinuxNamespace, BundleError> {
    Ok(LinuxNamespaceBuilder::default().typ(typ).build()?)
}

/// Returns new PID, IPC, UTS, mount and cgroup namespaces, and the network
/// namespace that `network_namespace` selects.
pub fn namespaces(options: &BundleOptions) -> Result<Vec<LinuxNamespace>, BundleError> {
    let mut namespaces = Vec::new();
    for typ in [
        LinuxNamespaceType::Pid,
        LinuxNamespaceType::Ipc,
        LinuxNamespaceType::Uts,
        LinuxNamespaceType::Mount,
        LinuxNamespaceType::Cgroup,
    ] {
        namespaces.push(namespace(typ)?);
    }
    match &options.network_namespace {
        None | Some(NetworkMode::None) => namespaces.push(namespace(LinuxNamespaceType::Network)?),
        Some(NetworkMode::Host) => {}
        Some(NetworkMode::Path(path)) => namespaces.push(
            LinuxNamespaceBuilder::default()
                .typ(LinuxNamespaceType::Network)
                .path(path.clone())
                .build()?,
        ),
    }
    Ok(namespaces)
}

/// Returns the cgroup resources: all devices denied (runtimes then allow
/// their standard devices such as `/dev/null` and `/dev/pts/*`), plus the
/// options' memory, CPU and pids limits.
pub fn resources(options: &BundleOptions) -> Result<LinuxResources, BundleError> {
    let deny_all = LinuxDeviceCgroupBuilder::default()
        .allow(false)
        .access("rwm")
        .build()?;
    let mut builder = LinuxResourcesBuilder::default().devices(vec![deny_all]);
    if let Some(limit) = options.memory_limit {
        builder = builder.memory(LinuxMemoryBuilder::default().limit(limit).build()?);
    }
    if options.cpu_quota.is_some() || options.cpu_period.is_some() {
        let mut cpu = LinuxCpuBuilder::default();
        if let Some(quota) = options.cpu_quota {
            cpu = cpu.quota(quota);
        }
        if let Some(period) = options.cpu_period {
            cpu = cpu.period(period);
        }
        builder = builder.cpu(cpu.build()?);
    }
    if let Some(limit) = options.pids_limit {
        builder = builder.pids(LinuxPidsBuilder::default().limit(limit).build()?);
    }
    Ok(builder.build()?)
}
