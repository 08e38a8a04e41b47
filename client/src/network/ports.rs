//! Published ports: docker's `-p` syntax and the checks that a host port is
//! free before any network is set up.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener, UdpSocket};

use anyhow::{bail, Context};
use serde::{Deserialize, Serialize};

/// Transport protocol of a published port.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    Tcp,
    Udp,
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        })
    }
}

/// One published port. A `host_port` of 0 stands for any free port, which
/// `Networks::setup` picks and returns in the attachment.
#[derive(Serialize, Deserialize, Debug, Clone, Copy, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct PortMapping {
    pub host_ip: Option<IpAddr>,
    pub host_port: u16,
    pub container_port: u16,
    pub protocol: Protocol,
}

impl fmt::Display for PortMapping {
    /// Formats the mapping as docker's `ps` does: `127.0.0.1:8080->80/tcp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let host_ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        let host = SocketAddr::new(host_ip, self.host_port);
        write!(f, "{host}->{}/{}", self.container_port, self.protocol)
    }
}

impl PortMapping {
    /// Returns true when both mappings would claim one host socket: same
    /// protocol and port, and the same address or either one unspecified.
    pub fn conflicts_with(&self, other: &PortMapping) -> bool {
        if self.protocol != other.protocol || self.host_port != other.host_port {
            return false;
        }
        match (self.host_ip, other.host_ip) {
            (Some(a), Some(b)) => a == b || a.is_unspecified() || b.is_unspecified(),
            _ => true,
        }
    }

    fn host_socket(&self) -> SocketAddr {
        let ip = self.host_ip.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
        SocketAddr::new(ip, self.host_port)
    }
}

/// Parses one `-p` value: `[HOST_IP:][HOST_PORT:]CONTAINER_PORT[/PROTOCOL]`,
/// where both ports may be ranges (`8000-8009:80-89`) of equal length, an
/// IPv6 host address is written in brackets (`[::1]:8080:80`), and a missing
/// host port becomes 0 (any free port).
pub fn parse_publish(value: &str) -> anyhow::Result<Vec<PortMapping>> {
    parse(value).with_context(|| {
        format!("invalid published port {value:?}: expected [HOST_IP:][HOST_PORT:]CONTAINER_PORT[/tcp|udp]")
    })
}

fn parse(value: &str) -> anyhow::Result<Vec<PortMapping>> {
    let (spec, protocol) = match value.rsplit_once('/') {
        Some((spec, "tcp")) => (spec, Protocol::Tcp),
        Some((spec, "udp")) => (spec, Protocol::Udp),
        Some((_, other)) => bail!("protocol {other:?} is not supported, use tcp or udp"),
        None => (value, Protocol::Tcp),
    };
    let (host_ip, rest) = split_host_ip(spec)?;
    let (host_ports, container_ports) = match rest.split_once(':') {
        Some((host, container)) => (host, container),
        None => ("", rest),
    };
    let container = parse_range(container_ports, "container port")?;
    let host = if host_ports.is_empty() {
        None
    } else {
        Some(parse_range(host_ports, "host port")?)
    };
    let count = container.1 - container.0 + 1;
    if let Some((first, last)) = host {
        if last - first + 1 != count {
            bail!(
                "host port range {first}-{last} and container port range {}-{} differ in length",
                container.0,
                container.1
            );
        }
    }
    let mappings = (0..count)
        .map(|offset| PortMapping {
            host_ip,
            host_port: host.map_or(0, |(first, _)| first + offset),
            container_port: container.0 + offset,
            protocol,
        })
        .collect();
    Ok(mappings)
}

/// Splits `HOST_IP:` off the front. An IPv6 address must be in brackets so
/// that its colons are not taken for separators.
fn split_host_ip(spec: &str) -> anyhow::Result<(Option<IpAddr>, &str)> {
    if let Some(bracketed) = spec.strip_prefix('[') {
        let Some((address, rest)) = bracketed.split_once(']') else {
            bail!("missing ']' after the IPv6 host address");
        };
        let Some(rest) = rest.strip_prefix(':') else {
            bail!("missing ':' after the host address [{address}]");
        };
        let ip: std::net::Ipv6Addr = address
            .parse()
            .with_context(|| format!("invalid IPv6 host address {address:?}"))?;
        return Ok((Some(IpAddr::V6(ip)), rest));
    }
    let parts: Vec<&str> = spec.split(':').collect();
    match parts.len() {
        1 | 2 => Ok((None, spec)),
        3 => {
            let ip = parts[0]
                .parse::<Ipv4Addr>()
                .with_context(|| format!("invalid host address {:?}", parts[0]))?;
            Ok((Some(IpAddr::V4(ip)), &spec[parts[0].len() + 1..]))
        }
        _ => bail!("too many ':' separators (write an IPv6 host address in brackets)"),
    }
}

