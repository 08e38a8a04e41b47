//! Record of what hullctl set up for each container (`<run-root>/cni/containers/
//! <id>.json`), written before each step so that teardown can undo a setup
//! that stopped midway, and the lock that serialises network changes.
//!
//! These files are also the membership registry of each network and the
//! registry of published ports: a container is a member of a network while
//! its file lists that network with an address.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::Context;
use nix::fcntl::{Flock, FlockArg};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::hosts::Peer;
use super::ports::PortMapping;
use super::AttachedNetwork;

/// One container's network namespace and attachments.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct ContainerState {
    pub id: String,
    pub name: String,
    pub netns: PathBuf,
    /// hullctl made the namespace, so teardown removes it.
    pub owns_netns: bool,
    pub hosts_file: PathBuf,
    /// Published ports, with host ports resolved. The first network
    /// publishes them.
    pub ports: Vec<PortMapping>,
    pub networks: Vec<NetworkState>,
}

/// One network's attachment, in the order the interfaces were added.
#[derive(Serialize, Deserialize, Debug, Clone)]
#[serde(rename_all = "camelCase")]
pub struct NetworkState {
    pub network: String,
    pub interface: String,
    /// The conflist that ADD ran, which DEL runs again.
    pub config: Value,
    /// The port mappings were passed to this network's portmap plugin.
    pub publishes_ports: bool,
    /// The result of the last plugin whose ADD succeeded, given to DEL as
    /// `prevResult`, or None until the first plugin has run.
    pub result: Option<Value>,
}

impl NetworkState {
    /// Returns the interface's address from the ADD result, once the
    /// result has one.
    pub fn ip(&self) -> Option<Ipv4Addr> {
        self.attached().map(|attached| attached.ip.addr())
    }

    /// Reads the interface, address, gateway and MAC from the ADD result.
    pub fn attached(&self) -> Option<AttachedNetwork> {
        let result = self.result.as_ref()?;
        let ips = result["ips"].as_array()?;
        let ip = ips
            .iter()
            .find(|ip| ip["address"].as_str().is_some_and(|a| !a.contains(':')))?;
        let address = ip["address"].as_str()?.parse().ok()?;
        let gateway = ip["gateway"].as_str().and_then(|g| g.parse().ok());
        let mac = ip["interface"]
            .as_u64()
            .and_then(|index| result["interfaces"].get(index as usize))
            .and_then(|interface| interface["mac"].as_str())
            .unwrap_or_default()
            .to_string();
        Some(AttachedNetwork {
            network: self.network.clone(),
            interface: self.interface.clone(),
            ip: address,
            gateway,
            mac,
        })
    }
}

impl ContainerState {
    /// Returns the first free `ethN` name.
    pub fn next_interface(&self) -> String {
        (0..)
            .map(|n| format!("eth{n}"))
            .find(|name| self.networks.iter().all(|n| &n.interface != name))
            .expect("an unbounded range has a free name")
    }

    pub fn network(&self, name: &str) -> Option<&NetworkState> {
        self.networks.iter().find(|n| n.network == name)
    }

    /// Returns the containers of `all` that share a network with this one,
    /// each once, at its address on the first shared network in this
    /// container's order.
    pub fn peers(&self, all: &[ContainerState]) -> Vec<Peer> {
        let mut peers: Vec<(String, Peer)> = Vec::new();
        for own in &self.networks {
            if own.ip().is_none() {
                continue;
            }
            for other in all.iter().filter(|other| other.id != self.id) {
                if peers.iter().any(|(id, _)| id == &other.id) {
                    continue;
                }
                if let Some(ip) = other.network(&own.network).and_then(NetworkState::ip) {
                    let peer = Peer {
                        name: other.name.clone(),
                        ip,
                    };
                    peers.push((other.id.clone(), peer));
                }
            }
        }
        peers.into_iter().map(|(_, peer)| peer).collect()
    }
}

/// The directory of container states and its lock.
pub struct StateDir {
    dir: PathBuf,
    lock_path: PathBuf,
}

impl StateDir {
    pub fn new(cni_state: &Path) -> StateDir {
        StateDir {
            dir: cni_state.join("containers"),
            lock_path: cni_state.join("lock"),
        }
    }

