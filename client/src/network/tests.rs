//! Setup and teardown against the real kernel and CNI plugins: network
//! namespaces, veths on a bridge, iptables rules and address leases.
//!
//! The tests need root, `/usr/lib/cni`, iptables, iproute2, util-linux
//! (`nsenter`, `unshare`) and the static busybox at `/bin/busybox`.
//! Without them they print why and pass. Each test uses its own run root,
//! network names and subnet, and removes all it made when it ends.

use std::net::{Ipv4Addr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::paths::Paths;

const BUSYBOX: &str = "/bin/busybox";

fn can_run(test: &str) -> bool {
    let missing = if !nix::unistd::geteuid().is_root() {
        Some("root")
    } else if !Path::new("/usr/lib/cni/bridge").is_file() {
        Some("/usr/lib/cni/bridge")
    } else if !Path::new(BUSYBOX).is_file() {
        Some(BUSYBOX)
    } else if Command::new("iptables").arg("--version").output().is_err() {
        Some("iptables")
    } else {
        None
    };
    if let Some(missing) = missing {
        eprintln!("skipping {test}: it needs {missing}");
        return false;
    }
    true
}

/// Returns a /24 in 10.89.128.0/17 that differs between tests of this
/// process and, most likely, between processes.
fn unique_subnet() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let third = 128 + (std::process::id() * 7 + n * 13) % 128;
    format!("10.89.{third}.0/24")
}

fn unique_name(prefix: &str) -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    format!("{prefix}-{}-{n}", std::process::id())
}

/// A run root and store root in a temporary directory, and everything made
/// in them. Dropping it tears down the containers and removes the networks,
/// even when the test failed.
struct Fixture {
    dir: tempfile::TempDir,
    networks: Networks,
    containers: Vec<String>,
    network_names: Vec<String>,
    children: Vec<Child>,
}

impl Fixture {
    fn new() -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let paths = Paths {
            root: dir.path().join("root"),
            run_root: dir.path().join("run"),
        };
        Fixture {
            networks: Networks::new(&paths),
            dir,
            containers: Vec::new(),
            network_names: Vec::new(),
            children: Vec::new(),
        }
    }

    fn run_root(&self) -> PathBuf {
        self.dir.path().join("run")
    }

    fn create_network(&mut self, internal: bool) -> NetworkRecord {
        let name = unique_name("net");
        self.network_names.push(name.clone());
        let request = CreateRequest {
            name,
            subnet: Some(unique_subnet()),
            internal,
            ..CreateRequest::default()
        };
        self.networks.create(&request).unwrap()
    }

    fn setup(
        &mut self,
        name: &str,
        networks: &[&NetworkRecord],
        ports: Vec<PortMapping>,
    ) -> anyhow::Result<(String, Attachment)> {
        let id = unique_name("c");
        let hosts_file = self.dir.path().join(format!("{id}.hosts"));
        self.containers.push(id.clone());
        let request = SetupRequest {
            container_id: id.clone(),
            name: name.to_string(),
            hostname: name.to_string(),
            networks: networks.iter().map(|n| n.name.clone()).collect(),
            ports,
            hosts_file,
        };
        self.networks
            .setup(&request)
            .map(|attachment| (id, attachment))
    }

    fn hosts_file(&self, id: &str) -> PathBuf {
        self.dir.path().join(format!("{id}.hosts"))
    }

    /// Starts busybox httpd on port 80 in a namespace, serving `body`.
    fn start_httpd(&mut self, netns: &Path, body: &str) {
        let www = self.dir.path().join(format!("www-{}", self.children.len()));
        std::fs::create_dir_all(&www).unwrap();
        std::fs::write(www.join("index.html"), body).unwrap();
        let child = Command::new("nsenter")
            .arg(format!("--net={}", netns.display()))
            .args([BUSYBOX, "httpd", "-f", "-p", "80", "-h"])
            .arg(&www)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        self.children.push(child);
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for id in &self.containers {
            if let Err(err) = self.networks.teardown(id) {
                eprintln!("cleanup: teardown of {id} failed: {err:#}");
            }
        }
        for name in &self.network_names {
            if let Ok(record) = self.networks.inspect(name) {
                if let Err(err) = self.networks.remove(name) {
                    eprintln!("cleanup: removing network {name} failed: {err:#}");
                    let _ = Command::new("ip")
                        .args(["link", "delete", &record.bridge])
                        .status();
                    let _ = iptables::remove_network(&record);
                }
            }
        }
    }
}

