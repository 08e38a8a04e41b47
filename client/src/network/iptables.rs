//! hull's own filter rules. Traffic between two hull networks is dropped,
//! and so is traffic between an internal network and any other interface.
//! The rest of a network's forwarded traffic is accepted, which the CNI
//! firewall plugin would do container by container.
//!
//! The FORWARD chain jumps first to `HULL-ISOLATION`. It contains the
//! isolation rules of every network first (they are inserted at its top)
//! and then their accept rules (appended), each tagged with a comment that
//! names the network. The isolation rule of a non-internal network jumps to
//! `HULL-ISOLATION-2`, which drops packets that leave through another hull
//! bridge (every hull bridge name starts with `hull`). Rules per network,
//! not per container, leave nothing to run at a container's start or stop.
//! The two chains stay when the last network goes, as the CNI plugins'
//! shared chains do.

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

/// The rules of one network, each without its chain.
struct NetworkRules {
    /// Rules that drop traffic between networks; they precede every accept
    /// rule.
    isolation: Vec<Vec<String>>,
    /// Rules that accept the rest of the network's forwarded traffic.
    accept: Vec<Vec<String>>,
}

fn network_rules(record: &NetworkRecord) -> NetworkRules {
    let comment = format!("hull network {}", record.name);
    let rule = |matches: &[&str], target: &str| -> Vec<String> {
        let mut rule: Vec<String> = matches.iter().map(|part| part.to_string()).collect();
        rule.extend(["-m", "comment", "--comment", &comment, "-j", target].map(String::from));
        rule
    };
    let bridge = record.bridge.as_str();
    let isolation = if record.internal {
        vec![
            rule(&["-i", bridge, "!", "-o", bridge], "DROP"),
            rule(&["-o", bridge, "!", "-i", bridge], "DROP"),
        ]
    } else {
        vec![rule(&["-i", bridge, "!", "-o", bridge], CHAIN_2)]
    };
    let accept = vec![
        rule(
            &[
                "-o",
                bridge,
                "-m",
                "conntrack",
                "--ctstate",
                "RELATED,ESTABLISHED",
            ],
            "ACCEPT",
        ),
        rule(&["-i", bridge], "ACCEPT"),
    ];
    NetworkRules { isolation, accept }
}

impl NetworkRules {
    fn all(&self) -> impl Iterator<Item = &Vec<String>> {
        self.isolation.iter().chain(&self.accept)
    }
}

/// Creates the chains when absent and keeps FORWARD's jump to them first,
/// ahead of any other program's ACCEPT rules.
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

/// Returns `rule` of `chain` as `iptables -S` prints it, with the
/// arguments that contain spaces quoted.
fn rule_line(chain: &str, rule: &[String]) -> String {
    let mut line = format!("-A {chain}");
    for part in rule {
        line.push(' ');
        if part.contains(' ') {
            line.push_str(&format!("\"{part}\""));
        } else {
            line.push_str(part);
        }
    }
    line
}

/// Returns true when the listed filter rules contain everything that
/// [`ensure_network`] adds for `record`, with FORWARD's jump first.
fn network_ready(listed: &str, record: &NetworkRecord) -> bool {
    let lines: Vec<&str> = listed.lines().collect();
    let has = |line: &str| lines.contains(&line);
    let any_bridge = format!("{BRIDGE_PREFIX}+");
    let drop_rule = ["-o", any_bridge.as_str(), "-j", "DROP"].map(String::from);
    let jump = format!("-A FORWARD -j {CHAIN}");
    has(&format!("-N {CHAIN}"))
        && has(&format!("-N {CHAIN_2}"))
        && has(&rule_line(CHAIN_2, &drop_rule))
        && lines.iter().find(|line| line.starts_with("-A FORWARD")) == Some(&jump.as_str())
        && network_rules(record)
            .all()
            .all(|rule| has(&rule_line(CHAIN, rule)))
}

/// Adds the network's rules when absent. When all are there, as for every
/// container after a network's first, one `iptables -S` is all it runs.
pub fn ensure_network(record: &NetworkRecord) -> anyhow::Result<()> {
    if iptables(&["-S"]).is_ok_and(|listed| network_ready(&listed, record)) {
        return Ok(());
    }
    ensure_chains()
        .with_context(|| format!("failed to set up iptables rules of network {}", record.name))?;
    let rules = network_rules(record);
    let placed = rules
        .isolation
        .iter()
        .map(|rule| (["-I", CHAIN, "1"].as_slice(), rule))
        .chain(
            rules
                .accept
                .iter()
                .map(|rule| (["-A", CHAIN].as_slice(), rule)),
        );
    for (place, rule) in placed {
        if !rule_exists(CHAIN, rule) {
            let mut args = place.to_vec();
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
    for rule in network_rules(record).all() {
        while rule_exists(CHAIN, rule) {
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
    fn rules_isolate_networks_then_accept() {
        let rules = network_rules(&record(false));
        assert_eq!(rules.isolation.len(), 1);
        assert_eq!(
            rules.isolation[0].join(" "),
            "-i hull-cccccccccc ! -o hull-cccccccccc -m comment --comment hull network db -j HULL-ISOLATION-2"
        );
        let accepted: Vec<String> = rules.accept.iter().map(|rule| rule.join(" ")).collect();
        assert_eq!(
            accepted,
            [
                "-o hull-cccccccccc -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment hull network db -j ACCEPT",
                "-i hull-cccccccccc -m comment --comment hull network db -j ACCEPT",
            ]
        );
        let rules = network_rules(&record(true));
        assert_eq!(rules.isolation.len(), 2);
        assert!(rules
            .isolation
            .iter()
            .all(|rule| rule.contains(&String::from("DROP"))));
        assert_eq!(rules.accept.len(), 2);
    }

    #[test]
    fn network_ready_needs_rules_and_jump() {
        let record = record(false);
        let listed = "-P FORWARD ACCEPT\n\
            -N HULL-ISOLATION\n\
            -N HULL-ISOLATION-2\n\
            -A FORWARD -j HULL-ISOLATION\n\
            -A FORWARD -m comment --comment \"CNI firewall plugin rules\" -j CNI-FORWARD\n\
            -A HULL-ISOLATION -i hull-cccccccccc ! -o hull-cccccccccc -m comment --comment \"hull network db\" -j HULL-ISOLATION-2\n\
            -A HULL-ISOLATION -o hull-cccccccccc -m conntrack --ctstate RELATED,ESTABLISHED -m comment --comment \"hull network db\" -j ACCEPT\n\
            -A HULL-ISOLATION -i hull-cccccccccc -m comment --comment \"hull network db\" -j ACCEPT\n\
            -A HULL-ISOLATION-2 -o hull+ -j DROP\n";
        assert!(network_ready(listed, &record));
        let jump_second = listed.replace(
            "-A FORWARD -j HULL-ISOLATION\n",
            "-A FORWARD -j CNI-FORWARD\n-A FORWARD -j HULL-ISOLATION\n",
        );
        assert!(!network_ready(&jump_second, &record));
        let without_rule = listed.replace(
            "--comment \"hull network db\"",
            "--comment \"hull network other\"",
        );
        assert!(!network_ready(&without_rule, &record));
        assert!(!network_ready(listed, &self::record(true)));
    }
}
