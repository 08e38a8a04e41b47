//! `ps` and `inspect` of containers.

use std::process::ExitCode;

use anyhow::bail;
use chrono::{DateTime, Utc};
use serde_json::{json, Value};

use super::record::{ContainerRecord, RestartPolicy, State};
use super::{lifecycle, output, Context};

/// One row of `ps`, with the live state.
pub struct Row {
    pub record: ContainerRecord,
    pub state: State,
    pub exit_code: Option<i32>,
}

/// Returns the containers with their live state, newest first; only the
/// running ones unless `all`.
pub async fn rows(ctx: &Context, all: bool) -> anyhow::Result<Vec<Row>> {
    let mut rows = Vec::new();
    for record in ctx.store.list()? {
        let (state, exit_code) = lifecycle::live_state(&record).await;
        if !all && !matches!(state, State::Running | State::Paused) {
            continue;
        }
        rows.push(Row {
            record,
            state,
            exit_code,
        });
    }
    Ok(rows)
}

/// `ps`.
pub async fn ps(
    ctx: &Context,
    all: bool,
    quiet: bool,
    format: Option<&str>,
) -> anyhow::Result<ExitCode> {
    let rows = rows(ctx, all).await?;
    if quiet {
        for row in &rows {
            println!("{}", row.record.short_id());
        }
        return Ok(ExitCode::SUCCESS);
    }
    match format {
        Some("json") => {
            for row in &rows {
                println!("{}", serde_json::to_string(&fields(row))?);
            }
        }
        Some(template) if template != "table" => {
            let (header, template) = match template.strip_prefix("table ") {
                Some(rest) => (true, rest),
                None => (false, template),
            };
            if header {
                println!("{}", render(template, &header_fields()));
            }
            for row in &rows {
                println!("{}", render(template, &fields(row)));
            }
        }
        _ => print_table(&rows),
    }
    Ok(ExitCode::SUCCESS)
}

fn header_fields() -> Value {
    json!({
        "ID": "CONTAINER ID", "Image": "IMAGE", "Command": "COMMAND", "CreatedAt": "CREATED AT",
        "RunningFor": "CREATED", "Status": "STATUS", "State": "STATE", "Ports": "PORTS",
        "Names": "NAMES", "Labels": "LABELS",
    })
}

/// The fields of a row under docker's template names.
fn fields(row: &Row) -> Value {
    let record = &row.record;
    json!({
        "ID": record.short_id(),
        "Image": record.image,
        "Command": format!("\"{}\"", truncate(&record.command.join(" "), 20)),
        "CreatedAt": record.created,
        "RunningFor": format!("{} ago", ago(&record.created)),
        "Status": status(row),
        "State": row.state.as_str(),
        "Ports": ports(record),
        "Names": record.name,
        "Labels": record.labels.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(","),
    })
}

/// Replaces each `{{.Field}}` in `template` with the field's value;
/// `\t` becomes a tab.
pub(super) fn render(template: &str, fields: &Value) -> String {
    let mut text = template.replace("\\t", "\t");
    if let Some(map) = fields.as_object() {
        for (key, value) in map {
            let value = value
                .as_str()
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            text = text.replace(&format!("{{{{.{key}}}}}"), &value);
            text = text.replace(&format!("{{{{ .{key} }}}}"), &value);
        }
    }
    text
}

fn print_table(rows: &[Row]) {
    let header = [
        "CONTAINER ID",
        "IMAGE",
        "COMMAND",
        "CREATED",
        "STATUS",
        "PORTS",
        "NAMES",
    ];
    let lines: Vec<[String; 7]> = rows
        .iter()
        .map(|row| {
            let fields = fields(row);
            let get = |key: &str| fields[key].as_str().unwrap_or_default().to_owned();
            [
                get("ID"),
                get("Image"),
                get("Command"),
                get("RunningFor"),
                get("Status"),
                get("Ports"),
                get("Names"),
            ]
        })
        .collect();
    let mut widths = header.map(str::len);
    for line in &lines {
        for (width, cell) in widths.iter_mut().zip(line) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let print = |cells: Vec<&str>| {
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            if index + 1 == cells.len() {
                text.push_str(cell);
            } else {
                text.push_str(&format!("{cell:<width$}   "));
            }
        }
        println!("{}", text.trim_end());
    };
    print(header.to_vec());
    for line in &lines {
        print(line.iter().map(String::as_str).collect());
    }
}

