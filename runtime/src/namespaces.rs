//! Namespaces of the container: which are new, which are joined by path,
//! and the settings that only make sense inside one (hostname, sysctls).

use std::fs::File;
use std::os::fd::{AsFd, OwnedFd};

use nix::sched::{setns, CloneFlags};
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::Context;
use crate::{Error, Result};

/// The namespaces of the container, with the files of joined ones opened.
#[derive(Debug)]
pub struct Namespaces {
    /// Namespaces the init gets new at clone: every new one but cgroup and
    /// time, and none when a user namespace is joined by path.
    pub clone_flags: CloneFlags,
    /// New namespaces the init unshares after joining a user namespace by
    /// path, so that the joined user namespace owns them.
    pub unshare_flags: CloneFlags,
    /// A new time namespace, made by the runtime before the clone so that
    /// its clock offsets are written before any process is in it.
    pub new_time: bool,
    /// A new cgroup namespace, made by the init after it entered its cgroup
    /// so that the cgroup becomes the namespace's root.
    pub new_cgroup: bool,
    /// Namespaces to join, in the order they must be joined.
    pub join: Vec<(LinuxNamespaceType, OwnedFd)>,
    /// Every namespace type listed in the spec, new or joined.
    pub listed: Vec<LinuxNamespaceType>,
}

fn name(kind: LinuxNamespaceType) -> &'static str {
    match kind {
        LinuxNamespaceType::Mount => "mount",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "network",
        LinuxNamespaceType::Time => "time",
    }
}

fn flag(kind: LinuxNamespaceType) -> CloneFlags {
    CloneFlags::from_bits_retain(kind as i32)
}

/// Returns the join order rank: the user namespace first, because it decides
/// the rights for joining the others. The mount namespace comes last except for
/// cgroup.
fn join_rank(kind: LinuxNamespaceType) -> u8 {
    match kind {
        LinuxNamespaceType::User => 0,
        LinuxNamespaceType::Ipc => 1,
        LinuxNamespaceType::Uts => 2,
        LinuxNamespaceType::Network => 3,
        LinuxNamespaceType::Pid => 4,
        LinuxNamespaceType::Time => 5,
        LinuxNamespaceType::Mount => 6,
        LinuxNamespaceType::Cgroup => 7,
    }
}

impl Namespaces {
    fn empty() -> Namespaces {
        Namespaces {
            clone_flags: CloneFlags::empty(),
            unshare_flags: CloneFlags::empty(),
            new_time: false,
            new_cgroup: false,
            join: vec![],
            listed: vec![],
        }
    }

