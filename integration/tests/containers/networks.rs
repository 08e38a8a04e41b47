//! Containers on CNI bridge networks: reaching each other by name, ports
//! published on the host, and nothing left after rm.

use std::time::{Duration, Instant};

use hull_integration::containers::Host;
use hull_integration::network::{
    bridge_ports, free_port, iptables_rules, leases, link_exists, unique_subnet,
};
use hull_integration::{require_root, require_tools, unique_id};

/// Fetches `url` with a plain HTTP/1.0 GET from the host, retrying while
/// the server starts.
fn http_get(port: u16) -> String {
    use std::io::{Read, Write};
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let attempt = (|| -> std::io::Result<String> {
            let mut stream = std::net::TcpStream::connect(("127.0.0.1", port))?;
            stream.set_read_timeout(Some(Duration::from_secs(5)))?;
            stream.write_all(b"GET / HTTP/1.0\r\n\r\n")?;
            let mut response = String::new();
            stream.read_to_string(&mut response)?;
            Ok(response)
        })();
        match attempt {
            Ok(response) if response.contains("200 OK") => return response,
            other if Instant::now() > deadline => panic!("GET 127.0.0.1:{port} failed: {other:?}"),
            _ => std::thread::sleep(Duration::from_millis(100)),
        }
    }
}

#[test]
fn containers_reach_each_other_by_name() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci", "ip", "iptables-save");
    let host = Host::new();
    let image = host.busybox.clone();
    let network = unique_id("net");
    let subnet = unique_subnet();
    host.hullctl_ok(&["network", "create", "--subnet", &subnet, &network]);

    let port = free_port();
    let publish = format!("127.0.0.1:{port}:80");
    let serve =
        "mkdir -p /www && echo hello from web > /www/index.html && exec httpd -f -p 80 -h /www";
    let web = host.hullctl_ok(&[
        "run",
        "-d",
        "--name",
        "web",
        "--network",
        &network,
        "-p",
        &publish,
        &image,
        "sh",
        "-c",
        serve,
    ]);
    let web_id = web.stdout.trim().to_owned();
    assert!(host.wait_for_state("web", "running", Duration::from_secs(10)));

    // The other container finds web through its hosts file.
    let deadline = Instant::now() + Duration::from_secs(15);
    let fetched = loop {
        let fetched = host.hullctl(&[
            "run",
            "--rm",
            "--network",
            &network,
            &image,
            "wget",
            "-q",
            "-O",
            "-",
            "http://web/",
        ]);
        if fetched.success() || Instant::now() > deadline {
            break fetched;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    assert_eq!(fetched.code, Some(0), "{fetched}");
    assert_eq!(fetched.stdout, "hello from web\n", "{fetched}");

    // The published port answers on the host's loopback.
    let response = http_get(port);
    assert!(response.contains("hello from web"), "{response}");
    let ps = host.hullctl_ok(&["ps"]);
    assert!(
        ps.stdout.contains(&format!("127.0.0.1:{port}->80/tcp")),
        "{ps}"
    );

    // The port is taken now: a second container cannot publish it.
    let taken = host.hullctl(&[
        "run",
        "--rm",
        "--network",
        &network,
        "-p",
        &publish,
        &image,
        "true",
    ]);
    assert_ne!(taken.code, Some(0), "{taken}");
    assert!(taken.stderr.contains(&port.to_string()), "{taken}");
    assert!(taken.stderr.contains("already published"), "{taken}");

    // A port that a host process listens on is rejected too.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let bound = listener.local_addr().unwrap().port();
    let publish_bound = format!("127.0.0.1:{bound}:80");
    let in_use = host.hullctl(&[
        "run",
        "--rm",
        "--network",
        &network,
        "-p",
        &publish_bound,
        &image,
        "true",
    ]);
    assert_ne!(in_use.code, Some(0), "{in_use}");
    assert!(
        in_use
            .stderr
            .contains(&format!("{bound}/tcp is already in use")),
        "{in_use}"
    );
    drop(listener);

    let busy = host.hullctl(&["network", "rm", &network]);
    assert_ne!(busy.code, Some(0), "{busy}");
    assert!(busy.stderr.contains("web"), "{busy}");

    let inspect = host.hullctl_ok(&["inspect", "web"]);
    let value: serde_json::Value = serde_json::from_str(&inspect.stdout).unwrap();
    let ip = value[0]["NetworkSettings"]["Networks"][&network]["IPAddress"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(!ip.is_empty(), "{inspect}");
    let netns = value[0]["NetworkSettings"]["SandboxKey"]
        .as_str()
        .unwrap()
        .to_owned();

    host.hullctl_ok(&["rm", "-f", "web"]);
    assert!(!host.container_dir(&web_id).exists());
    let bridge = host.hullctl_ok(&["network", "inspect", &network]);
    let record: serde_json::Value = serde_json::from_str(&bridge.stdout).unwrap();
    let bridge = record[0]["bridge"].as_str().unwrap().to_owned();
    let ports = bridge_ports(&bridge);
    assert!(ports.is_empty(), "veths left on {bridge}: {ports:?}");
    assert!(
        !std::path::Path::new(&netns).exists(),
        "netns {netns} is left"
    );
    let rules = iptables_rules();
    assert!(
        !rules.contains(&format!("{ip}/32")),
        "rules for {ip} are left:\n{rules}"
    );
    assert!(
        !rules.contains(&format!("--dport {port}")),
        "rules for port {port} are left:\n{rules}"
    );
    assert!(
        leases(&host.run_root(), &network).is_empty(),
        "leases are left"
    );

    host.hullctl_ok(&["network", "rm", &network]);
    assert!(!link_exists(&bridge), "bridge {bridge} is left");
}

#[test]
fn connect_and_disconnect_running_container() {
    require_root!();
    require_tools!("docker-registry", "skopeo", "umoci", "ip");
    let host = Host::new();
    let image = host.busybox.clone();
    let (first, second) = (unique_id("neta"), unique_id("netb"));
    host.hullctl_ok(&["network", "create", "--subnet", &unique_subnet(), &first]);
    host.hullctl_ok(&["network", "create", "--subnet", &unique_subnet(), &second]);
    host.hullctl_ok(&[
        "run",
        "-d",
        "--name",
        "box",
        "--network",
        &first,
        &image,
        "sleep",
        "60",
    ]);
    let connected = host.hullctl_ok(&["network", "connect", &second, "box"]);
    assert!(connected.stdout.starts_with("eth1 "), "{connected}");
    let addresses = host.hullctl_ok(&["exec", "box", "ip", "-o", "-4", "addr"]);
    assert!(addresses.stdout.contains("eth1"), "{addresses}");

    host.hullctl_ok(&["network", "disconnect", &second, "box"]);
    let addresses = host.hullctl_ok(&["exec", "box", "ip", "-o", "-4", "addr"]);
    assert!(!addresses.stdout.contains("eth1"), "{addresses}");
    let again = host.hullctl(&["network", "disconnect", &second, "box"]);
    assert!(again.stderr.contains("not connected"), "{again}");

    let none = host.hullctl_ok(&[
        "run",
        "--rm",
        "--network",
        "none",
        &image,
        "ip",
        "-o",
        "link",
    ]);
    let interfaces: Vec<&str> = none.stdout.lines().collect();
    assert_eq!(interfaces.len(), 1, "{none}");
    assert!(
        interfaces[0].contains("lo:") && interfaces[0].contains("UP"),
        "{none}"
    );
    host.hullctl_ok(&["rm", "-f", "box"]);
    host.hullctl_ok(&["network", "rm", &first, &second]);
}
