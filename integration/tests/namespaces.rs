//! Namespaces: new ones, shared ones and joined ones.

use std::os::unix::fs::MetadataExt;

use hull_integration::host::{namespace_inode, NetNs};
use hull_integration::{require_root, run_and_compare, unique_id, Bundle, Runtime};

const KINDS: [&str; 6] = ["pid", "mnt", "uts", "ipc", "net", "cgroup"];

/// Returns a script that prints `KIND same` or `KIND new` for each
/// namespace by comparing its inode with the host's.
fn namespace_report_script() -> String {
    let mut script = String::new();
    for kind in KINDS {
        let host = namespace_inode(kind);
        script.push_str(&format!(
            "if [ $(stat -L -c %i /proc/self/ns/{kind}) = {host} ]; then echo '{kind} same'; else echo '{kind} new'; fi; "
        ));
    }
    script
}

#[test]
fn namespaces_all_new() {
    require_root!();
    let bundle = Bundle::busybox_sh(&namespace_report_script());
    let output = run_and_compare("namespaces", &bundle);
    assert_eq!(
        output.stdout,
        "pid new\nmnt new\nuts new\nipc new\nnet new\ncgroup new\n"
    );
}

#[test]
fn namespaces_shared_with_host() {
    require_root!();
    let mut bundle = Bundle::busybox_sh(&namespace_report_script());
    for kind in ["network", "ipc", "uts", "cgroup", "pid"] {
        bundle.remove_namespace(kind);
    }
    // Setting a hostname needs a private uts namespace.
    bundle.config.as_object_mut().unwrap().remove("hostname");
    let output = run_and_compare("shared namespaces", &bundle);
    assert_eq!(
        output.stdout,
        "pid same\nmnt new\nuts same\nipc same\nnet same\ncgroup same\n"
    );
}

#[test]
fn empty_namespace_path_is_new_namespace() {
    require_root!();
    let mut bundle = Bundle::busybox_sh(&namespace_report_script());
    for namespace in bundle.config["linux"]["namespaces"].as_array_mut().unwrap() {
        namespace["path"] = serde_json::json!("");
    }
    let output = run_and_compare("empty namespace paths", &bundle);
    assert_eq!(
        output.stdout,
        "pid new\nmnt new\nuts new\nipc new\nnet new\ncgroup new\n"
    );
}

#[test]
fn namespace_join_by_path() {
    require_root!();
    let name = unique_id("hull-netns");
    let netns = NetNs::create(&name);
    let inode = netns.inode();
    let mut bundle = Bundle::busybox_sh(
        "stat -L -c %i /proc/self/ns/net; ip link show lo | head -n1 | cut -d' ' -f2",
    );
    bundle.join_namespace("network", &netns.path());
    let output = run_and_compare("join netns", &bundle);
    assert_eq!(output.stdout, format!("{inode}\nlo:\n"), "{output}");
}

#[test]
fn namespace_join_another_container() {
    require_root!();
    let runtime = Runtime::hull();
    let first = unique_id("nsowner");
    let owner = Bundle::busybox(&["sleep", "1000"]);
    runtime.run_detached(&first, &owner).expect_success();
    let pid = runtime.state_json(&first)["pid"].as_i64().unwrap();
    let uts_path = format!("/proc/{pid}/ns/uts");
    let ipc_path = format!("/proc/{pid}/ns/ipc");
    let uts = std::fs::metadata(&uts_path).unwrap().ino();
    let ipc = std::fs::metadata(&ipc_path).unwrap().ino();

    let mut joiner =
        Bundle::busybox_sh("stat -L -c %i /proc/self/ns/uts /proc/self/ns/ipc; hostname");
    joiner.join_namespace("uts", std::path::Path::new(&uts_path));
    joiner.join_namespace("ipc", std::path::Path::new(&ipc_path));
    // A joined uts namespace keeps its hostname: setting one is an error.
    joiner.config.as_object_mut().unwrap().remove("hostname");
    let output = runtime.run(&unique_id("nsjoin"), &joiner);
    output.expect_success();
    assert_eq!(output.stdout, format!("{uts}\n{ipc}\nhull\n"));
}

#[test]
fn net_namespace_has_only_loopback() {
    require_root!();
    let bundle = Bundle::busybox_sh("ls /sys/class/net; ip -o link | cut -d' ' -f2");
    let output = run_and_compare("net links", &bundle);
    assert_eq!(output.stdout, "lo\nlo:\n", "{output}");
}
