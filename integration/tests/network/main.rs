//! `hullctl network ...` end to end: records, bad input, and containers
//! connected to real bridges through the CNI plugins, reaching each other
//! by name.

mod fixture;

use hull_integration::network::{bridge_ports, iptables_rules, leases, link_exists};
use hull_integration::{require_root, require_tools, unique_id};

use fixture::{wget_in, Hullctl};

fn require_cni() -> bool {
    if std::path::Path::new("/usr/lib/cni/bridge").is_file() {
        return true;
    }
    eprintln!("skipping: /usr/lib/cni has no CNI plugins (containernetworking-plugins)");
    false
}

#[test]
fn network_create_list_inspect_remove() {
    require_root!();
    let hullctl = Hullctl::new();
    let name = unique_id("net");
    let subnet = hull_integration::network::unique_subnet();
    let created = hullctl.ok(&["network", "create", "--subnet", &subnet, &name]);
    let id = created.stdout.trim().to_string();
    assert_eq!(id.len(), 64, "{created}");
    assert!(id.chars().all(|c| c.is_ascii_hexdigit()), "{created}");

    let record = hullctl.inspect(&name);
    assert_eq!(record["name"], name.as_str());
    assert_eq!(record["id"], id.as_str());
    assert_eq!(record["driver"], "bridge");
    assert_eq!(record["subnet"], subnet.as_str());
    assert_eq!(record["gateway"], subnet.replace(".0/24", ".1").as_str());
    assert_eq!(record["internal"], false);
    assert_eq!(record["containers"], serde_json::json!([]));
    let bridge = record["bridge"].as_str().unwrap().to_string();
    assert!(
        bridge.starts_with("hull-") && bridge.len() == 15,
        "{bridge}"
    );
    assert_eq!(hullctl.inspect(&id[..12])["name"], name.as_str());

    let auto = unique_id("auto");
    hullctl.ok(&["network", "create", "--internal", &auto]);
    let picked = hullctl.inspect(&auto);
    let picked_subnet = picked["subnet"].as_str().unwrap();
    assert!(
        picked_subnet.starts_with("10.89.") && picked_subnet.ends_with(".0/24"),
        "{picked}"
    );
    assert_eq!(picked["internal"], true);

    let table = hullctl.ok(&["network", "ls"]);
    let header = table.stdout.lines().next().unwrap_or_default();
    assert!(
        header.starts_with("NETWORK ID") && header.contains("SUBNET"),
        "{table}"
    );
    assert!(
        table.stdout.contains(&name) && table.stdout.contains(&subnet),
        "{table}"
    );
    let quiet = hullctl.ok(&["network", "ls", "-q"]);
    assert!(
        quiet.stdout.lines().any(|line| line == &id[..12]),
        "{quiet}"
    );
    let json = hullctl.ok(&["network", "ls", "--format", "json"]);
    let list: serde_json::Value = serde_json::from_str(&json.stdout).unwrap();
    assert_eq!(list.as_array().map(Vec::len), Some(2), "{json}");

    let removed = hullctl.ok(&["network", "rm", &name, &auto]);
    assert_eq!(removed.stdout, format!("{name}\n{auto}\n"));
    let json = hullctl.ok(&["network", "ls", "--format", "json"]);
    assert_eq!(json.stdout.trim(), "[]");
    assert!(
        !iptables_rules().contains(&bridge),
        "rules of {bridge} are left"
    );
}

#[test]
fn bad_network_input_changes_nothing() {
    require_root!();
    let hullctl = Hullctl::new();
    let name = unique_id("net");
    let record = hullctl.create_network(&name, &[]);
    let subnet = record["subnet"].as_str().unwrap().to_string();
    let before = hullctl.ok(&["network", "ls", "--format", "json"]).stdout;

    let other = unique_id("other");
    let cases: Vec<(Vec<&str>, String)> = vec![
        (
            vec!["network", "create", &name],
            format!("network {name} already exists"),
        ),
        (
            vec!["network", "create", "--subnet", "10.89.300.0/24", &other],
            String::from("invalid subnet \"10.89.300.0/24\""),
        ),
        (
            vec!["network", "create", "--subnet", &subnet, &other],
            format!("overlaps subnet {subnet} of network {name}"),
        ),
        (
            vec!["network", "create", "--subnet", "10.89.0.0/16", &other],
            format!("of network {name}"),
        ),
        (
            vec!["network", "create", "--gateway", "10.89.1.1", &other],
            String::from("--gateway 10.89.1.1 needs --subnet"),
        ),
        (
            vec![
                "network",
                "create",
                "--subnet",
                "172.31.250.0/24",
                "--gateway",
                "172.31.251.1",
                &other,
            ],
            String::from("invalid gateway 172.31.251.1"),
        ),
        (
            vec!["network", "create", "bad/name"],
            String::from("invalid network name \"bad/name\""),
        ),
        (vec!["network", "create", "host"], String::from("reserved")),
        (
            vec!["network", "create", "hull"],
            String::from("default network"),
        ),
        (
            vec!["network", "inspect", "missing-net"],
            String::from("network missing-net not found"),
        ),
        (
            vec!["network", "rm", "missing-net"],
            String::from("network missing-net not found"),
        ),
        (
            vec!["network", "connect", &name, "missing-container"],
            String::from("container missing-container not found"),
        ),
    ];
    for (args, expected) in cases {
        let stderr = hullctl.fails(&args);
        assert!(stderr.contains(&expected), "{args:?}: {stderr}");
        assert_eq!(stderr.lines().count(), 1, "{args:?}: {stderr}");
    }
    let after = hullctl.ok(&["network", "ls", "--format", "json"]).stdout;
    assert_eq!(before, after);
}

