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
    /// Namespaces the init gets new at clone: every new one but cgroup.
    pub clone_flags: CloneFlags,
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
    CloneFlags::from_bits_truncate(kind as i32)
}

/// Join order: the user namespace first, because it decides the rights
/// for joining the others; the mount namespace last but for cgroup.
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
            if matches!(kind, LinuxNamespaceType::User | LinuxNamespaceType::Time) {
                // TODO: user and time namespaces need id maps and offsets
                // written by the runtime between clone and the init's set-up.
                return Err(Error::Spec(format!(
                    "linux.namespaces: {} namespaces are not supported by this hull",
                    name(kind)
                )));
            }
            match namespace.path() {
                Some(path) => {
                    let file = File::open(path)
                        .context(|| format!("open {} namespace {}", name(kind), path.display()))?;
                    namespaces.join.push((kind, OwnedFd::from(file)));
                }
                None if kind == LinuxNamespaceType::Cgroup => namespaces.new_cgroup = true,
                None => namespaces.clone_flags |= flag(kind),
            }
        }
        namespaces.join.sort_by_key(|(kind, _)| join_rank(*kind));
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
            _ => self.clone_flags.contains(flag(kind)),
        }
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

    /// Joins every namespace but pid; runs in the init.
    pub fn join_others(&self) -> Result<()> {
        for (kind, fd) in &self.join {
            if *kind != LinuxNamespaceType::Pid {
                setns(fd.as_fd(), flag(*kind))
                    .context(|| format!("join the {} namespace", name(*kind)))?;
            }
        }
        Ok(())
    }
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

/// The namespace a sysctl belongs to, or `None` when it is not namespaced.
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
