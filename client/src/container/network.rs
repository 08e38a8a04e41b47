//! The container side of networking: `--network` modes, the files bound
//! at /etc/hosts, /etc/hostname and /etc/resolv.conf, and the network
//! namespace set up at start and torn down at exit.

use std::path::Path;

use anyhow::{bail, Context as _};
use serde_json::{json, Value};

use super::record::{ContainerRecord, PublishedPort};
use super::Context;
use crate::network::{Networks, PortMapping, Protocol, SetupRequest};

/// Name of the default bridge network.
pub const DEFAULT_NETWORK: &str = "hull";

/// Turns `--network` values into the mode and the networks to join.
pub fn mode(values: &[String]) -> anyhow::Result<(String, Vec<String>)> {
    match values {
        [] => Ok(("bridge".to_owned(), vec![DEFAULT_NETWORK.to_owned()])),
        [single] if single == "bridge" || single == "default" => {
            Ok(("bridge".to_owned(), vec![DEFAULT_NETWORK.to_owned()]))
        }
        [single] if single == "none" || single == "host" => Ok((single.clone(), Vec::new())),
        many => {
            if let Some(special) = many
                .iter()
                .find(|name| matches!(name.as_str(), "none" | "host"))
            {
                bail!("invalid --network {special}: it cannot be combined with other networks");
            }
            let mut networks: Vec<String> = Vec::new();
            for name in many {
                let name = if name == "bridge" {
                    DEFAULT_NETWORK
                } else {
                    name.as_str()
                };
                if name.is_empty() {
                    bail!("invalid --network \"\": give a network name, bridge, host or none");
                }
                if !networks.iter().any(|known| known == name) {
                    networks.push(name.to_owned());
                }
            }
            Ok((networks[0].clone(), networks))
        }
    }
}

/// Parses `-p` values.
pub fn parse_ports(values: &[String]) -> anyhow::Result<Vec<PublishedPort>> {
    let mut ports = Vec::new();
    for value in values {
        for mapping in crate::network::parse_publish(value)? {
            ports.push(published_port(&mapping));
        }
    }
    Ok(ports)
}

/// The record's form of a port mapping.
pub fn published_port(mapping: &PortMapping) -> PublishedPort {
    PublishedPort {
        host_ip: mapping.host_ip.map(|ip| ip.to_string()).unwrap_or_default(),
        host_port: mapping.host_port,
        container_port: mapping.container_port,
        protocol: match mapping.protocol {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
        .to_owned(),
    }
}

fn port_mapping(port: &PublishedPort) -> anyhow::Result<PortMapping> {
    let host_ip = if port.host_ip.is_empty() {
        None
    } else {
        Some(
            port.host_ip
                .parse()
                .with_context(|| format!("invalid host address {} in the record", port.host_ip))?,
        )
    };
    Ok(PortMapping {
        host_ip,
        host_port: port.host_port,
        container_port: port.container_port,
        protocol: if port.protocol == "udp" {
            Protocol::Udp
        } else {
            Protocol::Tcp
        },
    })
}

/// Writes the container's hostname, hosts and resolv.conf files; the
/// network setup at start fills in the hosts file.
pub fn write_files(dir: &Path, hostname: &str) -> anyhow::Result<()> {
    let write = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).with_context(|| format!("failed to write {}", path.display()))
    };
    write("hostname", &format!("{hostname}\n"))?;
    write(
        "hosts",
        &format!("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n127.0.1.1\t{hostname}\n"),
    )?;
    write("resolv.conf", &resolv_conf())
}

/// The host's resolv.conf without loopback name servers, which a
/// container in its own network namespace cannot reach.
fn resolv_conf() -> String {
    let host = std::fs::read_to_string("/etc/resolv.conf").unwrap_or_default();
    let mut text = String::new();
    for line in host.lines() {
        let mut words = line.split_whitespace();
        if words.next() == Some("nameserver") {
            let server = words.next().unwrap_or_default();
            if server.starts_with("127.") || server == "::1" {
                continue;
            }
        }
        text.push_str(line);
        text.push('\n');
    }
    text
}

