//! `hull update [FLAGS] ID`: changes the resource limits of a running,
//! created or paused container, with runc 1.1's flags.

use std::fs::File;
use std::io::{self, Read};

use oci_spec::runtime::LinuxResources;

use super::Global;
use crate::container::Container;
use crate::units::parse_ram_size;
use crate::update::{self, ResourceUpdate};
use crate::{Error, Result};

#[derive(Debug, clap::Args)]
pub struct Args {
    /// JSON file with the resources to update (the linux.resources object
    /// of the OCI spec), or '-' for standard input. With this flag the
    /// other resource flags are ignored, as in runc 1.1
    #[arg(short = 'r', long, value_name = "FILE")]
    pub resources: Option<String>,
    /// Block IO weight, from 10 to 1000
    #[arg(long, allow_hyphen_values = true)]
    pub blkio_weight: Option<i64>,
    /// CPU CFS period in microseconds
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_period: Option<String>,
    /// CPU CFS quota in microseconds per period, -1 for no limit
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_quota: Option<String>,
    /// CPU shares (relative weight against other containers)
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_share: Option<String>,
    /// CPU real-time period in microseconds
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_period: Option<String>,
    /// CPU real-time runtime in microseconds per period
    #[arg(long, allow_hyphen_values = true)]
    pub cpu_rt_runtime: Option<String>,
    /// CPUs the container may run on, such as 0-2,4
    #[arg(long)]
    pub cpuset_cpus: Option<String>,
    /// Memory nodes the container may use, such as 0
    #[arg(long)]
    pub cpuset_mems: Option<String>,
    /// Obsolete kernel memory limit: ignored with a warning
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub kernel_memory: Option<String>,
    /// Obsolete kernel TCP buffer limit: ignored with a warning
    #[arg(long, hide = true, allow_hyphen_values = true)]
    pub kernel_memory_tcp: Option<String>,
    /// Memory limit in bytes, with an optional unit (k, m, g, t, p in
    /// powers of 1024), -1 for no limit
    #[arg(long, allow_hyphen_values = true)]
    pub memory: Option<String>,
    /// Memory soft limit in bytes, with an optional unit
    #[arg(long, allow_hyphen_values = true)]
    pub memory_reservation: Option<String>,
    /// Memory plus swap limit in bytes, with an optional unit, -1 for
    /// unlimited swap
    #[arg(long, allow_hyphen_values = true)]
    pub memory_swap: Option<String>,
    /// Maximum number of processes, -1 for no limit
    #[arg(long, allow_hyphen_values = true)]
    pub pids_limit: Option<i64>,
    /// Intel RDT L3 cache schema (not supported by hull)
    #[arg(long)]
    pub l3_cache_schema: Option<String>,
    /// Intel RDT memory bandwidth schema (not supported by hull)
    #[arg(long)]
    pub mem_bw_schema: Option<String>,
    /// Container id
    pub id: String,
}

pub fn run(global: &Global, args: &Args) -> Result<i32> {
    let container = Container::load(&global.root, &args.id)?;
    let request = match args.resources.as_deref().filter(|r| !r.is_empty()) {
        Some(source) => ResourceUpdate::from_resources(&read_resources(source)?),
        None => request_from_flags(args)?,
    };
    // runc 1.1 checks the Intel RDT flags against the host, and hull
    // implements no Intel RDT support at all.
    if args
        .l3_cache_schema
        .as_deref()
        .is_some_and(|s| !s.is_empty())
    {
        return Err(Error::Message(
            "Intel RDT/CAT: l3 cache schema is not enabled: hull does not support Intel RDT".into(),
        ));
    }
    if args.mem_bw_schema.as_deref().is_some_and(|s| !s.is_empty()) {
        return Err(Error::Message(
            "Intel RDT/MBA: memory bandwidth schema is not enabled: hull does not support Intel RDT"
                .into(),
        ));
    }
    update::update(&container, request)?;
    Ok(0)
}