    /// Reads the namespaces of `spec`, opening the paths of joined ones so
    /// that a missing path fails before anything is created.
    pub fn from_spec(spec: &Spec) -> Result<Namespaces> {
        let mut namespaces = Namespaces::empty();
        let list = spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.namespaces().clone())
            .unwrap_or_default();
        for namespace in &list {
            let kind = namespace.typ();
            if namespaces.listed.contains(&kind) {
                return Err(Error::Spec(format!(
                    "linux.namespaces: the {} namespace is listed twice",
                    name(kind)
                )));
            }
            namespaces.listed.push(kind);
            match namespace.path() {
                Some(path) => {
                    let file = File::open(path)
                        .context(|| format!("open {} namespace {}", name(kind), path.display()))?;
                    namespaces.join.push((kind, OwnedFd::from(file)));
                }
                None if kind == LinuxNamespaceType::Cgroup => namespaces.new_cgroup = true,
                None if kind == LinuxNamespaceType::Time => namespaces.new_time = true,
                None => namespaces.clone_flags |= flag(kind),
            }
        }
        namespaces.join.sort_by_key(|(kind, _)| join_rank(*kind));
        if namespaces.joins(LinuxNamespaceType::User) {
            // Namespaces made before the join would belong to the host's
            // user namespace; they are unshared after it instead.
            if namespaces.clone_flags.contains(CloneFlags::CLONE_NEWPID) {
                // TODO: a new pid namespace under a joined user namespace
                // needs a second fork after the join.
                return Err(Error::Spec(
                    "linux.namespaces: a new pid namespace with a user namespace joined by path is not supported; join the pid namespace too or create a new user namespace".into(),
                ));
            }
            namespaces.unshare_flags = namespaces.clone_flags;
            namespaces.clone_flags = CloneFlags::empty();
        }
        check_id_mappings(spec, &namespaces)?;
        check_settings(spec, &namespaces)?;
        Ok(namespaces)
    }

    /// Returns true when the spec lists `kind`, new or joined.
    pub fn has(&self, kind: LinuxNamespaceType) -> bool {
        self.listed.contains(&kind)
    }

    /// Returns true when the container gets a new namespace of `kind`.
    pub fn is_new(&self, kind: LinuxNamespaceType) -> bool {
        match kind {
            LinuxNamespaceType::Cgroup => self.new_cgroup,
            LinuxNamespaceType::Time => self.new_time,
            _ => (self.clone_flags | self.unshare_flags).contains(flag(kind)),
        }
    }

    /// Returns true when the container joins an existing namespace of `kind`.
    pub fn joins(&self, kind: LinuxNamespaceType) -> bool {
        self.join.iter().any(|(joined, _)| *joined == kind)
    }

    /// Joins the pid namespace in the calling process, so that the init
    /// cloned next is born in it (setns of a pid namespace applies to
    /// children only).
    pub fn join_pid(&self) -> Result<()> {
        for (kind, fd) in &self.join {
            if *kind == LinuxNamespaceType::Pid {
                setns(fd.as_fd(), CloneFlags::CLONE_NEWPID)
                    .context(|| "join the pid namespace".into())?;
            }
        }
        Ok(())
    }

    /// Joins every namespace but pid, then unshares the new ones that a
    /// joined user namespace must own. Runs in the init.
    pub fn join_others(&self) -> Result<()> {
        for (kind, fd) in &self.join {
            if *kind != LinuxNamespaceType::Pid {
                setns(fd.as_fd(), flag(*kind))
                    .context(|| format!("join the {} namespace", name(*kind)))?;
            }
        }
        if !self.unshare_flags.is_empty() {
            nix::sched::unshare(self.unshare_flags).context(|| {
                format!(
                    "unshare {:?} in the joined user namespace",
                    self.unshare_flags
                )
            })?;
        }
        Ok(())
    }

    /// Makes the new time namespace for the init cloned next and writes its
    /// clock offsets. The calling process stays in its own.
    pub fn create_time(&self, spec: &Spec) -> Result<()> {
        if !self.new_time {
            return Ok(());
        }
        // nix's CloneFlags has no CLONE_NEWTIME: its value lies in the
        // exit-signal bits of clone(2), which unshare(2) reads as a flag.
        // SAFETY: unshare takes an integer and touches no memory.
        if unsafe { libc::unshare(libc::CLONE_NEWTIME) } != 0 {
            return Err(Error::io(
                "unshare the time namespace",
                std::io::Error::last_os_error(),
            ));
        }
        let offsets = spec
            .linux()
            .as_ref()
            .and_then(|linux| linux.time_offsets().clone())
            .unwrap_or_default();
        // One write per clock, by clock id (CLOCK_MONOTONIC is 1 and
        // CLOCK_BOOTTIME 7), as the kernel reads one offset a line.
        let file = std::fs::OpenOptions::new()
            .write(true)
            .open("/proc/self/timens_offsets")
            .context(|| "open /proc/self/timens_offsets".into())?;
        for (clock, offset) in &offsets {
            let id = if clock == "boottime" { 7 } else { 1 };
            let line = format!(
                "{id} {} {}",
                offset.secs().unwrap_or(0),
                offset.nanosecs().unwrap_or(0)
            );
            rustix::io::write(&file, line.as_bytes())
                .map_err(|e| Error::io(format!("set the {clock} offset ({line})"), e.into()))?;
        }
        Ok(())
    }
}

/// Checks that id mappings come exactly with a new user namespace.
fn check_id_mappings(spec: &Spec, namespaces: &Namespaces) -> Result<()> {
    let linux = spec.linux().as_ref();
    let uid_maps = linux
        .and_then(|l| l.uid_mappings().as_ref())
        .is_some_and(|m| !m.is_empty());
    let gid_maps = linux
        .and_then(|l| l.gid_mappings().as_ref())
        .is_some_and(|m| !m.is_empty());
    let new_user = namespaces.clone_flags.contains(CloneFlags::CLONE_NEWUSER);
    if new_user && !(uid_maps && gid_maps) {
        return Err(Error::Spec(
            "linux.namespaces has a new user namespace but linux.uidMappings or linux.gidMappings is empty".into(),
        ));
    }
    if !namespaces.has(LinuxNamespaceType::User) && (uid_maps || gid_maps) {
        return Err(Error::Spec(
            "linux.uidMappings and linux.gidMappings need a user namespace: add one to linux.namespaces".into(),
        ));
    }
    let offsets = linux
        .and_then(|l| l.time_offsets().as_ref())
        .is_some_and(|o| !o.is_empty());
    if offsets && !namespaces.new_time {
        return Err(Error::Spec(
            "linux.timeOffsets need a new time namespace: add one to linux.namespaces".into(),
        ));
    }
    for clock in linux
        .and_then(|l| l.time_offsets().as_ref())
        .into_iter()
        .flatten()
        .map(|(c, _)| c)
    {
        if clock != "monotonic" && clock != "boottime" {
            return Err(Error::Spec(format!(
                "linux.timeOffsets: unknown clock {clock:?}: only monotonic and boottime have offsets"
            )));
        }
    }
    Ok(())
}