/// Parses `PORT` or `FIRST-LAST` into an inclusive range of ports 1-65535.
fn parse_range(text: &str, what: &str) -> anyhow::Result<(u16, u16)> {
    let (first, last) = match text.split_once('-') {
        Some((first, last)) => (parse_port(first, what)?, parse_port(last, what)?),
        None => {
            let port = parse_port(text, what)?;
            (port, port)
        }
    };
    if last < first {
        bail!("{what} range {first}-{last} ends before it starts");
    }
    Ok((first, last))
}

fn parse_port(text: &str, what: &str) -> anyhow::Result<u16> {
    match text.parse::<u16>() {
        Ok(port) if port > 0 => Ok(port),
        _ => bail!("invalid {what} {text:?}: expected a number from 1 to 65535"),
    }
}

/// Checks that the requested mappings can be published: no two of them and
/// none of `reserved` (other containers' published ports) claim one host
/// socket, and the host lets hullctl bind each socket. Returns the mappings
/// with every host port 0 replaced by a free port.
pub fn claim(
    requested: &[PortMapping],
    reserved: &[PortMapping],
) -> anyhow::Result<Vec<PortMapping>> {
    let mut claimed: Vec<PortMapping> = Vec::with_capacity(requested.len());
    for mapping in requested {
        if matches!(mapping.host_ip, Some(IpAddr::V6(_))) {
            bail!(
                "cannot publish {mapping}: hull networks are IPv4 only, so the host address must be IPv4"
            );
        }
        let mapping = if mapping.host_port == 0 {
            pick_free_port(mapping, reserved, &claimed)?
        } else {
            *mapping
        };
        if let Some(other) = claimed.iter().find(|other| other.conflicts_with(&mapping)) {
            bail!(
                "host port {}/{} is published twice ({other} and {mapping})",
                mapping.host_port,
                mapping.protocol
            );
        }
        if reserved.iter().any(|other| other.conflicts_with(&mapping)) {
            bail!(
                "host port {}/{} is already published by another container: choose another host port",
                mapping.host_port,
                mapping.protocol
            );
        }
        try_bind(&mapping)?;
        claimed.push(mapping);
    }
    Ok(claimed)
}

/// Binds and closes the mapping's host socket, so that a port in use by a
/// host process is rejected before anything is set up.
fn try_bind(mapping: &PortMapping) -> anyhow::Result<()> {
    let socket = mapping.host_socket();
    let result = match mapping.protocol {
        Protocol::Tcp => TcpListener::bind(socket).map(drop),
        Protocol::Udp => UdpSocket::bind(socket).map(drop),
    };
    match result {
        Ok(()) => Ok(()),
        Err(err) if err.kind() == std::io::ErrorKind::AddrInUse => bail!(
            "host port {}/{} is already in use on {}: choose another host port",
            mapping.host_port,
            mapping.protocol,
            socket.ip()
        ),
        Err(err) if err.kind() == std::io::ErrorKind::AddrNotAvailable => bail!(
            "cannot publish {mapping}: {} is not an address of this host",
            socket.ip()
        ),
        Err(err) => Err(err)
            .with_context(|| format!("failed to bind host socket {socket}/{}", mapping.protocol)),
    }
}

