//! Attaching containers to networks: setup and teardown of a container's
//! network namespace, and connect and disconnect of one network.
//!
//! Every step is recorded in the container's state file before it runs, so
//! that teardown can undo a setup that failed or crashed midway.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use serde_json::{json, Map, Value};

use super::cni::Target;
use super::conflist::conflist;
use super::hosts;
use super::iptables;
use super::netns;
use super::ports::{self, PortMapping};
use super::record::NetworkRecord;
use super::state::{ContainerState, NetworkState};
use super::{short_id, AttachedNetwork, Attachment, Networks};

/// Request of `Networks::setup`: a container and the networks it joins.
#[derive(Debug, Clone)]
pub struct SetupRequest {
    pub container_id: String,
    /// Container name, by which the containers of its networks reach it.
    pub name: String,
    pub hostname: String,
    /// Networks to join, in interface order (`eth0`, `eth1`, ...); empty
    /// gives a namespace with only loopback.
    pub networks: Vec<String>,
    /// Ports to publish through the first network.
    pub ports: Vec<PortMapping>,
    /// The container's own hosts file, which setup writes.
    pub hosts_file: PathBuf,
}

/// Returns the attachment that a state describes.
pub fn attachment(state: &ContainerState) -> Attachment {
    Attachment {
        netns: state.netns.clone(),
        networks: state
            .networks
            .iter()
            .filter_map(NetworkState::attached)
            .collect(),
        ports: state.ports.clone(),
    }
}

/// Returns the `runtimeConfig` values offered to plugins that declare
/// capabilities.
fn runtime_config(ports: &[PortMapping], publish: bool) -> Map<String, Value> {
    let mut config = Map::new();
    if publish && !ports.is_empty() {
        let mappings: Vec<Value> = ports
            .iter()
            .map(|port| {
                let mut mapping = json!({
                    "hostPort": port.host_port,
                    "containerPort": port.container_port,
                    "protocol": port.protocol.to_string(),
                });
                if let Some(ip) = port.host_ip.filter(|ip| !ip.is_unspecified()) {
                    mapping["hostIP"] = json!(ip.to_string());
                }
                mapping
            })
            .collect();
        config.insert(String::from("portMappings"), Value::Array(mappings));
    }
    config
}

impl Networks {
    /// Creates the container's network namespace at
    /// `<run-root>/netns/<id>` with loopback up, joins each network in
    /// order, publishes the ports through the first network and writes the
    /// hosts files of the container and of its peers. On failure it undoes
    /// what it did and returns the error.
    pub fn setup(&self, request: &SetupRequest) -> anyhow::Result<Attachment> {
        validate_container_id(&request.container_id)?;
        let _lock = self.states.lock()?;
        if self.states.read(&request.container_id)?.is_some() {
            bail!(
                "container {} already has a network namespace: tear it down first",
                request.container_id
            );
        }
        let mut seen = BTreeSet::new();
        if let Some(twice) = request
            .networks
            .iter()
            .find(|name| !seen.insert(name.as_str()))
        {
            bail!("network {twice} is named twice");
        }
        let records = request
            .networks
            .iter()
            .map(|name| self.store.find(name))
            .collect::<anyhow::Result<Vec<NetworkRecord>>>()?;
        if records.is_empty() && !request.ports.is_empty() {
            bail!("cannot publish ports without a network: name a network to publish them through");
        }
        let reserved: Vec<PortMapping> = self
            .states
            .list()?
            .into_iter()
            .flat_map(|state| state.ports)
            .collect();
        let ports = ports::claim(&request.ports, &reserved)?;

        let mut state = ContainerState {
            id: request.container_id.clone(),
            name: request.name.clone(),
            netns: self.netns_path(&request.container_id),
            owns_netns: true,
            hosts_file: request.hosts_file.clone(),
            ports,
            networks: Vec::new(),
        };
        self.states.write(&state)?;
        match self.setup_steps(&mut state, &records, &request.hostname) {
            Ok(()) => Ok(attachment(&state)),
            Err(err) => {
                if let Err(undo) = self.teardown_locked(&request.container_id) {
                    eprintln!(
                        "hullctl: failed to undo the network setup of container {}: {undo:#}",
                        request.container_id
                    );
                }
                Err(err.context(format!(
                    "failed to set up the network of container {}",
                    request.container_id
                )))
            }
        }
    }

    fn setup_steps(
        &self,
        state: &mut ContainerState,
        records: &[NetworkRecord],
        hostname: &str,
    ) -> anyhow::Result<()> {
        netns::create(&state.netns)?;
        for (index, record) in records.iter().enumerate() {
            let interface = state.next_interface();
            self.add_network(state, record, &interface, index == 0)?;
        }
        let all = self.states.list()?;
        let own_ip = state.networks.first().and_then(NetworkState::ip);
        let text = hosts::render(hostname, &state.name, own_ip, &state.peers(&all));
        hosts::write_in_place(&state.hosts_file, &text)?;
        self.update_peer_hosts(state, &all);
        Ok(())
    }