/// Checks that the hostname and sysctls have a namespace of their own to
/// change, as changing them in the host's namespaces would change the host.
fn check_settings(spec: &Spec, namespaces: &Namespaces) -> Result<()> {
    let has_uts = namespaces.has(LinuxNamespaceType::Uts);
    if spec.hostname().as_deref().is_some_and(|h| !h.is_empty()) && !has_uts {
        return Err(Error::Spec(
            "hostname is set but there is no uts namespace: add one to linux.namespaces".into(),
        ));
    }
    if spec.domainname().as_deref().is_some_and(|d| !d.is_empty()) && !has_uts {
        return Err(Error::Spec(
            "domainname is set but there is no uts namespace: add one to linux.namespaces".into(),
        ));
    }
    let sysctls = spec
        .linux()
        .as_ref()
        .and_then(|linux| linux.sysctl().clone());
    for key in sysctls.unwrap_or_default().keys() {
        check_sysctl(key, namespaces)?;
    }
    Ok(())
}

/// Returns the namespace a sysctl belongs to, or `None` when it is not
/// namespaced.
fn sysctl_namespace(key: &str) -> Option<LinuxNamespaceType> {
    const IPC: [&str; 7] = [
        "kernel.msgmax",
        "kernel.msgmnb",
        "kernel.msgmni",
        "kernel.sem",
        "kernel.shmall",
        "kernel.shmmax",
        "kernel.shmmni",
    ];
    if IPC.contains(&key) || key == "kernel.shm_rmid_forced" || key.starts_with("fs.mqueue.") {
        Some(LinuxNamespaceType::Ipc)
    } else if key.starts_with("net.") {
        Some(LinuxNamespaceType::Network)
    } else if key == "kernel.hostname" || key == "kernel.domainname" {
        Some(LinuxNamespaceType::Uts)
    } else {
        None
    }
}

fn check_sysctl(key: &str, namespaces: &Namespaces) -> Result<()> {
    if key.is_empty() || key.contains("..") || key.starts_with(['.', '/']) {
        return Err(Error::Spec(format!("linux.sysctl: invalid key {key:?}")));
    }
    let key = key.replace('/', ".");
    match sysctl_namespace(&key) {
        Some(kind) if namespaces.has(kind) => Ok(()),
        Some(kind) => Err(Error::Spec(format!(
            "linux.sysctl: {key} needs a {} namespace of the container's own: add one to linux.namespaces",
            name(kind)
        ))),
        None => Err(Error::Spec(format!(
            "linux.sysctl: {key} is not namespaced, so setting it would change the host"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_namespaces(kinds: &[LinuxNamespaceType]) -> Namespaces {
        Namespaces {
            listed: kinds.to_vec(),
            ..Namespaces::empty()
        }
    }

    #[test]
    fn sysctl_needs_its_namespace() {
        let net = with_namespaces(&[LinuxNamespaceType::Network]);
        assert!(check_sysctl("net.ipv4.ip_forward", &net).is_ok());
        assert!(check_sysctl("net/ipv4/ip_forward", &net).is_ok());
        assert!(check_sysctl("kernel.shmmax", &net).is_err());
        let ipc = with_namespaces(&[LinuxNamespaceType::Ipc]);
        assert!(check_sysctl("kernel.shmmax", &ipc).is_ok());
        assert!(check_sysctl("fs.mqueue.msg_max", &ipc).is_ok());
    }

    #[test]
    fn host_wide_sysctl_is_rejected() {
        let all = with_namespaces(&[
            LinuxNamespaceType::Network,
            LinuxNamespaceType::Ipc,
            LinuxNamespaceType::Uts,
        ]);
        let message = check_sysctl("vm.swappiness", &all).unwrap_err().to_string();
        assert!(message.contains("vm.swappiness"), "{message}");
        assert!(check_sysctl("net..x", &all).is_err());
    }
}