/// Asks the kernel for a free ephemeral port, skipping ports that another
/// container or an earlier mapping of this request already publishes.
fn pick_free_port(
    mapping: &PortMapping,
    reserved: &[PortMapping],
    claimed: &[PortMapping],
) -> anyhow::Result<PortMapping> {
    for _ in 0..64 {
        let any = PortMapping {
            host_port: 0,
            ..*mapping
        };
        let socket = any.host_socket();
        let port = match mapping.protocol {
            Protocol::Tcp => TcpListener::bind(socket).and_then(|s| s.local_addr()),
            Protocol::Udp => UdpSocket::bind(socket).and_then(|s| s.local_addr()),
        }
        .with_context(|| format!("failed to find a free host port for {mapping}"))?
        .port();
        let candidate = PortMapping {
            host_port: port,
            ..*mapping
        };
        let taken = reserved
            .iter()
            .chain(claimed)
            .any(|other| other.conflicts_with(&candidate));
        if !taken {
            return Ok(candidate);
        }
    }
    bail!("cannot find a free host port for {mapping}: every port tried is published")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mapping(
        host_ip: Option<&str>,
        host: u16,
        container: u16,
        protocol: Protocol,
    ) -> PortMapping {
        PortMapping {
            host_ip: host_ip.map(|ip| ip.parse().unwrap()),
            host_port: host,
            container_port: container,
            protocol,
        }
    }

    #[test]
    fn parse_publish_accepts_docker_forms() {
        let cases = [
            ("80", vec![mapping(None, 0, 80, Protocol::Tcp)]),
            ("8080:80", vec![mapping(None, 8080, 80, Protocol::Tcp)]),
            ("8080:80/udp", vec![mapping(None, 8080, 80, Protocol::Udp)]),
            (
                "127.0.0.1:8080:80",
                vec![mapping(Some("127.0.0.1"), 8080, 80, Protocol::Tcp)],
            ),
            (
                "127.0.0.1::80/tcp",
                vec![mapping(Some("127.0.0.1"), 0, 80, Protocol::Tcp)],
            ),
            (
                "[::1]:8080:80",
                vec![mapping(Some("::1"), 8080, 80, Protocol::Tcp)],
            ),
            (
                "8000-8001:80-81",
                vec![
                    mapping(None, 8000, 80, Protocol::Tcp),
                    mapping(None, 8001, 81, Protocol::Tcp),
                ],
            ),
            (
                "53-54/udp",
                vec![
                    mapping(None, 0, 53, Protocol::Udp),
                    mapping(None, 0, 54, Protocol::Udp),
                ],
            ),
        ];
        for (value, expected) in cases {
            assert_eq!(parse_publish(value).unwrap(), expected, "{value}");
        }
    }

    #[test]
    fn parse_publish_rejects_bad_values() {
        let cases = [
            ("", "invalid container port"),
            ("0", "invalid container port \"0\""),
            ("65536", "invalid container port"),
            ("http", "invalid container port \"http\""),
            ("80/sctp", "protocol \"sctp\" is not supported"),
            ("8080:", "invalid container port \"\""),
            ("300.0.0.1:8080:80", "invalid host address \"300.0.0.1\""),
            ("::1:8080:80", "too many ':' separators"),
            ("[::1:8080:80", "missing ']'"),
            ("8000-8002:80-81", "differ in length"),
            ("8000-8002:80", "differ in length"),
            ("90-80", "ends before it starts"),
            ("x:80", "invalid host port \"x\""),
        ];
        for (value, expected) in cases {
            let err = format!("{:#}", parse_publish(value).unwrap_err());
            assert!(err.contains(expected), "{value:?}: {err}");
            assert!(err.contains(&format!("{value:?}")), "{value:?}: {err}");
        }
    }

    #[test]
    fn conflicts_consider_address_and_protocol() {
        let any = mapping(None, 8080, 80, Protocol::Tcp);
        let loopback = mapping(Some("127.0.0.1"), 8080, 81, Protocol::Tcp);
        let other_loopback = mapping(Some("127.0.0.2"), 8080, 81, Protocol::Tcp);
        let udp = mapping(None, 8080, 80, Protocol::Udp);
        let other_port = mapping(None, 8081, 80, Protocol::Tcp);
        assert!(any.conflicts_with(&loopback));
        assert!(loopback.conflicts_with(&any));
        assert!(!loopback.conflicts_with(&other_loopback));
        assert!(!any.conflicts_with(&udp));
        assert!(!any.conflicts_with(&other_port));
    }

    #[test]
    fn claim_rejects_reserved_and_duplicate_ports() {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let busy = listener.local_addr().unwrap().port();
        let err = claim(&[mapping(Some("127.0.0.1"), busy, 80, Protocol::Tcp)], &[]).unwrap_err();
        assert!(
            err.to_string()
                .contains(&format!("host port {busy}/tcp is already in use")),
            "{err}"
        );

        let reserved = [mapping(None, 18181, 80, Protocol::Tcp)];
        let err = claim(
            &[mapping(Some("127.0.0.1"), 18181, 80, Protocol::Tcp)],
            &reserved,
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("already published by another container"),
            "{err}"
        );

        let twice = [
            mapping(None, 18182, 80, Protocol::Tcp),
            mapping(None, 18182, 81, Protocol::Tcp),
        ];
        let err = claim(&twice, &[]).unwrap_err();
        assert!(err.to_string().contains("published twice"), "{err}");
    }

    #[test]
    fn claim_picks_free_ports() {
        let requested = [
            mapping(Some("127.0.0.1"), 0, 80, Protocol::Tcp),
            mapping(Some("127.0.0.1"), 0, 81, Protocol::Tcp),
        ];
        let claimed = claim(&requested, &[]).unwrap();
        assert_eq!(claimed.len(), 2);
        assert_ne!(claimed[0].host_port, 0);
        assert_ne!(claimed[0].host_port, claimed[1].host_port);
        assert_eq!(claimed[1].container_port, 81);
    }

    #[test]
    fn display_matches_docker_ps() {
        let published = mapping(Some("127.0.0.1"), 8080, 80, Protocol::Tcp);
        assert_eq!(published.to_string(), "127.0.0.1:8080->80/tcp");
        assert_eq!(
            mapping(None, 53, 53, Protocol::Udp).to_string(),
            "0.0.0.0:53->53/udp"
        );
    }
}