fn truncate(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_owned();
    }
    let mut short: String = text.chars().take(max - 1).collect();
    short.push('…');
    short
}

/// The human form of the time since `time`, as docker's `ps` shows it.
fn ago(time: &str) -> String {
    let Ok(then) = DateTime::parse_from_rfc3339(time) else {
        return String::from("unknown");
    };
    let seconds = (Utc::now() - then.with_timezone(&Utc)).num_seconds().max(0);
    match seconds {
        0 => String::from("Less than a second"),
        1 => String::from("1 second"),
        2..60 => format!("{seconds} seconds"),
        60..120 => String::from("About a minute"),
        120..3600 => format!("{} minutes", seconds / 60),
        3600..7200 => String::from("About an hour"),
        7200..172_800 => format!("{} hours", seconds / 3600),
        _ => format!("{} days", seconds / 86_400),
    }
}

fn status(row: &Row) -> String {
    let record = &row.record;
    match row.state {
        State::Running => format!(
            "Up {}",
            ago(record.started_at.as_deref().unwrap_or(&record.created))
        ),
        State::Paused => format!(
            "Up {} (Paused)",
            ago(record.started_at.as_deref().unwrap_or(&record.created))
        ),
        State::Exited => format!(
            "Exited ({}) {} ago",
            row.exit_code.unwrap_or(255),
            ago(record.finished_at.as_deref().unwrap_or(&record.created))
        ),
        State::Creating | State::Created => String::from("Created"),
        State::Removing => String::from("Removal In Progress"),
    }
}

/// The published ports: those of the running container's network setup,
/// which has the host ports picked for `-p PORT`, else the requested ones.
fn published(record: &ContainerRecord) -> Vec<super::record::PublishedPort> {
    let attached = record
        .network_attachment
        .as_ref()
        .and_then(|attachment| attachment.get("ports"))
        .and_then(|ports| {
            serde_json::from_value::<Vec<crate::network::PortMapping>>(ports.clone()).ok()
        });
    match attached {
        Some(ports) if !ports.is_empty() => {
            ports.iter().map(super::network::published_port).collect()
        }
        _ => record.settings.ports.clone(),
    }
}