/// Reads a `LinuxResources` JSON object from `source`, a path or `-`.
fn read_resources(source: &str) -> Result<LinuxResources> {
    let mut text = String::new();
    let result = if source == "-" {
        io::stdin().read_to_string(&mut text)
    } else {
        File::open(source).and_then(|mut file| file.read_to_string(&mut text))
    };
    let name = if source == "-" {
        "standard input"
    } else {
        source
    };
    result.map_err(|e| Error::io(format!("read resources from {name}"), e))?;
    serde_json::from_str(&text)
        .map_err(|e| Error::Message(format!("invalid resources JSON in {name}: {e}")))
}

fn invalid(flag: &str, value: &str, reason: impl std::fmt::Display) -> Error {
    Error::Message(format!("invalid value for {flag}: {value:?}: {reason}"))
}

fn parse_u64(flag: &str, value: Option<&String>) -> Result<u64> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => v.parse().map_err(|e| invalid(flag, v, e)),
        None => Ok(0),
    }
}

fn parse_i64(flag: &str, value: Option<&String>) -> Result<i64> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) => v.parse().map_err(|e| invalid(flag, v, e)),
        None => Ok(0),
    }
}

/// Parses a memory flag: `-1`, or a size as go-units `RAMInBytes` reads it.
pub fn parse_memory(flag: &str, value: Option<&String>) -> Result<i64> {
    match value.filter(|v| !v.is_empty()) {
        Some(v) if v == "-1" => Ok(-1),
        Some(v) => parse_ram_size(v).map_err(|e| invalid(flag, v, e)),
        None => Ok(0),
    }
}

fn request_from_flags(args: &Args) -> Result<ResourceUpdate> {
    let blkio_weight = match args.blkio_weight.unwrap_or(0) {
        0 => 0,
        weight => u16::try_from(weight)
            .map_err(|_| invalid("blkio-weight", &weight.to_string(), "out of range"))?,
    };
    Ok(ResourceUpdate {
        memory: parse_memory("memory", args.memory.as_ref())?,
        memory_reservation: parse_memory("memory-reservation", args.memory_reservation.as_ref())?,
        memory_swap: parse_memory("memory-swap", args.memory_swap.as_ref())?,
        kernel_memory: parse_memory("kernel-memory", args.kernel_memory.as_ref())?,
        kernel_memory_tcp: parse_memory("kernel-memory-tcp", args.kernel_memory_tcp.as_ref())?,
        cpu_shares: parse_u64("cpu-share", args.cpu_share.as_ref())?,
        cpu_quota: parse_i64("cpu-quota", args.cpu_quota.as_ref())?,
        cpu_period: parse_u64("cpu-period", args.cpu_period.as_ref())?,
        cpu_rt_runtime: parse_i64("cpu-rt-runtime", args.cpu_rt_runtime.as_ref())?,
        cpu_rt_period: parse_u64("cpu-rt-period", args.cpu_rt_period.as_ref())?,
        cpuset_cpus: args.cpuset_cpus.clone().unwrap_or_default(),
        cpuset_mems: args.cpuset_mems.clone().unwrap_or_default(),
        blkio_weight,
        pids_limit: args.pids_limit.unwrap_or(0),
        unified: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_flag_values() {
        let value = |v: &str| parse_memory("memory", Some(&v.to_string()));
        assert_eq!(value("-1").unwrap(), -1);
        assert_eq!(value("64M").unwrap(), 64 << 20);
        assert_eq!(value("1048576").unwrap(), 1 << 20);
        assert_eq!(parse_memory("memory", None).unwrap(), 0);
        let err = value("-2").unwrap_err().to_string();
        assert!(err.contains("invalid value for memory"), "{err}");
    }

    #[test]
    fn cpu_flag_values() {
        assert_eq!(
            parse_u64("cpu-period", Some(&"50000".into())).unwrap(),
            50000
        );
        assert_eq!(parse_i64("cpu-quota", Some(&"-1".into())).unwrap(), -1);
        let err = parse_u64("cpu-period", Some(&"-1".into()))
            .unwrap_err()
            .to_string();
        assert!(err.contains("cpu-period"), "{err}");
    }
}
