//! Network records (`<root>/networks/<name>.json`) and the choice of their
//! names, subnets and bridges.

use std::fs;
use std::io::Write;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use ipnet::Ipv4Net;
use serde::{Deserialize, Serialize};

/// Name of the network that containers join when none is named: docker's
/// `bridge`.
pub const DEFAULT_NETWORK: &str = "hull";
/// Bridge device of the default network.
pub const DEFAULT_BRIDGE: &str = "hull0";
/// Subnet of the default network.
/// Subnet of the default network of the default run root: podman's
/// default network has 10.88.0.0/16.
pub const DEFAULT_SUBNET: &str = "10.87.0.0/16";
/// Pool from which `network create` takes a /24 when no subnet is given.
pub const POOL: &str = "10.89.0.0/16";
/// Prefix of every bridge device that hull creates, so that one iptables
/// pattern (`hull+`) matches them all.
pub const BRIDGE_PREFIX: &str = "hull";

/// Names that select a network mode instead of a network.
const RESERVED_NAMES: [&str; 3] = ["host", "none", "bridge"];

/// A bridge network.
#[derive(Serialize, Deserialize, Debug, Clone, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct NetworkRecord {
    pub name: String,
    /// 64 hex digits, random.
    pub id: String,
    /// Always `bridge`.
    pub driver: String,
    /// Linux bridge device that the containers' veths join.
    pub bridge: String,
    pub subnet: Ipv4Net,
    /// Address of the bridge, and the containers' default route unless the
    /// network is internal.
    pub gateway: Ipv4Addr,
    /// Containers get no default route, and hull drops forwarded traffic
    /// between the bridge and any other interface.
    pub internal: bool,
    /// The bridge plugin masquerades traffic that leaves the subnet.
    pub ip_masq: bool,
    /// RFC 3339 time of creation.
    pub created: String,
}

/// Options of `network create`.
#[derive(Debug, Clone, Default)]
pub struct CreateRequest {
    pub name: String,
    pub subnet: Option<String>,
    pub gateway: Option<String>,
    pub internal: bool,
    pub ip_masq: bool,
}

/// Checks a network name: it becomes a file name, the CNI network name and
/// part of iptables comments.
pub fn validate_name(name: &str) -> anyhow::Result<()> {
    let valid_start = name
        .chars()
        .next()
        .is_some_and(|c| c.is_ascii_alphanumeric());
    let valid_rest = name
        .chars()
        .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !valid_start || !valid_rest || name.len() > 64 {
        bail!(
            "invalid network name {name:?}: use 1 to 64 letters, digits, '_', '.' or '-', starting with a letter or digit"
        );
    }
    if RESERVED_NAMES.contains(&name) {
        bail!("network name {name:?} is reserved for a network mode: choose another name");
    }
    Ok(())
}

/// Parses `--subnet` and `--gateway` into a subnet and gateway, the gateway
/// defaulting to the first host address.
pub fn parse_subnet(subnet: &str, gateway: Option<&str>) -> anyhow::Result<(Ipv4Net, Ipv4Addr)> {
    if subnet.contains(':') {
        bail!("invalid subnet {subnet:?}: IPv6 subnets are not supported");
    }
    let net: Ipv4Net = subnet.parse().with_context(|| {
        format!("invalid subnet {subnet:?}: expected an IPv4 CIDR such as 10.89.5.0/24")
    })?;
    if net.network() != net.addr() {
        bail!(
            "invalid subnet {subnet:?}: host bits are set, did you mean {}?",
            net.trunc()
        );
    }
    if net.prefix_len() > 30 {
        bail!("invalid subnet {subnet:?}: the prefix must be /30 or shorter to leave room for containers");
    }
    let gateway = match gateway {
        Some(text) => {
            let gateway: Ipv4Addr = text
                .parse()
                .with_context(|| format!("invalid gateway {text:?}: expected an IPv4 address"))?;
            if !net.contains(&gateway) || gateway == net.network() || gateway == net.broadcast() {
                bail!("invalid gateway {gateway}: it must be a host address of subnet {net}");
            }
            gateway
        }
        None => first_host(net),
    };
    Ok((net, gateway))
}

fn first_host(net: Ipv4Net) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(net.network()) + 1)
}

/// Returns true when one subnet contains the other.
pub fn overlaps(a: Ipv4Net, b: Ipv4Net) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// A route of the host's main table, from `/proc/net/route`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HostRoute {
    pub device: String,
    pub destination: Ipv4Net,
}

/// Reads the host's IPv4 routes except default routes.
pub fn host_routes() -> anyhow::Result<Vec<HostRoute>> {
    let text = fs::read_to_string("/proc/net/route").context("failed to read /proc/net/route")?;
    Ok(parse_routes(&text))
}

