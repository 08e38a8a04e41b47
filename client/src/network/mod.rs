//! Container networking through the CNI plugins: bridge networks with
//! `host-local` addresses, published ports through `portmap`, hull's own
//! FORWARD rules per network, and name resolution between the containers
//! of a network through their hosts files.
//!
//! Records of networks live in `<root>/networks`; everything a reboot must
//! clear (network namespaces, address leases, attachments) lives in the
//! run root.

mod attach;
mod cni;
pub mod command;
mod conflist;
mod hosts;
mod iptables;
mod netns;
mod ports;
mod record;
mod state;
#[cfg(test)]
mod tests;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

pub use attach::SetupRequest;
pub use ports::{parse_publish, PortMapping, Protocol};
pub use record::{CreateRequest, NetworkRecord, DEFAULT_NETWORK};

use cni::Plugins;
use record::Store;
use state::StateDir;

/// Network namespace, interfaces and published ports of a container, which
/// the container core keeps in the container's record.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Attachment {
    pub netns: PathBuf,
    pub networks: Vec<AttachedNetwork>,
    /// Published ports, with every host port resolved.
    pub ports: Vec<PortMapping>,
}

/// One interface of a container on one network.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct AttachedNetwork {
    pub network: String,
    pub interface: String,
    /// Address with the subnet's prefix length.
    pub ip: Ipv4Net,
    pub gateway: Option<Ipv4Addr>,
    pub mac: String,
}

/// A container on a network, as `network inspect` lists it.
#[derive(Serialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Member {
    pub id: String,
    pub name: String,
    pub interface: String,
    pub ip: Ipv4Net,
    pub mac: String,
}

/// hullctl's networks and the attachments of its containers.
pub struct Networks {
    store: Store,
    states: StateDir,
    plugins: Plugins,
    run_root: PathBuf,
    netns_dir: PathBuf,
}

impl Networks {
    pub fn new(paths: &crate::paths::Paths) -> Networks {
        Networks {
            store: Store::new(paths.networks()),
            states: StateDir::new(&paths.cni_state()),
            plugins: Plugins::from_env(),
            run_root: paths.run_root.clone(),
            netns_dir: paths.netns(),
        }
    }

    fn ipam_dir(&self) -> PathBuf {
        self.run_root.join("cni").join("ipam")
    }

    fn netns_path(&self, container_id: &str) -> PathBuf {
        self.netns_dir.join(container_id)
    }

    /// Creates a bridge network. Without a subnet it takes the first /24 of
    /// 10.89.0.0/16 that no network or host route overlaps. The bridge
    /// device itself appears when the first container joins.
    pub fn create(&self, request: &CreateRequest) -> anyhow::Result<NetworkRecord> {
        record::validate_name(&request.name)?;
        if request.name == DEFAULT_NETWORK {
            bail!("network {DEFAULT_NETWORK} is the default network, which hullctl creates on first use: choose another name");
        }
        let _lock = self.states.lock()?;
        self.create_locked(request, None, &record::host_routes()?)
    }

    /// Creates a network whose subnet must not overlap `routes`. The record
    /// is all it writes: the bridge and its iptables rules appear when the
    /// first container joins.
    fn create_locked(
        &self,
        request: &CreateRequest,
        bridge: Option<&str>,
        routes: &[record::HostRoute],
    ) -> anyhow::Result<NetworkRecord> {
        if self.store.get(&request.name)?.is_some() {
            bail!("network {} already exists", request.name);
        }
        let existing = self.store.list()?;
        let (subnet, gateway) = match (&request.subnet, &request.gateway) {
            (Some(subnet), gateway) => {
                let (subnet, gateway) = record::parse_subnet(subnet, gateway.as_deref())?;
                record::check_overlap(subnet, &existing, routes)?;
                (subnet, gateway)
            }
            (None, Some(gateway)) => {
                bail!("--gateway {gateway} needs --subnet: give the subnet that contains it")
            }
            (None, None) => {
                let subnet = record::pick_subnet(&existing, routes)?;
                record::parse_subnet(&subnet.to_string(), None)?
            }
        };
        let id = record::new_id()?;
        let bridge = match bridge {
            Some(bridge) => bridge.to_string(),
            None => record::bridge_name(&id),
        };
        let record = NetworkRecord {
            name: request.name.clone(),
            id,
            driver: String::from("bridge"),
            bridge,
            subnet,
            gateway,
            internal: request.internal,
            ip_masq: request.ip_masq,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        };
        self.store.write(&record)?;
        Ok(record)
    }

