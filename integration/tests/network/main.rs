//! `hullctl network ...` end to end: records and bad input. Containers on
//! networks are tested with the container commands.

mod fixture;

use hull_integration::network::iptables_rules;
use hull_integration::{require_root, unique_id};

use fixture::Hullctl;

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
            String::from("no such container: missing-container"),
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