/// Sets up the network of `record` before its task is created and points
/// the spec at it. Returns the attachment to record, if any.
pub async fn setup(
    ctx: &Context,
    record: &ContainerRecord,
    spec: &mut Value,
) -> anyhow::Result<Option<Value>> {
    let dir = ctx.store.container_dir(&record.id);
    let settings = &record.settings;
    if settings.network_mode == "host" {
        // The host's network namespace: no namespace entry, and the host's
        // hosts file as a start.
        if let Some(namespaces) = spec["linux"]["namespaces"].as_array_mut() {
            namespaces.retain(|namespace| namespace["type"] != "network");
        }
        let hosts = std::fs::read_to_string("/etc/hosts").unwrap_or_default();
        let path = dir.join("hosts");
        std::fs::write(&path, hosts)
            .with_context(|| format!("failed to write {}", path.display()))?;
        return Ok(None);
    }
    let ports = settings
        .ports
        .iter()
        .map(port_mapping)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let request = SetupRequest {
        container_id: record.id.clone(),
        name: record.name.clone(),
        hostname: settings.hostname.clone(),
        networks: settings.networks.clone(),
        ports,
        hosts_file: dir.join("hosts"),
    };
    let paths = ctx.paths.clone();
    let uses_default = settings.networks.iter().any(|name| name == DEFAULT_NETWORK);
    // The CNI plugins run as child processes and the module waits for them.
    let attachment = tokio::task::spawn_blocking(move || {
        let networks = Networks::new(&paths);
        if uses_default {
            networks.ensure_default()?;
        }
        networks.setup(&request)
    })
    .await
    .context("the network setup thread failed")??;
    set_netns(spec, &attachment.netns);
    Ok(Some(serde_json::to_value(&attachment)?))
}

/// Removes the network setup of container `id`; safe to repeat.
pub async fn teardown(ctx: &Context, id: &str) -> anyhow::Result<()> {
    let paths = ctx.paths.clone();
    let id = id.to_owned();
    tokio::task::spawn_blocking(move || Networks::new(&paths).teardown(&id))
        .await
        .context("the network teardown thread failed")?
}

fn set_netns(spec: &mut Value, netns: &Path) {
    let entry = json!({ "type": "network", "path": netns });
    match spec["linux"]["namespaces"].as_array_mut() {
        Some(namespaces) => {
            namespaces.retain(|namespace| namespace["type"] != "network");
            namespaces.push(entry);
        }
        None => spec["linux"]["namespaces"] = json!([entry]),
    }
}

/// `network connect`: joins the running container `container` to
/// `network` and keeps the network in its settings, so the next start
/// joins it too.
pub fn connect(
    paths: &crate::paths::Paths,
    networks: &Networks,
    network: &str,
    container: &str,
) -> anyhow::Result<crate::network::AttachedNetwork> {
    let store = super::Store::new(paths);
    let record = store.find(container)?;
    let netns = record
        .network_attachment
        .as_ref()
        .and_then(|attachment| attachment["netns"].as_str())
        .map(std::path::PathBuf::from)
        .ok_or_else(|| {
            anyhow::anyhow!(
                "container {} has no network namespace of hullctl's: start it, and use a network other than host",
                record.name
            )
        })?;
    let hosts = store.container_dir(&record.id).join("hosts");
    let attached = networks.connect(&record.id, &record.name, &netns, &hosts, network)?;
    let attachment = networks.attachment(&record.id)?;
    let attachment = attachment.map(serde_json::to_value).transpose()?;
    store.update(&record.id, |record| {
        record.network_attachment = attachment;
        if !record.settings.networks.iter().any(|name| name == network) {
            record.settings.networks.push(network.to_owned());
        }
    })?;
    Ok(attached)
}

/// `network disconnect`: removes the container from `network`, now and
/// for later starts.
pub fn disconnect(
    paths: &crate::paths::Paths,
    networks: &Networks,
    network: &str,
    container: &str,
) -> anyhow::Result<()> {
    let store = super::Store::new(paths);
    let record = store.find(container)?;
    if !record.settings.networks.iter().any(|name| name == network) {
        bail!(
            "container {} is not connected to network {network}",
            record.name
        );
    }
    if record.network_attachment.is_some() {
        networks.disconnect(&record.id, network)?;
    }
    let attachment = networks.attachment(&record.id)?;
    let attachment = attachment.map(serde_json::to_value).transpose()?;
    store.update(&record.id, |record| {
        if record.network_attachment.is_some() {
            record.network_attachment = attachment;
        }
        record.settings.networks.retain(|name| name != network);
    })?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_modes() {
        assert_eq!(
            mode(&[]).unwrap(),
            ("bridge".to_owned(), vec![DEFAULT_NETWORK.to_owned()])
        );
        assert_eq!(mode(&["none".into()]).unwrap(), ("none".to_owned(), vec![]));
        assert_eq!(
            mode(&["a".into(), "b".into(), "a".into()]).unwrap(),
            ("a".to_owned(), vec!["a".to_owned(), "b".to_owned()])
        );
        assert!(mode(&["host".into(), "a".into()]).is_err());
        assert!(mode(&["".into(), "a".into()]).is_err());
    }
}