    /// Lists the networks, sorted by name.
    pub fn list(&self) -> anyhow::Result<Vec<NetworkRecord>> {
        self.store.list()
    }

    /// Finds a network by name, id or unique id prefix.
    pub fn inspect(&self, name_or_id: &str) -> anyhow::Result<NetworkRecord> {
        self.store.find(name_or_id)
    }

    /// Lists the containers attached to a network.
    pub fn members(&self, network: &str) -> anyhow::Result<Vec<Member>> {
        let mut members = Vec::new();
        for state in self.states.list()? {
            if let Some(attached) = state.network(network).and_then(|n| n.attached()) {
                members.push(Member {
                    id: state.id.clone(),
                    name: state.name.clone(),
                    interface: attached.interface,
                    ip: attached.ip,
                    mac: attached.mac,
                });
            }
        }
        Ok(members)
    }

    /// Removes a network that no container uses: its bridge device, its
    /// iptables rules, its address leases and its record.
    pub fn remove(&self, name: &str) -> anyhow::Result<()> {
        let _lock = self.states.lock()?;
        let record = self.store.find(name)?;
        let users: Vec<String> = self
            .states
            .list()?
            .into_iter()
            .filter(|state| state.network(&record.name).is_some())
            .map(|state| format!("{} ({})", state.name, short_id(&state.id)))
            .collect();
        if !users.is_empty() {
            bail!(
                "network {} is in use by container(s) {}: stop them or disconnect them first",
                record.name,
                users.join(", ")
            );
        }
        delete_link(&record.bridge)?;
        iptables::remove_network(&record)?;
        let leases = self.ipam_dir().join(&record.name);
        if let Err(err) = std::fs::remove_dir_all(&leases) {
            if err.kind() != std::io::ErrorKind::NotFound {
                return Err(err).with_context(|| format!("failed to remove {}", leases.display()));
            }
        }
        self.store.delete(&record.name)
    }

    /// Returns the default network, creating it on first use.
    pub fn ensure_default(&self) -> anyhow::Result<NetworkRecord> {
        let _lock = self.states.lock()?;
        self.ensure_default_locked(&record::host_routes()?)
    }

    fn ensure_default_locked(&self, routes: &[record::HostRoute]) -> anyhow::Result<NetworkRecord> {
        if let Some(record) = self.store.get(DEFAULT_NETWORK)? {
            return Ok(record);
        }
        // The default run root gets hull0 and 10.87.0.0/16. Every other run
        // root, such as a test's, gets a bridge named by its own network id
        // and a free /24 of the pool, so that hullctl installations side by
        // side never share a bridge or a subnet.
        let default_root = self.run_root == Path::new(crate::paths::DEFAULT_RUN_ROOT);
        let request = CreateRequest {
            name: String::from(DEFAULT_NETWORK),
            subnet: default_root.then(|| String::from(record::DEFAULT_SUBNET)),
            ..CreateRequest::default()
        };
        let bridge = default_root.then_some(record::DEFAULT_BRIDGE);
        self.create_locked(&request, bridge, routes)
            .context("failed to create the default network")
    }

    /// Returns the container's current attachment, or None when hullctl
    /// set up no network namespace for it.
    pub fn attachment(&self, container_id: &str) -> anyhow::Result<Option<Attachment>> {
        Ok(self
            .states
            .read(container_id)?
            .map(|state| attach::attachment(&state)))
    }
}

/// Returns the first 12 characters of an id, as docker shows ids.
fn short_id(id: &str) -> &str {
    &id[..id.len().min(12)]
}

/// Deletes a network device with `ip link delete`. An absent device is no
/// error.
fn delete_link(name: &str) -> anyhow::Result<()> {
    if !Path::new("/sys/class/net").join(name).exists() {
        return Ok(());
    }
    let output = Command::new("ip")
        .args(["link", "delete", name])
        .output()
        .context("failed to run ip: install the iproute2 package")?;
    if !output.status.success() && Path::new("/sys/class/net").join(name).exists() {
        bail!(
            "failed to delete bridge {name}: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}