fn ports(record: &ContainerRecord) -> String {
    published(record)
        .iter()
        .map(|port| {
            let ip = if port.host_ip.is_empty() {
                "0.0.0.0"
            } else {
                &port.host_ip
            };
            format!(
                "{ip}:{}->{}/{}",
                port.host_port, port.container_port, port.protocol
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The docker-style JSON of a container for `inspect`.
pub async fn container_json(ctx: &Context, record: &ContainerRecord) -> Value {
    let (state, exit_code) = lifecycle::live_state(record).await;
    let spec =
        super::create::read_spec(&ctx.store.container_dir(&record.id)).unwrap_or(Value::Null);
    let process = &spec["process"];
    let args: Vec<String> = record.command.clone();
    let restart = match record.settings.restart {
        RestartPolicy::No => json!({ "Name": "no", "MaximumRetryCount": 0 }),
        RestartPolicy::OnFailure { max_retries } => {
            json!({ "Name": "on-failure", "MaximumRetryCount": max_retries })
        }
    };
    let mut port_bindings = serde_json::Map::new();
    for port in &published(record) {
        let key = format!("{}/{}", port.container_port, port.protocol);
        let binding = json!({ "HostIp": port.host_ip, "HostPort": port.host_port.to_string() });
        if let Some(list) = port_bindings
            .entry(key)
            .or_insert_with(|| json!([]))
            .as_array_mut()
        {
            list.push(binding);
        }
    }
    let mounts: Vec<Value> = record
        .mounts
        .iter()
        .map(|mount| {
            json!({
                "Type": mount.kind,
                "Name": mount.name,
                "Source": mount.source,
                "Destination": mount.destination,
                "RW": !mount.read_only,
            })
        })
        .collect();
    json!({
        "Id": record.id,
        "Created": record.created,
        "Path": args.first(),
        "Args": args.iter().skip(1).collect::<Vec<_>>(),
        "State": {
            "Status": state.as_str(),
            "Running": matches!(state, State::Running | State::Paused),
            "Paused": state == State::Paused,
            "Restarting": false,
            "Pid": if matches!(state, State::Running | State::Paused) { record.pid.unwrap_or(0) } else { 0 },
            "ExitCode": exit_code.unwrap_or(0),
            "StartedAt": record.started_at.clone().unwrap_or_default(),
            "FinishedAt": record.finished_at.clone().unwrap_or_default(),
        },
        "Image": record.image_id,
        "Name": format!("/{}", record.name),
        "RestartCount": record.restart_count,
        "LogPath": output::log_path(ctx, &record.id),
        "HostnamePath": ctx.store.container_dir(&record.id).join("hostname"),
        "HostsPath": ctx.store.container_dir(&record.id).join("hosts"),
        "ResolvConfPath": ctx.store.container_dir(&record.id).join("resolv.conf"),
        "Mounts": mounts,
        "Config": {
            "Hostname": record.settings.hostname,
            "User": process["user"],
            "Tty": record.settings.tty,
            "OpenStdin": record.settings.interactive,
            "Env": process["env"],
            "Cmd": args,
            "WorkingDir": process["cwd"],
            "Image": record.image,
            "Labels": record.labels,
            "StopSignal": record.settings.stop_signal,
            "StopTimeout": record.settings.stop_timeout,
        },
        "HostConfig": {
            "NetworkMode": record.settings.network_mode,
            "PortBindings": port_bindings,
            "RestartPolicy": restart,
            "AutoRemove": record.settings.auto_remove,
            "ReadonlyRootfs": spec["root"]["readonly"].as_bool().unwrap_or(false),
            "Memory": spec["linux"]["resources"]["memory"]["limit"].as_i64().unwrap_or(0),
            "PidsLimit": spec["linux"]["resources"]["pids"]["limit"],
            "CpuQuota": spec["linux"]["resources"]["cpu"]["quota"].as_i64().unwrap_or(0),
            "CpuPeriod": spec["linux"]["resources"]["cpu"]["period"].as_i64().unwrap_or(0),
            "LogConfig": {
                "Type": "json-file",
                "Config": {
                    "max-size": record.settings.log_max_size.map_or_else(|| String::from("-1"), |size| size.to_string()),
                    "max-file": record.settings.log_max_files.to_string(),
                },
            },
        },
        "NetworkSettings": network_settings(record),
    })
}

fn network_settings(record: &ContainerRecord) -> Value {
    let attachment = record.network_attachment.clone().unwrap_or(Value::Null);
    let mut networks = serde_json::Map::new();
    if let Some(list) = attachment["networks"].as_array() {
        for network in list {
            let ip = network["ip"].as_str().unwrap_or_default();
            let (address, prefix) = ip.split_once('/').unwrap_or((ip, ""));
            let name = network["network"].as_str().unwrap_or_default().to_owned();
            networks.insert(
                name,
                json!({
                    "IPAddress": address,
                    "IPPrefixLen": prefix.parse::<u32>().unwrap_or(0),
                    "Gateway": network["gateway"],
                    "MacAddress": network["mac"],
                }),
            );
        }
    }
    let first = networks.values().next().cloned().unwrap_or(Value::Null);
    json!({
        "SandboxKey": attachment["netns"],
        "IPAddress": first["IPAddress"].as_str().unwrap_or_default(),
        "Gateway": first["Gateway"].as_str().unwrap_or_default(),
        "MacAddress": first["MacAddress"].as_str().unwrap_or_default(),
        "Networks": networks,
        "Ports": published(record).iter().map(|port| json!({
            "HostIp": port.host_ip, "HostPort": port.host_port,
            "ContainerPort": port.container_port, "Protocol": port.protocol,
        })).collect::<Vec<_>>(),
    })
}

/// `inspect` of containers only; image names fall through to the caller.
pub async fn inspect_containers(ctx: &Context, names: &[String]) -> anyhow::Result<Vec<Value>> {
    let mut values = Vec::new();
    for name in names {
        let record = ctx.store.find(name)?;
        values.push(container_json(ctx, &record).await);
    }
    if values.is_empty() {
        bail!("inspect needs at least one container");
    }
    Ok(values)
}