/// Fetches `url` once with busybox wget, in the network namespace `netns`
/// when given, with `hosts_file` bind-mounted on /etc/hosts in a private
/// mount namespace when given, and gives up after `seconds`.
fn fetch_once(
    netns: Option<&Path>,
    hosts_file: Option<&Path>,
    url: &str,
    seconds: u32,
) -> Result<String, String> {
    let mut script = String::new();
    if let Some(hosts) = hosts_file {
        script.push_str(&format!("mount --bind {} /etc/hosts && ", hosts.display()));
    }
    // Debian's busybox-static 1.35 wget crashes with SIGSEGV when given -T,
    // so timeout(1) bounds the try instead.
    script.push_str(&format!(
        "exec timeout {seconds} {BUSYBOX} wget -q -O - {url}"
    ));
    let mut command = Command::new("nsenter");
    if let Some(netns) = netns {
        command.arg(format!("--net={}", netns.display()));
    }
    let output = command
        .args(["unshare", "-m", "sh", "-c", &script])
        .output()
        .unwrap();
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "wget {url} failed ({}): {}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// Fetches `url` like `fetch_once`, retrying for up to 10 s while the
/// server starts.
fn wget(netns: Option<&Path>, hosts_file: Option<&Path>, url: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match fetch_once(netns, hosts_file, url, 5) {
            Ok(body) => return body,
            Err(err) => assert!(Instant::now() < deadline, "{err}"),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn links_on(bridge: &str) -> String {
    let output = Command::new("ip")
        .args(["-br", "link", "show", "master", bridge])
        .output()
        .unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

fn iptables_save() -> String {
    let output = Command::new("iptables-save").output().unwrap();
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Lists the address leases that host-local holds for a network: every
/// file of its directory but its lock and last-reserved marker.
fn leases(run_root: &Path, network: &str) -> Vec<String> {
    let dir = run_root.join("cni/ipam").join(network);
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|name| name != "lock" && !name.starts_with("last_reserved_ip"))
        .collect()
}

/// Returns a loopback port that was free, and never the same one twice
/// in this process: the kernel may hand a released port to the next
/// caller, which would let two tests that run at once share it.
fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    let mut given = GIVEN.lock().unwrap();
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn loopback_mapping(host_port: u16) -> PortMapping {
    PortMapping {
        host_ip: Some(Ipv4Addr::LOCALHOST.into()),
        host_port,
        container_port: 80,
        protocol: Protocol::Tcp,
    }
}

#[test]
fn default_network_is_created_once() {
    let fixture = Fixture::new();
    let lock = fixture.networks.states.lock().unwrap();
    // A run root other than the default gets its own bridge and a /24 of
    // the pool. No host routes are passed, so the first /24 is free.
    let first = fixture.networks.ensure_default_locked(&[]).unwrap();
    assert_eq!(first.name, "hull");
    assert_ne!(first.bridge, "hull0");
    assert!(first.bridge.starts_with("hull-"), "{}", first.bridge);
    assert_eq!(first.subnet.to_string(), "10.89.0.0/24");
    assert_eq!(first.gateway, Ipv4Addr::new(10, 89, 0, 1));
    assert!(!first.internal);
    let second = fixture.networks.ensure_default_locked(&[]).unwrap();
    assert_eq!(first, second);
    drop(lock);
    let err = fixture
        .networks
        .create(&CreateRequest {
            name: String::from("hull"),
            ..CreateRequest::default()
        })
        .unwrap_err();
    assert!(err.to_string().contains("default network"), "{err}");
}

#[test]
fn containers_resolve_peers_and_publish_ports() {
    if !can_run("containers_resolve_peers_and_publish_ports") {
        return;
    }
    let mut fixture = Fixture::new();
    let network = fixture.create_network(false);
    let web_name = unique_name("web");
    let client_name = unique_name("client");
    let port = free_port();
    let any_address = PortMapping {
        host_ip: None,
        host_port: 0,
        container_port: 80,
        protocol: Protocol::Tcp,
    };
    let (web, web_attachment) = fixture
        .setup(
            &web_name,
            &[&network],
            vec![loopback_mapping(port), any_address],
        )
        .unwrap();
    let (client, client_attachment) = fixture
        .setup(&client_name, &[&network], Vec::new())
        .unwrap();

    let web_ip = web_attachment.networks[0].ip;
    assert!(network.subnet.contains(&web_ip.addr()), "{web_ip}");
    assert_eq!(web_attachment.networks[0].interface, "eth0");
    assert_eq!(web_attachment.networks[0].gateway, Some(network.gateway));
    assert_eq!(web_attachment.ports.len(), 2);
    assert_eq!(web_attachment.ports[0], loopback_mapping(port));
    let picked_port = web_attachment.ports[1].host_port;
    assert_ne!(picked_port, 0, "setup picks a free host port");
    assert_eq!(
        web_attachment.netns,
        fixture.run_root().join("netns").join(&web)
    );
    let client_hosts = std::fs::read_to_string(fixture.hosts_file(&client)).unwrap();
    assert!(
        client_hosts.contains(&format!("{}\t{web_name}\t", web_ip.addr())),
        "{client_hosts}"
    );
    let web_hosts = std::fs::read_to_string(fixture.hosts_file(&web)).unwrap();
    let client_ip = client_attachment.networks[0].ip.addr();
    assert!(
        web_hosts.contains(&format!("{client_ip}\t{client_name}\t")),
        "{web_hosts}"
    );
    assert!(
        web_hosts.contains(&format!("{}\t{web_name}\n", web_ip.addr())),
        "{web_hosts}"
    );

    fixture.start_httpd(&web_attachment.netns, "hello from web\n");
    let by_name = wget(
        Some(&client_attachment.netns),
        Some(&fixture.hosts_file(&client)),
        &format!("http://{web_name}/"),
    );
    assert_eq!(by_name, "hello from web\n");
    let published = wget(None, None, &format!("http://127.0.0.1:{port}/"));
    assert_eq!(published, "hello from web\n");
    let published = wget(None, None, &format!("http://127.0.0.1:{picked_port}/"));
    assert_eq!(published, "hello from web\n");
    let members = fixture.networks.members(&network.name).unwrap();
    assert_eq!(members.len(), 2);

    fixture.networks.teardown(&web).unwrap();
    let client_hosts = std::fs::read_to_string(fixture.hosts_file(&client)).unwrap();
    assert!(!client_hosts.contains(&web_name), "{client_hosts}");
    fixture.networks.teardown(&client).unwrap();
    fixture.networks.teardown(&client).unwrap();

    assert_eq!(
        links_on(&network.bridge),
        "",
        "veths left on {}",
        network.bridge
    );
    let netns_dir = fixture.run_root().join("netns");
    let left: Vec<_> = std::fs::read_dir(&netns_dir).unwrap().collect();
    assert!(
        left.is_empty(),
        "namespaces left in {}",
        netns_dir.display()
    );
    let rules = iptables_save();
    for needle in [
        web.as_str(),
        client.as_str(),
        &web_ip.addr().to_string(),
        &client_ip.to_string(),
    ] {
        assert!(
            !rules.contains(needle),
            "iptables still mentions {needle}:\n{rules}"
        );
    }
    assert_eq!(
        leases(&fixture.run_root(), &network.name),
        Vec::<String>::new()
    );
    assert!(fixture.networks.attachment(&web).unwrap().is_none());

    fixture.networks.remove(&network.name).unwrap();
    assert!(
        !link_exists(&network.bridge),
        "bridge {} is left",
        network.bridge
    );
    let rules = iptables_save();
    assert!(
        !rules.contains(&network.bridge),
        "iptables still mentions {}",
        network.bridge
    );
}

#[test]
fn setup_failure_undoes_every_step() {
    if !can_run("setup_failure_undoes_every_step") {
        return;
    }
    let mut fixture = Fixture::new();
    let good = fixture.create_network(false);
    let broken = fixture.create_network(false);
    // A device that is not a bridge, under the bridge's name, makes the
    // bridge plugin fail on the second network, after the first is set up.
    let peer = format!("hullp{}", &broken.id[..8]);
    let status = Command::new("ip")
        .args([
            "link",
            "add",
            &broken.bridge,
            "type",
            "veth",
            "peer",
            "name",
            &peer,
        ])
        .status()
        .unwrap();
    assert!(status.success());
    let result = fixture.setup(
        &unique_name("web"),
        &[&good, &broken],
        vec![loopback_mapping(free_port())],
    );
    let _ = Command::new("ip")
        .args(["link", "delete", &broken.bridge])
        .status();

    let err = format!("{:#}", result.unwrap_err());
    assert!(
        err.contains(&format!("failed to attach network {}", broken.name)),
        "{err}"
    );
    let id = fixture.containers.last().unwrap().clone();
    assert_eq!(links_on(&good.bridge), "");
    assert!(!fixture.run_root().join("netns").join(&id).exists());
    assert_eq!(
        leases(&fixture.run_root(), &good.name),
        Vec::<String>::new()
    );
    assert!(fixture.networks.attachment(&id).unwrap().is_none());
    assert!(!iptables_save().contains(&id));
}

#[test]
fn used_host_ports_are_rejected() {
    if !can_run("used_host_ports_are_rejected") {
        return;
    }
    let mut fixture = Fixture::new();
    let network = fixture.create_network(false);
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = listener.local_addr().unwrap().port();
    let err = fixture
        .setup(
            &unique_name("web"),
            &[&network],
            vec![loopback_mapping(busy)],
        )
        .unwrap_err();
    assert!(
        err.to_string().contains(&format!("host port {busy}/tcp")),
        "{err}"
    );
    let id = fixture.containers.last().unwrap().clone();
    assert!(!fixture.run_root().join("netns").join(&id).exists());
    assert!(fixture.networks.attachment(&id).unwrap().is_none());

    let port = free_port();
    fixture
        .setup(
            &unique_name("first"),
            &[&network],
            vec![loopback_mapping(port)],
        )
        .unwrap();
    let err = fixture
        .setup(
            &unique_name("second"),
            &[&network],
            vec![loopback_mapping(port)],
        )
        .unwrap_err();
    assert!(
        err.to_string()
            .contains("already published by another container"),
        "{err}"
    );
    assert_eq!(links_on(&network.bridge).lines().count(), 1);
}

#[test]
fn empty_network_list_gives_loopback_only() {
    if !can_run("empty_network_list_gives_loopback_only") {
        return;
    }
    let mut fixture = Fixture::new();
    let (id, attachment) = fixture.setup("alone", &[], Vec::new()).unwrap();
    assert!(attachment.networks.is_empty());
    let output = Command::new("nsenter")
        .arg(format!("--net={}", attachment.netns.display()))
        .args(["ip", "-br", "link"])
        .output()
        .unwrap();
    let links = String::from_utf8_lossy(&output.stdout);
    assert_eq!(links.lines().count(), 1, "{links}");
    assert!(links.starts_with("lo "), "{links}");
    assert!(links.contains("UP"), "{links}");
    let hosts = std::fs::read_to_string(fixture.hosts_file(&id)).unwrap();
    assert!(hosts.starts_with("127.0.0.1\tlocalhost\n"), "{hosts}");
    fixture.networks.teardown(&id).unwrap();
    assert!(!attachment.netns.exists());
}

#[test]
fn connect_and_disconnect_update_peers() {
    if !can_run("connect_and_disconnect_update_peers") {
        return;
    }
    let mut fixture = Fixture::new();
    let front = fixture.create_network(false);
    let back = fixture.create_network(true);
    let web_name = unique_name("web");
    let db_name = unique_name("db");
    let (web, web_attachment) = fixture.setup(&web_name, &[&front], Vec::new()).unwrap();
    let (db, _) = fixture.setup(&db_name, &[&back], Vec::new()).unwrap();
    let db_hosts = fixture.hosts_file(&db);
    assert!(!std::fs::read_to_string(&db_hosts)
        .unwrap()
        .contains(&web_name));

    let attached = fixture
        .networks
        .connect(
            &web,
            &web_name,
            &web_attachment.netns,
            &fixture.hosts_file(&web),
            &back.name,
        )
        .unwrap();
    assert_eq!(attached.interface, "eth1");
    assert!(back.subnet.contains(&attached.ip.addr()));
    let text = std::fs::read_to_string(&db_hosts).unwrap();
    assert!(
        text.contains(&format!("{}\t{web_name}\t", attached.ip.addr())),
        "{text}"
    );
    let web_hosts = std::fs::read_to_string(fixture.hosts_file(&web)).unwrap();
    assert!(web_hosts.contains(&db_name), "{web_hosts}");

    let err = fixture
        .networks
        .connect(
            &web,
            &web_name,
            &web_attachment.netns,
            &fixture.hosts_file(&web),
            &back.name,
        )
        .unwrap_err();
    assert!(err.to_string().contains("already connected"), "{err}");
    let err = fixture.networks.remove(&back.name).unwrap_err();
    assert!(err.to_string().contains(&web_name), "{err}");
    assert!(err.to_string().contains(&db_name), "{err}");

    fixture.networks.disconnect(&web, &back.name).unwrap();
    assert!(!std::fs::read_to_string(&db_hosts)
        .unwrap()
        .contains(&web_name));
    assert!(!std::fs::read_to_string(fixture.hosts_file(&web))
        .unwrap()
        .contains(&db_name));
    let attachment = fixture.networks.attachment(&web).unwrap().unwrap();
    assert_eq!(attachment.networks.len(), 1);
    assert_eq!(
        leases(&fixture.run_root(), &back.name).len(),
        1,
        "only db's lease is left"
    );
    let err = fixture.networks.disconnect(&web, &back.name).unwrap_err();
    assert!(err.to_string().contains("is not connected"), "{err}");
}

#[test]
fn networks_are_isolated() {
    if !can_run("networks_are_isolated") {
        return;
    }
    let mut fixture = Fixture::new();
    let first = fixture.create_network(false);
    let second = fixture.create_network(false);
    let (_, client) = fixture
        .setup(&unique_name("client"), &[&first], Vec::new())
        .unwrap();
    let (_, server) = fixture
        .setup(&unique_name("server"), &[&second], Vec::new())
        .unwrap();
    fixture.start_httpd(&server.netns, "hello from the other network\n");
    let url = format!("http://{}/", server.networks[0].ip.addr());

    // The host routes to both bridges, so only the isolation rules stop
    // the client.
    assert_eq!(wget(None, None, &url), "hello from the other network\n");
    let rules = iptables_save();
    let rule = format!("-i {} ! -o {}", first.bridge, first.bridge);
    assert!(rules.contains(&rule), "{rules}");
    let result = fetch_once(Some(&client.netns), None, &url, 2);
    assert!(
        result.is_err(),
        "the client reached the other network: {result:?}"
    );
}

#[test]
fn unknown_network_changes_nothing() {
    let mut fixture = Fixture::new();
    let err = fixture
        .networks
        .setup(&SetupRequest {
            container_id: unique_name("c"),
            name: String::from("web"),
            hostname: String::from("web"),
            networks: vec![String::from("no-such-network")],
            ports: Vec::new(),
            hosts_file: fixture.dir.path().join("hosts"),
        })
        .unwrap_err();
    assert_eq!(err.to_string(), "network no-such-network not found");
    assert!(!fixture.run_root().join("netns").exists());
    assert!(!fixture.dir.path().join("hosts").exists());
    fixture.containers.clear();
}

#[test]
fn teardown_removes_what_a_crash_left() {
    if !can_run("teardown_removes_what_a_crash_left") {
        return;
    }
    let fixture = Fixture::new();

    // A setup that stopped after writing its state, before the namespace.
    let id = unique_name("c");
    let state = state::ContainerState {
        id: id.clone(),
        name: String::from("web"),
        netns: fixture.run_root().join("netns").join(&id),
        owns_netns: true,
        hosts_file: fixture.dir.path().join("hosts"),
        ports: vec![loopback_mapping(free_port())],
        networks: Vec::new(),
    };
    fixture.networks.states.write(&state).unwrap();
    fixture.networks.teardown(&id).unwrap();
    assert!(fixture.networks.attachment(&id).unwrap().is_none());

    // A namespace whose state file is gone.
    let orphan = unique_name("c");
    let netns_path = fixture.run_root().join("netns").join(&orphan);
    netns::create(&netns_path).unwrap();
    assert!(netns::is_mounted(&netns_path));
    fixture.networks.teardown(&orphan).unwrap();
    assert!(!netns_path.exists());
    fixture.networks.teardown(&orphan).unwrap();
}
