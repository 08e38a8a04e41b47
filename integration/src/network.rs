//! Observations of container networking on the host: bridge ports,
//! iptables rules and host-local address leases.

use std::collections::BTreeSet;
use std::fs;
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Mutex;

/// Returns a /24 in 10.89.64.0/18 that differs between calls of this
/// process and, most likely, between processes. The default networks of
/// the tests' private run roots take the free /24s from 10.89.0.0 up, and
/// hullctl's own unit tests take theirs from 10.89.128.0/17.
pub fn unique_subnet() -> String {
    static COUNTER: AtomicU32 = AtomicU32::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let third = 64 + (std::process::id() * 7 + n * 13) % 64;
    format!("10.89.{third}.0/24")
}

/// Returns a TCP port on 127.0.0.1 that was free a moment ago. No two calls
/// in one process return the same port, because the kernel may give a
/// released port to the next bind and two tests run at once.
pub fn free_port() -> u16 {
    static TAKEN: Mutex<BTreeSet<u16>> = Mutex::new(BTreeSet::new());
    let mut taken = TAKEN.lock().unwrap();
    loop {
        let listener = TcpListener::bind("127.0.0.1:0").expect("failed to bind a loopback port");
        let port = listener.local_addr().unwrap().port();
        if taken.insert(port) {
            return port;
        }
    }
}

/// Returns the names of the interfaces enslaved to `bridge`.
pub fn bridge_ports(bridge: &str) -> Vec<String> {
    let dir = Path::new("/sys/class/net").join(bridge).join("brif");
    match fs::read_dir(dir) {
        Ok(entries) => entries
            .filter_map(Result::ok)
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .collect(),
        Err(_) => Vec::new(),
    }
}

/// Returns whether a network interface of that name exists on the host.
pub fn link_exists(name: &str) -> bool {
    Path::new("/sys/class/net").join(name).exists()
}

/// Returns the output of `iptables-save`: every table's rules.
pub fn iptables_rules() -> String {
    let output = Command::new("iptables-save")
        .output()
        .expect("failed to run iptables-save");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Returns the addresses that host-local has leased for `network` below a
/// hullctl run root: every file of `<run-root>/cni/ipam/<network>` but the
/// lock and the last-reserved marker.
pub fn leases(run_root: &Path, network: &str) -> Vec<String> {
    let dir = run_root.join("cni/ipam").join(network);
    let Ok(entries) = fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .filter_map(Result::ok)
        .map(|entry| entry.file_name().to_string_lossy().into_owned())
        .filter(|name| name != "lock" && !name.starts_with("last_reserved_ip"))
        .collect()
}