/// Parses `/proc/net/route`, whose addresses are little-endian hex.
fn parse_routes(text: &str) -> Vec<HostRoute> {
    let mut routes = Vec::new();
    for line in text.lines().skip(1) {
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 8 {
            continue;
        }
        let parse =
            |hex: &str| u32::from_str_radix(hex, 16).map(|n| Ipv4Addr::from(n.swap_bytes()));
        let (Ok(destination), Ok(mask)) = (parse(fields[1]), parse(fields[7])) else {
            continue;
        };
        let prefix = u32::from(mask).count_ones() as u8;
        if prefix == 0 {
            continue;
        }
        if let Ok(destination) = Ipv4Net::new(destination, prefix) {
            routes.push(HostRoute {
                device: fields[0].to_string(),
                destination: destination.trunc(),
            });
        }
    }
    routes
}

/// Rejects a subnet that overlaps another network's or a host route, except
/// routes through the bridges of hull's own networks.
pub fn check_overlap(
    subnet: Ipv4Net,
    networks: &[NetworkRecord],
    routes: &[HostRoute],
) -> anyhow::Result<()> {
    if let Some(other) = networks.iter().find(|n| overlaps(n.subnet, subnet)) {
        bail!(
            "subnet {subnet} overlaps subnet {} of network {}: choose another subnet",
            other.subnet,
            other.name
        );
    }
    let own_bridge = |device: &str| networks.iter().any(|n| n.bridge == device);
    if let Some(route) = routes
        .iter()
        .find(|r| !own_bridge(&r.device) && overlaps(r.destination, subnet))
    {
        bail!(
            "subnet {subnet} overlaps the host's route to {} on {}: choose another subnet",
            route.destination,
            route.device
        );
    }
    Ok(())
}

/// Picks the first /24 of the pool that overlaps no network and no route.
pub fn pick_subnet(networks: &[NetworkRecord], routes: &[HostRoute]) -> anyhow::Result<Ipv4Net> {
    let pool: Ipv4Net = POOL.parse().expect("POOL is a valid CIDR");
    let subnets = pool.subnets(24).expect("the pool is shorter than /24");
    for subnet in subnets {
        if check_overlap(subnet, networks, routes).is_ok() {
            return Ok(subnet);
        }
    }
    bail!("no free /24 subnet is left in {POOL}: remove a network or give --subnet")
}

/// Returns the bridge device name for a network id: `hull-` and 10 hex
/// digits, within the kernel's 15-byte limit on interface names.
pub fn bridge_name(id: &str) -> String {
    format!("{BRIDGE_PREFIX}-{}", &id[..10])
}

/// Returns a new random id of 64 hex digits.
pub fn new_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    fs::File::open("/dev/urandom")
        .and_then(|mut file| std::io::Read::read_exact(&mut file, &mut bytes))
        .context("failed to read /dev/urandom")?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

/// The directory of network records.
pub struct Store {
    dir: PathBuf,
}

impl Store {
    pub fn new(dir: PathBuf) -> Store {
        Store { dir }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.json"))
    }

    /// Reads every record, sorted by name.
    pub fn list(&self) -> anyhow::Result<Vec<NetworkRecord>> {
        let entries = match fs::read_dir(&self.dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read {}", self.dir.display()))
            }
        };
        let mut records = Vec::new();
        for entry in entries {
            let path = entry
                .with_context(|| format!("failed to read {}", self.dir.display()))?
                .path();
            if path.extension().is_some_and(|ext| ext == "json") {
                records.push(read_record(&path)?);
            }
        }
        records.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(records)
    }

    /// Reads the record of `name`, or None when there is none.
    pub fn get(&self, name: &str) -> anyhow::Result<Option<NetworkRecord>> {
        if validate_name(name).is_err() {
            return Ok(None);
        }
        let path = self.path(name);
        if !path.exists() {
            return Ok(None);
        }
        read_record(&path).map(Some)
    }

    /// Finds a network by name, full id or unique id prefix.
    pub fn find(&self, name_or_id: &str) -> anyhow::Result<NetworkRecord> {
        if let Some(record) = self.get(name_or_id)? {
            return Ok(record);
        }
        let records = self.list()?;
        let matches: Vec<&NetworkRecord> = records
            .iter()
            .filter(|r| !name_or_id.is_empty() && r.id.starts_with(name_or_id))
            .collect();
        match matches.as_slice() {
            [record] => Ok((*record).clone()),
            [] => bail!("network {name_or_id} not found"),
            _ => bail!("network id prefix {name_or_id} is ambiguous: give more digits or the name"),
        }
    }

    /// Writes a record atomically: a reader sees the old file or the new one.
    pub fn write(&self, record: &NetworkRecord) -> anyhow::Result<()> {
        fs::create_dir_all(&self.dir)
            .with_context(|| format!("failed to create {}", self.dir.display()))?;
        let path = self.path(&record.name);
        let temporary = self.dir.join(format!(".{}.json.tmp", record.name));
        let mut json = serde_json::to_vec_pretty(record)?;
        json.push(b'\n');
        let mut file = fs::File::create(&temporary)
            .with_context(|| format!("failed to create {}", temporary.display()))?;
        file.write_all(&json)
            .and_then(|()| file.sync_all())
            .with_context(|| format!("failed to write {}", temporary.display()))?;
        fs::rename(&temporary, &path).with_context(|| {
            format!(
                "failed to rename {} to {}",
                temporary.display(),
                path.display()
            )
        })
    }

    pub fn delete(&self, name: &str) -> anyhow::Result<()> {
        let path = self.path(name);
        match fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(err) => Err(err).with_context(|| format!("failed to remove {}", path.display())),
        }
    }
}

