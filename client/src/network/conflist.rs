//! CNI network configuration lists generated from network records.

use std::path::Path;

use serde_json::{json, Value};

use super::record::NetworkRecord;

/// CNI spec version of the generated lists, which containernetworking-
/// plugins 1.0 and later accept.
pub const CNI_VERSION: &str = "1.0.0";

/// Returns the conflist of a network: `bridge` (with `host-local` addresses
/// leased below `ipam_dir`), and `portmap` when the container publishes
/// ports through this network. Without ports, portmap would only cost a
/// process start at ADD and at DEL. The network's iptables rules accept its
/// forwarded traffic, which the `firewall` plugin would do with a dozen
/// iptables runs per container.
pub fn conflist(record: &NetworkRecord, ipam_dir: &Path, publishes_ports: bool) -> Value {
    let routes = if record.internal {
        json!([])
    } else {
        json!([{ "dst": "0.0.0.0/0" }])
    };
    let mut plugins = vec![json!({
        "type": "bridge",
        "bridge": record.bridge,
        "isGateway": true,
        "ipMasq": record.ip_masq,
        "hairpinMode": true,
        "ipam": {
            "type": "host-local",
            "dataDir": ipam_dir,
            "ranges": [[{
                "subnet": record.subnet.to_string(),
                "gateway": record.gateway.to_string(),
            }]],
            "routes": routes,
        },
    })];
    if publishes_ports {
        plugins.push(json!({
            "type": "portmap",
            "capabilities": { "portMappings": true },
        }));
    }
    json!({
        "cniVersion": CNI_VERSION,
        "name": record.name,
        "plugins": plugins,
    })
}

/// Returns the configuration that one plugin of a list reads on stdin: the
/// plugin's object with the list's `cniVersion` and `name`, the previous
/// plugin's result, and the runtime values of the capabilities that the
/// plugin declares.
pub fn plugin_config(
    list: &Value,
    plugin: &Value,
    previous: Option<&Value>,
    runtime_config: &serde_json::Map<String, Value>,
) -> Value {
    let mut config = plugin.clone();
    let object = config
        .as_object_mut()
        .expect("conflist plugins are JSON objects");
    object.insert(String::from("cniVersion"), list["cniVersion"].clone());
    object.insert(String::from("name"), list["name"].clone());
    if let Some(previous) = previous {
        object.insert(String::from("prevResult"), previous.clone());
    }
    let wanted: serde_json::Map<String, Value> = plugin["capabilities"]
        .as_object()
        .map(|capabilities| {
            capabilities
                .iter()
                .filter(|(_, enabled)| enabled.as_bool() == Some(true))
                .filter_map(|(name, _)| {
                    runtime_config
                        .get(name)
                        .map(|value| (name.clone(), value.clone()))
                })
                .collect()
        })
        .unwrap_or_default();
    if !wanted.is_empty() {
        object.insert(String::from("runtimeConfig"), Value::Object(wanted));
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(internal: bool) -> NetworkRecord {
        NetworkRecord {
            name: String::from("web"),
            id: "ab".repeat(32),
            driver: String::from("bridge"),
            bridge: String::from("hull-ababababab"),
            subnet: "10.89.3.0/24".parse().unwrap(),
            gateway: "10.89.3.1".parse().unwrap(),
            internal,
            ip_masq: false,
            created: String::new(),
        }
    }

    fn plugin_types(list: &Value) -> Vec<&str> {
        list["plugins"]
            .as_array()
            .unwrap()
            .iter()
            .map(|plugin| plugin["type"].as_str().unwrap())
            .collect()
    }

    #[test]
    fn conflist_chains_bridge_and_portmap() {
        let list = conflist(&record(false), Path::new("/run/hull/ctl/cni/ipam"), true);
        assert_eq!(list["cniVersion"], "1.0.0");
        assert_eq!(list["name"], "web");
        assert_eq!(plugin_types(&list), ["bridge", "portmap"]);
        let bridge = &list["plugins"][0];
        assert_eq!(bridge["bridge"], "hull-ababababab");
        assert_eq!(bridge["isGateway"], true);
        assert_eq!(bridge["ipMasq"], false);
        assert_eq!(bridge["ipam"]["dataDir"], "/run/hull/ctl/cni/ipam");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["subnet"], "10.89.3.0/24");
        assert_eq!(bridge["ipam"]["ranges"][0][0]["gateway"], "10.89.3.1");
        assert_eq!(bridge["ipam"]["routes"], json!([{ "dst": "0.0.0.0/0" }]));
        assert_eq!(list["plugins"][1]["capabilities"]["portMappings"], true);
    }

    #[test]
    fn internal_network_has_no_default_route() {
        let list = conflist(&record(true), Path::new("/ipam"), true);
        assert_eq!(list["plugins"][0]["ipam"]["routes"], json!([]));
    }

    #[test]
    fn conflist_without_ports_has_no_portmap() {
        let list = conflist(&record(false), Path::new("/ipam"), false);
        assert_eq!(plugin_types(&list), ["bridge"]);
    }

    #[test]
    fn plugin_config_adds_name_result_and_capabilities() {
        let list = conflist(&record(false), Path::new("/ipam"), true);
        let mut runtime = serde_json::Map::new();
        runtime.insert(
            String::from("portMappings"),
            json!([{ "hostPort": 8080, "containerPort": 80, "protocol": "tcp" }]),
        );
        let previous = json!({ "cniVersion": "1.0.0", "ips": [] });

        let bridge = plugin_config(&list, &list["plugins"][0], None, &runtime);
        assert_eq!(bridge["name"], "web");
        assert_eq!(bridge["cniVersion"], "1.0.0");
        assert!(bridge.get("prevResult").is_none());
        assert!(
            bridge.get("runtimeConfig").is_none(),
            "bridge declares no capability"
        );

        let portmap = plugin_config(&list, &list["plugins"][1], Some(&previous), &runtime);
        assert_eq!(portmap["prevResult"], previous);
        assert_eq!(
            portmap["runtimeConfig"]["portMappings"][0]["hostPort"],
            8080
        );

        let empty = plugin_config(
            &list,
            &list["plugins"][1],
            Some(&previous),
            &serde_json::Map::new(),
        );
        assert!(empty.get("runtimeConfig").is_none());
    }
}