#[test]
fn connected_containers_resolve_each_other() {
    require_root!();
    require_tools!("nsenter", "unshare", "iptables-save");
    if !require_cni() {
        return;
    }
    let hullctl = Hullctl::new();
    let network = unique_id("net");
    let record = hullctl.create_network(&network, &[]);
    let bridge = record["bridge"].as_str().unwrap().to_string();
    let web_name = unique_id("web");
    let client_name = unique_id("client");
    let web = hullctl.container(&web_name);
    let client = hullctl.container(&client_name);

    let connected = hullctl.ok(&["network", "connect", &network, &web_name]);
    assert!(connected.stdout.starts_with("eth0 10.89."), "{connected}");
    hullctl.ok(&["network", "connect", &network, &client_name]);
    assert_eq!(bridge_ports(&bridge).len(), 2, "veths on {bridge}");

    let web_record = hullctl.record(web);
    let attached = &web_record["networkAttachment"]["networks"][0];
    assert_eq!(attached["network"], network.as_str());
    assert_eq!(attached["interface"], "eth0");
    let web_ip = attached["ip"]
        .as_str()
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .to_string();
    let client_hosts = std::fs::read_to_string(hullctl.hosts_file(client)).unwrap();
    assert!(
        client_hosts.contains(&format!("{web_ip}\t{web_name}\t")),
        "{client_hosts}"
    );
    assert!(
        client_hosts.starts_with("127.0.0.1\tlocalhost\n"),
        "{client_hosts}"
    );

    let members = hullctl.inspect(&network)["containers"].clone();
    assert_eq!(members.as_array().map(Vec::len), Some(2), "{members}");

    hullctl.start_httpd(web, "hello from web\n");
    let client_netns = hullctl.with_container(client, |c| c.netns());
    let fetched = wget_in(
        &client_netns,
        &hullctl.hosts_file(client),
        &format!("http://{web_name}/"),
    );
    assert_eq!(fetched.stdout, "hello from web\n", "{fetched}");

    let stderr = hullctl.fails(&["network", "rm", &network]);
    assert!(stderr.contains("is in use by container(s)"), "{stderr}");
    assert!(
        stderr.contains(&web_name) && stderr.contains(&client_name),
        "{stderr}"
    );

    let web_id = hullctl.with_container(web, |c| c.id.clone());
    hullctl.ok(&["network", "disconnect", &network, &web_id]);
    let client_hosts = std::fs::read_to_string(hullctl.hosts_file(client)).unwrap();
    assert!(!client_hosts.contains(&web_name), "{client_hosts}");
    assert_eq!(
        hullctl.record(web)["networkAttachment"]["networks"],
        serde_json::json!([])
    );
    let stderr = hullctl.fails(&["network", "disconnect", &network, &web_id]);
    assert!(stderr.contains("is not connected"), "{stderr}");
    hullctl.ok(&["network", "disconnect", &network, &client_name]);

    assert!(bridge_ports(&bridge).is_empty(), "veths left on {bridge}");
    assert!(leases(&hullctl.run_root(), &network).is_empty());
    let rules = iptables_rules();
    assert!(
        !rules.contains(&format!("{web_ip}/32")),
        "rules for {web_ip} are left:\n{rules}"
    );
    hullctl.ok(&["network", "rm", &network]);
    assert!(!link_exists(&bridge), "bridge {bridge} is left");
    assert!(
        !iptables_rules().contains(&bridge),
        "rules of {bridge} are left"
    );
}