fn read_record(path: &Path) -> anyhow::Result<NetworkRecord> {
    let bytes = fs::read(path).with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_slice(&bytes)
        .with_context(|| format!("invalid network record {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(name: &str, subnet: &str, bridge: &str) -> NetworkRecord {
        let subnet: Ipv4Net = subnet.parse().unwrap();
        NetworkRecord {
            name: name.to_string(),
            id: "0".repeat(64),
            driver: String::from("bridge"),
            bridge: bridge.to_string(),
            subnet,
            gateway: first_host(subnet),
            internal: false,
            ip_masq: false,
            created: String::new(),
        }
    }

    #[test]
    fn names_are_checked() {
        for name in ["web", "a", "back_end.2", "x-y"] {
            assert!(validate_name(name).is_ok(), "{name}");
        }
        for name in [
            "",
            "-x",
            "a/b",
            "a b",
            "host",
            "none",
            "bridge",
            &"n".repeat(65),
        ] {
            assert!(validate_name(name).is_err(), "{name}");
        }
    }

    #[test]
    fn subnets_are_checked() {
        let (net, gateway) = parse_subnet("10.89.7.0/24", None).unwrap();
        assert_eq!(net.to_string(), "10.89.7.0/24");
        assert_eq!(gateway, Ipv4Addr::new(10, 89, 7, 1));
        let (_, gateway) = parse_subnet("10.89.7.0/24", Some("10.89.7.254")).unwrap();
        assert_eq!(gateway, Ipv4Addr::new(10, 89, 7, 254));

        let cases = [
            ("10.89.7.5/24", None, "did you mean 10.89.7.0/24"),
            ("10.89.7.0/31", None, "/30 or shorter"),
            ("10.89.7.0", None, "expected an IPv4 CIDR"),
            ("fd00::/64", None, "IPv6 subnets are not supported"),
            ("10.89.7.0/24", Some("10.89.8.1"), "must be a host address"),
            (
                "10.89.7.0/24",
                Some("10.89.7.255"),
                "must be a host address",
            ),
            ("10.89.7.0/24", Some("gw"), "invalid gateway \"gw\""),
        ];
        for (subnet, gateway, expected) in cases {
            let err = format!("{:#}", parse_subnet(subnet, gateway).unwrap_err());
            assert!(err.contains(expected), "{subnet} {gateway:?}: {err}");
        }
    }

    #[test]
    fn overlap_with_networks_and_routes() {
        let networks = [record("a", "10.89.0.0/24", "hull-aaaaaaaaaa")];
        let routes = parse_routes(
            "Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask\tMTU\tWindow\tIRTT\n\
             eth0\t00000000\t0102000A\t0003\t0\t0\t0\t00000000\t0\t0\t0\n\
             eth0\t0001590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n\
             hull-aaaaaaaaaa\t0000590A\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n",
        );
        assert_eq!(routes.len(), 2, "the default route is skipped");
        assert_eq!(routes[0].destination.to_string(), "10.89.1.0/24");

        let err = check_overlap("10.89.0.0/16".parse().unwrap(), &networks, &routes).unwrap_err();
        assert!(err.to_string().contains("network a"), "{err}");
        let err = check_overlap("10.89.1.128/25".parse().unwrap(), &[], &routes).unwrap_err();
        assert!(
            err.to_string().contains("route to 10.89.1.0/24 on eth0"),
            "{err}"
        );
        assert!(check_overlap("10.89.2.0/24".parse().unwrap(), &networks, &routes).is_ok());

        let picked = pick_subnet(&networks, &routes).unwrap();
        assert_eq!(picked.to_string(), "10.89.2.0/24");
    }

    #[test]
    fn bridge_names_fit_the_kernel_limit() {
        let id = new_id().unwrap();
        assert_eq!(id.len(), 64);
        let bridge = bridge_name(&id);
        assert_eq!(bridge.len(), 15);
        assert!(bridge.starts_with("hull-"));
    }
}
