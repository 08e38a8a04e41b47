//! `hullctl network ...`: create, list, inspect and remove networks, and
//! connect running containers to them.

use std::io::Write;
use std::process::ExitCode;

use clap::Subcommand;

use super::{short_id, CreateRequest, Networks};
use crate::paths::Paths;
use crate::OutputFormat;

#[derive(Subcommand, Debug)]
pub enum NetworkCommand {
    /// Create a bridge network.
    Create {
        /// IPv4 subnet in CIDR notation [default: a free /24 of
        /// 10.89.0.0/16].
        #[arg(long)]
        subnet: Option<String>,
        /// Gateway address inside the subnet [default: its first host
        /// address].
        #[arg(long)]
        gateway: Option<String>,
        /// Give containers no route out of the network.
        #[arg(long)]
        internal: bool,
        /// Masquerade traffic that leaves the subnet.
        #[arg(long)]
        ip_masq: bool,
        name: String,
    },
    /// List networks.
    #[command(alias = "list")]
    Ls {
        /// Print only network ids.
        #[arg(short, long)]
        quiet: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Print networks and their containers as JSON.
    Inspect {
        /// Network names, ids or id prefixes.
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Remove networks that no container uses.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        networks: Vec<String>,
    },
    /// Attach a running container to a network.
    Connect { network: String, container: String },
    /// Detach a container from a network.
    Disconnect { network: String, container: String },
}

/// Runs one `network` subcommand.
pub fn run(paths: &Paths, command: NetworkCommand) -> anyhow::Result<ExitCode> {
    let networks = Networks::new(paths);
    match command {
        NetworkCommand::Create {
            subnet,
            gateway,
            internal,
            ip_masq,
            name,
        } => {
            let request = CreateRequest {
                name,
                subnet,
                gateway,
                internal,
                ip_masq,
            };
            let record = networks.create(&request)?;
            println!("{}", record.id);
            Ok(ExitCode::SUCCESS)
        }
        NetworkCommand::Ls { quiet, format } => list(&networks, quiet, format),
        NetworkCommand::Inspect { networks: names } => inspect(&networks, &names),
        NetworkCommand::Rm { networks: names } => {
            let mut code = ExitCode::SUCCESS;
            for name in &names {
                match networks.remove(name) {
                    Ok(()) => println!("{name}"),
                    Err(err) => {
                        eprintln!("hullctl: {err:#}");
                        code = ExitCode::FAILURE;
                    }
                }
            }
            Ok(code)
        }
        NetworkCommand::Connect { network, container } => {
            let attached =
                crate::container::network::connect(paths, &networks, &network, &container)?;
            println!("{} {}", attached.interface, attached.ip);
            Ok(ExitCode::SUCCESS)
        }
        NetworkCommand::Disconnect { network, container } => {
            crate::container::network::disconnect(paths, &networks, &network, &container)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn list(networks: &Networks, quiet: bool, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let records = networks.list()?;
    if quiet {
        for record in &records {
            println!("{}", short_id(&record.id));
        }
    } else if format == OutputFormat::Json {
        println!("{}", serde_json::to_string_pretty(&records)?);
    } else {
        let mut out = std::io::stdout().lock();
        // Columns as wide as their longest value plus three spaces, as
        // docker's tables are. The subnet is formatted first, because its
        // Display ignores the width.
        let name_width = records
            .iter()
            .map(|record| record.name.len())
            .max()
            .unwrap_or(0)
            .max("NAME".len())
            + 3;
        writeln!(
            out,
            "{:<15}{:<name_width$}{:<10}{:<21}BRIDGE",
            "NETWORK ID", "NAME", "DRIVER", "SUBNET"
        )?;
        for record in &records {
            writeln!(
                out,
                "{:<15}{:<name_width$}{:<10}{:<21}{}",
                short_id(&record.id),
                record.name,
                record.driver,
                record.subnet.to_string(),
                record.bridge
            )?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints a JSON array of the networks found, each with its containers,
/// and an error for each one not found.
fn inspect(networks: &Networks, names: &[String]) -> anyhow::Result<ExitCode> {
    let mut found = Vec::new();
    let mut code = ExitCode::SUCCESS;
    for name in names {
        let record = match networks.inspect(name) {
            Ok(record) => record,
            Err(err) => {
                eprintln!("hullctl: {err:#}");
                code = ExitCode::FAILURE;
                continue;
            }
        };
        let mut value = serde_json::to_value(&record)?;
        value["containers"] = serde_json::to_value(networks.members(&record.name)?)?;
        found.push(value);
    }
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(code)
}
