//! `hullctl network ...`: create, list, inspect and remove networks, and
//! connect running containers to them.

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Subcommand;
use serde_json::Value;

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
            let container = ContainerRecord::find(paths, &container)?;
            let attached = networks.connect(
                &container.id,
                &container.name,
                &container.netns()?,
                &paths.container(&container.id).join("hosts"),
                &network,
            )?;
            container.store_attachment(&networks)?;
            println!("{} {}", attached.interface, attached.ip);
            Ok(ExitCode::SUCCESS)
        }
        NetworkCommand::Disconnect { network, container } => {
            let container = ContainerRecord::find(paths, &container)?;
            networks.disconnect(&container.id, &network)?;
            container.store_attachment(&networks)?;
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
        writeln!(
            out,
            "{:<14}{:<24}{:<10}{:<18}BRIDGE",
            "NETWORK ID", "NAME", "DRIVER", "SUBNET"
        )?;
        for record in &records {
            writeln!(
                out,
                "{:<14}{:<24}{:<10}{:<18}{}",
                short_id(&record.id),
                record.name,
                record.driver,
                record.subnet,
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

/// The fields of `<root>/containers/<id>/container.json` that the network
/// commands read: `name` and `networkAttachment` (an `Attachment`, or null
/// while the container has no network namespace).
struct ContainerRecord {
    id: String,
    name: String,
    path: PathBuf,
    json: Value,
}

impl ContainerRecord {
    /// Finds a container by id, name or unique id prefix.
    fn find(paths: &Paths, reference: &str) -> anyhow::Result<ContainerRecord> {
        let dir = paths.containers();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                bail!("container {reference} not found")
            }
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read {}", dir.display()))
            }
        };
        let mut by_prefix = Vec::new();
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to read {}", dir.display()))?;
            let Ok(id) = entry.file_name().into_string() else {
                continue;
            };
            let path = entry.path().join("container.json");
            let Ok(bytes) = fs::read(&path) else {
                continue;
            };
            let json: Value = serde_json::from_slice(&bytes)
                .with_context(|| format!("invalid container record {}", path.display()))?;
            let name = json["name"].as_str().unwrap_or_default().to_string();
            let record = ContainerRecord {
                id: id.clone(),
                name,
                path,
                json,
            };
            if id == reference || record.name == reference {
                return Ok(record);
            }
            if id.starts_with(reference) {
                by_prefix.push(record);
            }
        }
        match by_prefix.len() {
            1 => Ok(by_prefix.remove(0)),
            0 => bail!("container {reference} not found"),
            _ => {
                bail!("container id prefix {reference} is ambiguous: give more digits or the name")
            }
        }
    }

    fn netns(&self) -> anyhow::Result<PathBuf> {
        match self.json["networkAttachment"]["netns"].as_str() {
            Some(netns) => Ok(PathBuf::from(netns)),
            None => bail!(
                "container {} has no network namespace: start it first",
                self.name
            ),
        }
    }

    /// Writes the container's current attachment into its record, keeping
    /// every other field. A container that hullctl no longer tracks keeps
    /// its namespace with no networks.
    fn store_attachment(&self, networks: &Networks) -> anyhow::Result<()> {
        let mut json = self.json.clone();
        match networks.attachment(&self.id)? {
            Some(attachment) => json["networkAttachment"] = serde_json::to_value(attachment)?,
            None => {
                json["networkAttachment"]["networks"] = Value::Array(Vec::new());
                json["networkAttachment"]["ports"] = Value::Array(Vec::new());
            }
        }
        write_atomically(&self.path, &serde_json::to_vec_pretty(&json)?)
    }
}

fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let temporary = path.with_extension("json.tmp");
    let mut file = fs::File::create(&temporary)
        .with_context(|| format!("failed to create {}", temporary.display()))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("failed to write {}", temporary.display()))?;
    fs::rename(&temporary, path).with_context(|| {
        format!(
            "failed to rename {} to {}",
            temporary.display(),
            path.display()
        )
    })
}
