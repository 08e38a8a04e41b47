//! hull's own filter rules: traffic between two hull networks is dropped,
//! and so is traffic between an internal network and any other interface.
//!
//! The FORWARD chain jumps first to `HULL-ISOLATION`, which contains the rules
//! of each network, tagged with a comment that names it. Non-internal
//! networks jump on to `HULL-ISOLATION-2`, which drops packets that leave
//! through another hull bridge (every hull bridge name starts with
//! `hull`). The two chains stay when the last network goes, as the CNI
//! plugins' shared chains do.

use std::process::Command;

use anyhow::{bail, Context};

use super::record::{NetworkRecord, BRIDGE_PREFIX};

const CHAIN: &str = "HULL-ISOLATION";
const CHAIN_2: &str = "HULL-ISOLATION-2";

/// Runs `iptables -w -t filter ARGS` and returns its stdout.
fn iptables(args: &[&str]) -> anyhow::Result<String> {
    let output = Command::new("iptables")
        .args(["-w", "-t", "filter"])
        .args(args)
        .output()
        .context("failed to run iptables: install the iptables package")?;
    if !output.status.success() {
        bail!(
            "iptables {} failed: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

fn rule_exists(chain: &str, rule: &[String]) -> bool {
    let mut args = vec!["-C", chain];
    args.extend(rule.iter().map(String::as_str));
    iptables(&args).is_ok()
}

/// Returns the rules of one network, each without its chain.
fn network_rules(record: &NetworkRecord) -> Vec<Vec<String>> {
    let comment = format!("hull network {}", record.name);
    let rule = |matches: &[&str], target: &str| -> Vec<String> {
        let mut rule: Vec<String> = matches.iter().map(|part| part.to_string()).collect();
        rule.extend(["-m", "comment", "--comment", &comment, "-j", target].map(String::from));
        rule
    };
    let bridge = record.bridge.as_str();
    if record.internal {
        vec![
            rule(&["-i", bridge, "!", "-o", bridge], "DROP"),
            rule(&["-o", bridge, "!", "-i", bridge], "DROP"),
        ]
    } else {
        vec![rule(&["-i", bridge, "!", "-o", bridge], CHAIN_2)]
    }
}

/// Creates the chains when absent and keeps FORWARD's jump to them first,
/// ahead of the firewall plugin's ACCEPT rules.
fn ensure_chains() -> anyhow::Result<()> {
    let chains = iptables(&["-S"])?;
    for chain in [CHAIN, CHAIN_2] {
        if !chains.lines().any(|line| line == format!("-N {chain}")) {
            // Another hullctl may create the chain at the same moment.
            if let Err(err) = iptables(&["-N", chain]) {
                if !iptables(&["-S"])?
                    .lines()
                    .any(|line| line == format!("-N {chain}"))
                {
                    return Err(err);
                }
            }
        }
    }
    let any_bridge = format!("{BRIDGE_PREFIX}+");
    let drop_rule = ["-o", any_bridge.as_str(), "-j", "DROP"].map(String::from);
    if !rule_exists(CHAIN_2, &drop_rule) {
        iptables(&["-A", CHAIN_2, "-o", &any_bridge, "-j", "DROP"])?;
    }
    let forward = iptables(&["-S", "FORWARD"])?;
    let jump = format!("-A FORWARD -j {CHAIN}");
    let first_rule = forward.lines().find(|line| line.starts_with("-A FORWARD"));
    if first_rule != Some(jump.as_str()) {
        while rule_exists("FORWARD", &["-j".to_string(), CHAIN.to_string()]) {
            iptables(&["-D", "FORWARD", "-j", CHAIN])?;
        }
        iptables(&["-I", "FORWARD", "1", "-j", CHAIN])?;
    }
    Ok(())
}

/// Adds the network's rules when absent.
pub fn ensure_network(record: &NetworkRecord) -> anyhow::Result<()> {
    ensure_chains()
        .with_context(|| format!("failed to set up iptables rules of network {}", record.name))?;
    for rule in network_rules(record) {
        if !rule_exists(CHAIN, &rule) {
            let mut args = vec!["-A", CHAIN];
            args.extend(rule.iter().map(String::as_str));
            iptables(&args).with_context(|| {
                format!("failed to add iptables rules of network {}", record.name)
            })?;
        }
    }
    Ok(())
}

/// Deletes the network's rules. Absent rules are no error.
pub fn remove_network(record: &NetworkRecord) -> anyhow::Result<()> {
    for rule in network_rules(record) {
        while rule_exists(CHAIN, &rule) {
            let mut args = vec!["-D", CHAIN];
            args.extend(rule.iter().map(String::as_str));
            iptables(&args).with_context(|| {
                format!("failed to delete iptables rules of network {}", record.name)
            })?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(internal: bool) -> NetworkRecord {
        NetworkRecord {
            name: String::from("db"),
            id: "c".repeat(64),
            driver: String::from("bridge"),
            bridge: String::from("hull-cccccccccc"),
            subnet: "10.89.4.0/24".parse().unwrap(),
            gateway: "10.89.4.1".parse().unwrap(),
            internal,
            ip_masq: false,
            created: String::new(),
        }
    }

    #[test]
    fn rules_isolate_networks() {
        let rules = network_rules(&record(false));
        assert_eq!(rules.len(), 1);
        assert_eq!(
            rules[0].join(" "),
            "-i hull-cccccccccc ! -o hull-cccccccccc -m comment --comment hull network db -j HULL-ISOLATION-2"
        );
        let rules = network_rules(&record(true));
        assert_eq!(rules.len(), 2);
        assert!(rules
            .iter()
            .all(|rule| rule.contains(&String::from("DROP"))));
    }
}