    /// Takes the exclusive lock that every change to networks and
    /// attachments holds, across hullctl processes that share a run root.
    pub fn lock(&self) -> anyhow::Result<Flock<fs::File>> {
        if let Some(dir) = self.lock_path.parent() {
            fs::create_dir_all(dir)
                .with_context(|| format!("failed to create {}", dir.display()))?;
        }
        let file = fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&self.lock_path)
            .with_context(|| format!("failed to open {}", self.lock_path.display()))?;
        Flock::lock(file, FlockArg::LockExclusive)
            .map_err(|(_, errno)| errno)
            .with_context(|| format!("failed to lock {}", self.lock_path.display()))
    }

    fn path(&self, id: &str) -> PathBuf {
        self.dir.join(format!("{id}.json"))
    }

    pub fn read(&self, id: &str) -> anyhow::Result<Option<ContainerState>> {
        let path = self.path(id);
        let bytes = match fs::read(&path) {
            Ok(bytes) => bytes,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read {}", path.display()))
            }
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .with_context(|| format!("invalid container network state {}", path.display()))
    }

    /// Reads every container's state.
    pub fn list(&self) -> anyhow::Result<Vec<ContainerState>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read {}", self.dir.display()))
            }
        };
        let mut states = Vec::new();
        for entry in entries {
            let name = entry
                .with_context(|| format!("failed to read {}", self.dir.display()))?
                .file_name();
            let Some(id) = name.to_str().and_then(|name| name.strip_suffix(".json")) else {
                continue;
            };
            if let Some(state) = self.read(id)? {
                states.push(state);
            }
        }
        states.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(states)
    }

    /// Writes a state atomically (write, rename). It is not flushed to
    /// disk: it describes network namespaces, which a reboot ends.
    pub fn write(&self, state: &ContainerState) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("failed to create {}", self.dir.display()))?;
        let path = self.path(&state.id);
        let temporary = self.dir.join(format!(".{}.json.tmp", state.id));
        let json = serde_json::to_vec_pretty(state)?;
        let mut file = fs::File::create(&temporary)
            .with_context(|| format!("failed to create {}", temporary.display()))?;
        file.write_all(&json)
            .with_context(|| format!("failed to write {}", temporary.display()))?;
        fs::rename(&temporary, &path).with_context(|| {
            format!(
                "failed to rename {} to {}",
                temporary.display(),
                path.display()
            )
        })
    }

    pub fn delete(&self, id: &str) -> anyhow::Result<()> {
        let path = self.path(id);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err).with_context(|| format!("failed to remove {}", path.display())),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn attached(network: &str, interface: &str, ip: Option<&str>) -> NetworkState {
        NetworkState {
            network: network.to_string(),
            interface: interface.to_string(),
            config: json!({}),
            publishes_ports: false,
            result: ip.map(|ip| {
                json!({
                    "cniVersion": "1.0.0",
                    "interfaces": [
                        { "name": "hull0", "mac": "aa:aa:aa:aa:aa:aa" },
                        { "name": interface, "mac": "02:00:00:00:00:01", "sandbox": "/ns" },
                    ],
                    "ips": [{ "interface": 1, "address": ip, "gateway": "10.89.0.1" }],
                })
            }),
        }
    }

    fn container(id: &str, networks: Vec<NetworkState>) -> ContainerState {
        ContainerState {
            id: id.to_string(),
            name: format!("name-{id}"),
            netns: PathBuf::from("/ns"),
            owns_netns: true,
            hosts_file: PathBuf::from("/hosts"),
            ports: Vec::new(),
            networks,
        }
    }

    #[test]
    fn attached_reads_the_add_result() {
        let network = attached("a", "eth0", Some("10.89.0.2/24"));
        let info = network.attached().unwrap();
        assert_eq!(info.ip.to_string(), "10.89.0.2/24");
        assert_eq!(info.gateway, Some("10.89.0.1".parse().unwrap()));
        assert_eq!(info.mac, "02:00:00:00:00:01");
        assert_eq!(info.interface, "eth0");
        assert!(attached("a", "eth0", None).attached().is_none());
    }

    #[test]
    fn peers_share_a_network() {
        let web = container(
            "1",
            vec![
                attached("front", "eth0", Some("10.89.0.2/24")),
                attached("back", "eth1", Some("10.89.1.2/24")),
            ],
        );
        let db = container("2", vec![attached("back", "eth0", Some("10.89.1.3/24"))]);
        let proxy = container(
            "3",
            vec![
                attached("back", "eth0", Some("10.89.1.4/24")),
                attached("front", "eth1", Some("10.89.0.4/24")),
            ],
        );
        let unrelated = container("4", vec![attached("other", "eth0", Some("10.89.2.2/24"))]);
        let pending = container("5", vec![attached("front", "eth0", None)]);
        let all = [web.clone(), db.clone(), proxy, unrelated, pending];

        let names: Vec<String> = web
            .peers(&all)
            .iter()
            .map(|p| format!("{} {}", p.name, p.ip))
            .collect();
        assert_eq!(names, ["name-3 10.89.0.4", "name-2 10.89.1.3"]);
        let names: Vec<String> = db.peers(&all).iter().map(|p| p.name.clone()).collect();
        assert_eq!(names, ["name-1", "name-3"]);
    }

    #[test]
    fn next_interface_fills_gaps() {
        let state = container(
            "1",
            vec![attached("a", "eth0", None), attached("b", "eth2", None)],
        );
        assert_eq!(state.next_interface(), "eth1");
    }
}