    /// Runs ADD of one network's conflist, recording the network before the
    /// first plugin runs and each plugin's result as it arrives.
    fn add_network(
        &self,
        state: &mut ContainerState,
        record: &NetworkRecord,
        interface: &str,
        publish: bool,
    ) -> anyhow::Result<()> {
        iptables::ensure_network(record)?;
        let list = conflist(record, &self.ipam_dir(), publish && !state.ports.is_empty());
        state.networks.push(NetworkState {
            network: record.name.clone(),
            interface: interface.to_string(),
            config: list.clone(),
            publishes_ports: publish,
            result: None,
        });
        self.states.write(state)?;
        let runtime = runtime_config(&state.ports, publish);
        let netns = state.netns.clone();
        let id = state.id.clone();
        let target = Target {
            container_id: &id,
            netns: &netns,
            interface,
        };
        self.plugins
            .add(&list, &target, &runtime, |result| {
                let last = state
                    .networks
                    .last_mut()
                    .expect("the network was pushed above");
                last.result = Some(result.clone());
                self.states.write(state)
            })
            .with_context(|| format!("failed to attach network {}", record.name))?;
        Ok(())
    }

    /// Runs DEL of one recorded network and removes it from the state.
    fn remove_network(&self, state: &mut ContainerState, index: usize) -> anyhow::Result<()> {
        let network = &state.networks[index];
        let target = Target {
            container_id: &state.id,
            netns: &state.netns,
            interface: &network.interface,
        };
        let runtime = runtime_config(&state.ports, network.publishes_ports);
        self.plugins
            .del(&network.config, &target, &runtime, network.result.as_ref())
            .with_context(|| format!("failed to detach network {}", network.network))?;
        state.networks.remove(index);
        self.states.write(state)
    }

    /// Rewrites the peer lines of every other container that shares a
    /// network with `state`.
    fn update_peer_hosts(&self, state: &ContainerState, all: &[ContainerState]) {
        let peers = sharing(state, all);
        self.update_hosts_of(all.iter().filter(|s| peers.contains(&s.id)), all);
    }

