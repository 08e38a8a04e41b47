//! `hullctl volume create|ls|inspect|rm|prune`.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, BufRead, Write};
use std::process::ExitCode;

use anyhow::{bail, Context};
use serde_json::{json, Value};

use super::{is_not_found, VolumeRecord, Volumes};
use crate::format::human_size;
use crate::paths::Paths;
use crate::OutputFormat;

/// `volume create`: creates the volume (a random anonymous name when
/// `name` is unset) and prints its name.
pub fn create(paths: &Paths, name: Option<&str>, labels: &[String]) -> anyhow::Result<ExitCode> {
    let labels = parse_labels(labels)?;
    let record = Volumes::new(paths).create(name, labels)?;
    println!("{}", record.name);
    Ok(ExitCode::SUCCESS)
}

/// `volume ls`: a DRIVER / VOLUME NAME table, names only with `quiet`, or
/// a JSON array of the records in `volume inspect`'s form.
pub fn list(paths: &Paths, quiet: bool, format: OutputFormat) -> anyhow::Result<ExitCode> {
    let records = Volumes::new(paths).list()?;
    if quiet {
        for record in &records {
            println!("{}", record.name);
        }
    } else if format == OutputFormat::Json {
        let list: Vec<Value> = records.iter().map(inspect_json).collect();
        println!("{}", serde_json::to_string_pretty(&list)?);
    } else {
        // Padding as in docker's table: at least 10 columns, 3 spaces
        // after the longest driver name.
        let width = records
            .iter()
            .map(|record| record.driver.len() + 3)
            .chain([10])
            .max()
            .unwrap_or(10);
        println!("{:<width$}VOLUME NAME", "DRIVER");
        for record in &records {
            println!("{:<width$}{}", record.driver, record.name);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `volume inspect`: prints a JSON array of the volumes found, and an
/// error for each name that is not a volume.
pub fn inspect(paths: &Paths, names: &[String]) -> anyhow::Result<ExitCode> {
    let volumes = Volumes::new(paths);
    let mut found = Vec::new();
    let mut code = ExitCode::SUCCESS;
    for name in names {
        match volumes.inspect(name) {
            Ok(record) => found.push(inspect_json(&record)),
            Err(err) => {
                eprintln!("hullctl: {err:#}");
                code = ExitCode::FAILURE;
            }
        }
    }
    println!("{}", serde_json::to_string_pretty(&found)?);
    Ok(code)
}

/// `volume rm`: removes each volume that no container uses and prints its
/// name. `force` makes absent volumes no error.
pub fn remove(paths: &Paths, names: &[String], force: bool) -> anyhow::Result<ExitCode> {
    let volumes = Volumes::new(paths);
    let users = ContainerVolumes::load(paths)?;
    let in_use = |name: &str| users.users(name);
    let mut code = ExitCode::SUCCESS;
    for name in names {
        match volumes.remove(name, &in_use, force) {
            Ok(()) => println!("{name}"),
            Err(err) if force && is_not_found(&err) => println!("{name}"),
            Err(err) => {
                eprintln!("hullctl: {err:#}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}

/// `volume prune`: after a confirmation that `force` skips, removes the
/// anonymous volumes (all volumes with `all`) that no container uses, and
/// prints their names and the space reclaimed.
pub fn prune(paths: &Paths, all: bool, force: bool) -> anyhow::Result<ExitCode> {
    if !force {
        let scope = if all {
            "every volume"
        } else {
            "every anonymous volume"
        };
        print!("This removes {scope} that no container uses. Continue? [y/N] ");
        io::stdout().flush()?;
        let mut answer = String::new();
        io::stdin()
            .lock()
            .read_line(&mut answer)
            .context("failed to read the confirmation from stdin")?;
        if answer.is_empty() {
            // End of input: end the prompt's line before the error.
            println!();
        }
        if !matches!(answer.trim(), "y" | "Y" | "yes" | "Yes") {
            bail!("volume prune cancelled: type y at the prompt, or pass --force to skip it");
        }
    }
    let users = ContainerVolumes::load(paths)?;
    let report = Volumes::new(paths).prune(&|name: &str| users.users(name), all)?;
    if !report.removed.is_empty() {
        println!("Deleted Volumes:");
        for name in &report.removed {
            println!("{name}");
        }
        println!();
    }
    println!(
        "Total reclaimed space: {}",
        human_size(report.reclaimed_bytes)
    );
    Ok(ExitCode::SUCCESS)
}

/// Returns the docker-style JSON of `volume inspect`.
pub fn inspect_json(record: &VolumeRecord) -> Value {
    json!({
        "Name": record.name,
        "Driver": record.driver,
        "Mountpoint": record.mountpoint,
        "CreatedAt": record.created_at,
        "Labels": record.labels,
        "Scope": "local",
        "Options": {},
        "Anonymous": record.anonymous,
    })
}

fn parse_labels(labels: &[String]) -> anyhow::Result<BTreeMap<String, String>> {
    let mut parsed = BTreeMap::new();
    for label in labels {
        let (key, value) = label.split_once('=').unwrap_or((label, ""));
        if key.is_empty() {
            bail!("invalid label {label:?}: expected KEY=VALUE with a non-empty KEY");
        }
        parsed.insert(key.to_string(), value.to_string());
    }
    Ok(parsed)
}

/// The containers that use each volume, read from the containers' records.
///
/// Contract: each `<root>/containers/<id>/container.json` is a JSON object
/// with `"id"`, an optional `"name"`, and `"volumes"`, an array of the
/// names of the volumes that the container mounts. A container directory
/// whose `container.json` is missing or unreadable counts as using every
/// volume, because it may be a container being created whose volumes are
/// not recorded yet.
// TODO: replace with the container store's own lookup once it exists.
pub struct ContainerVolumes {
    by_volume: BTreeMap<String, Vec<String>>,
    /// Container directories without a readable record.
    unknown: Vec<String>,
}

impl ContainerVolumes {
    pub fn load(paths: &Paths) -> anyhow::Result<ContainerVolumes> {
        let mut uses = ContainerVolumes {
            by_volume: BTreeMap::new(),
            unknown: Vec::new(),
        };
        let dir = paths.containers();
        let entries = match fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(err) if err.kind() == io::ErrorKind::NotFound => return Ok(uses),
            Err(err) => {
                return Err(err).with_context(|| format!("failed to read {}", dir.display()))
            }
        };
        for entry in entries {
            let entry = entry.with_context(|| format!("failed to read {}", dir.display()))?;
            if !entry.file_type().is_ok_and(|kind| kind.is_dir()) {
                continue;
            }
            let id = entry.file_name().to_string_lossy().into_owned();
            let path = entry.path().join("container.json");
            let record: Option<Value> = fs::read(&path)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok());
            let Some(record) = record.filter(Value::is_object) else {
                uses.unknown.push(id);
                continue;
            };
            let container = record["name"]
                .as_str()
                .filter(|name| !name.is_empty())
                .or(record["id"].as_str())
                .unwrap_or(&id)
                .to_string();
            let volumes = record["volumes"].as_array().into_iter().flatten();
            for volume in volumes.filter_map(Value::as_str) {
                uses.by_volume
                    .entry(volume.to_string())
                    .or_default()
                    .push(container.clone());
            }
        }
        Ok(uses)
    }

    /// Returns the containers that use `volume`.
    pub fn users(&self, volume: &str) -> Vec<String> {
        let mut users = self.by_volume.get(volume).cloned().unwrap_or_default();
        users.extend(
            self.unknown
                .iter()
                .map(|id| format!("{id} (its container.json is missing or unreadable)")),
        );
        users
    }
}