    /// Rewrites the peer lines of the hosts files of `targets`. A hosts file
    /// that cannot be written is reported and skipped: its container may be
    /// gone.
    fn update_hosts_of<'a>(
        &self,
        targets: impl Iterator<Item = &'a ContainerState>,
        all: &[ContainerState],
    ) {
        for target in targets {
            if let Err(err) = hosts::update_peers(&target.hosts_file, &target.peers(all)) {
                eprintln!(
                    "hullctl: failed to update the hosts file of container {}: {err:#}",
                    short_id(&target.id)
                );
            }
        }
    }

    /// Detaches every network in reverse order, removes the namespace,
    /// releases the ports and updates the peers' hosts files. Succeeds when
    /// nothing is left, including on a second call or after a setup that
    /// stopped midway.
    pub fn teardown(&self, container_id: &str) -> anyhow::Result<()> {
        validate_container_id(container_id)?;
        let _lock = self.states.lock()?;
        self.teardown_locked(container_id)
    }

    fn teardown_locked(&self, container_id: &str) -> anyhow::Result<()> {
        let Some(mut state) = self.states.read(container_id)? else {
            return netns::remove(&self.netns_path(container_id));
        };
        let former_peers = sharing(&state, &self.states.list()?);
        let mut first_error = None;
        for index in (0..state.networks.len()).rev() {
            if let Err(err) = self.remove_network(&mut state, index) {
                first_error.get_or_insert(err);
            }
        }
        let after = self.states.list()?;
        self.update_hosts_of(
            after.iter().filter(|s| former_peers.contains(&s.id)),
            &after,
        );
        if let Some(err) = first_error {
            return Err(err.context(format!(
                "failed to tear down the network of container {container_id}: run teardown again to retry"
            )));
        }
        if state.owns_netns {
            netns::remove(&state.netns)?;
        }
        self.states.delete(container_id)
    }

    /// Attaches a running container to one more network on the next free
    /// `ethN`, and adds it to the hosts files of the network's containers.
    /// `netns_path` and `hosts_file` are used when hullctl did not set up
    /// the container's namespace itself.
    pub fn connect(
        &self,
        container_id: &str,
        name: &str,
        netns_path: &Path,
        hosts_file: &Path,
        network: &str,
    ) -> anyhow::Result<AttachedNetwork> {
        validate_container_id(container_id)?;
        let _lock = self.states.lock()?;
        let record = self.store.find(network)?;
        let existing = self.states.read(container_id)?;
        let mut state = existing.clone().unwrap_or_else(|| ContainerState {
            id: container_id.to_string(),
            name: name.to_string(),
            netns: netns_path.to_path_buf(),
            owns_netns: false,
            hosts_file: hosts_file.to_path_buf(),
            ports: Vec::new(),
            networks: Vec::new(),
        });

        if state.network(&record.name).is_some() {
            bail!(
                "container {name} is already connected to network {}",
                record.name
            );
        }
        if !netns::is_mounted(&state.netns) {
            bail!(
                "network namespace {} of container {name} does not exist: start the container first",
                state.netns.display()
            );
        }

        let interface = state.next_interface();
        if let Err(err) = self.add_network(&mut state, &record, &interface, false) {
            if let Some(index) = state.networks.iter().position(|n| n.network == record.name) {
                if let Err(undo) = self.remove_network(&mut state, index) {
                    eprintln!(
                        "hullctl: failed to undo the attachment of network {}: {undo:#}",
                        record.name
                    );
                }
            }
            if existing.is_none() && state.networks.is_empty() {
                self.states.delete(container_id)?;
            }
            return Err(err.context(format!(
                "failed to connect container {name} to network {}",
                record.name
            )));
        }

        let all = self.states.list()?;
        self.update_hosts_of(std::iter::once(&state), &all);
        self.update_peer_hosts(&state, &all);
        let attached = state
            .network(&record.name)
            .and_then(NetworkState::attached)
            .with_context(|| {
                format!(
                    "the CNI result for network {} has no IPv4 address",
                    record.name
                )
            })?;
        Ok(attached)
    }

    /// Detaches a container from one network and removes it from the hosts
    /// files of that network's containers.
    pub fn disconnect(&self, container_id: &str, network: &str) -> anyhow::Result<()> {
        validate_container_id(container_id)?;
        let _lock = self.states.lock()?;
        let record = self.store.find(network)?;
        let state = self.states.read(container_id)?;
        let Some(mut state) = state else {
            bail!(
                "container {container_id} is not connected to network {}",
                record.name
            );
        };
        let Some(index) = state.networks.iter().position(|n| n.network == record.name) else {
            bail!(
                "container {} is not connected to network {}",
                state.name,
                record.name
            );
        };
        let former_peers = sharing(&state, &self.states.list()?);
        self.remove_network(&mut state, index)?;
        let after = self.states.list()?;
        self.update_hosts_of(std::iter::once(&state), &after);
        self.update_hosts_of(
            after.iter().filter(|s| former_peers.contains(&s.id)),
            &after,
        );
        if state.networks.is_empty() && !state.owns_netns {
            self.states.delete(container_id)?;
        }
        Ok(())
    }
}

/// Returns the ids of the other containers of `all` that share a network
/// with `state`.
fn sharing(state: &ContainerState, all: &[ContainerState]) -> Vec<String> {
    all.iter()
        .filter(|other| other.id != state.id)
        .filter(|other| {
            other
                .networks
                .iter()
                .any(|n| state.network(&n.network).is_some())
        })
        .map(|other| other.id.clone())
        .collect()
}

/// Checks that a container id can name files in the run root.
fn validate_container_id(id: &str) -> anyhow::Result<()> {
    let valid_start = id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric());
    let valid_rest = id
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid_start || !valid_rest || id.len() > 128 {
        bail!("invalid container id {id:?}: use 1 to 128 letters, digits, '_', '.' or '-', starting with a letter or digit");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn container_ids_are_checked() {
        for id in ["0123abcd", "web-1", "a.b_c"] {
            assert!(validate_container_id(id).is_ok(), "{id}");
        }
        for id in ["", "../etc", "a/b", ".hidden", &"x".repeat(129)] {
            assert!(validate_container_id(id).is_err(), "{id}");
        }
    }

    #[test]
    fn runtime_config_publishes_only_on_request() {
        let ports = [
            PortMapping {
                host_ip: Some("127.0.0.1".parse().unwrap()),
                host_port: 8080,
                container_port: 80,
                protocol: ports::Protocol::Tcp,
            },
            PortMapping {
                host_ip: None,
                host_port: 5353,
                container_port: 53,
                protocol: ports::Protocol::Udp,
            },
        ];
        assert!(runtime_config(&ports, false).is_empty());
        let config = runtime_config(&ports, true);
        assert_eq!(
            config["portMappings"],
            json!([
                { "hostPort": 8080, "containerPort": 80, "protocol": "tcp", "hostIP": "127.0.0.1" },
                { "hostPort": 5353, "containerPort": 53, "protocol": "udp" },
            ])
        );
    }
}
