//! `create`: a container record, its rootfs and its bundle, without a
//! process. The network and the process come with `start`.

use std::path::Path;

use anyhow::{anyhow, bail, Context as _};
use hull_proto::hull::images::v1 as pb;
use pb::images_client::ImagesClient;
use serde_json::{json, Value};
use tonic::Code;

use super::options::{self, CreateArgs};
use super::record::{ContainerRecord, MountInfo, RootfsMount, Settings, State};
use super::store::{generate_name, validate_name};
use super::Context;
use crate::bundle;

/// Directory of the rootfs mount in the container directory.
pub const ROOTFS_DIR: &str = "rootfs";
/// Runtime spec file in the container directory.
pub const CONFIG_FILE: &str = "config.json";

/// Creates the container that `args` describe and returns its record.
/// Whatever a failure leaves behind is removed before the error returns.
pub async fn create(ctx: &Context, args: &CreateArgs) -> anyhow::Result<ContainerRecord> {
    let checked = check(args)?;
    let image = ensure_image(ctx, &args.image).await?;
    let record = reserve(ctx, args, &image, checked.settings.clone())?;
    match build(ctx, args, &checked, record.clone()).await {
        Ok(record) => Ok(record),
        Err(err) => {
            if let Err(cleanup) = super::remove::remove_resources(ctx, &record, true).await {
                tracing::warn!(container = %record.id, error = %format!("{cleanup:#}"), "failed to clean up after a failed create");
            }
            Err(err)
        }
    }
}

/// Flag values checked before anything is stored.
struct Checked {
    settings: Settings,
    env: Vec<String>,
    memory: Option<u64>,
    cpu: Option<(i64, u64)>,
    pids_limit: Option<i64>,
    security: options::SecurityOptions,
    labels: std::collections::BTreeMap<String, String>,
    mounts: Vec<crate::volume::MountRequest>,
}

fn check(args: &CreateArgs) -> anyhow::Result<Checked> {
    if let Some(name) = &args.name {
        validate_name(name)?;
    }
    if let Some(hostname) = &args.hostname {
        let valid = !hostname.is_empty()
            && hostname.len() <= 64
            && hostname
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.'));
        if !valid {
            bail!("invalid --hostname {hostname:?}: use up to 64 letters, digits, '-' and '.'");
        }
    }
    let memory = args
        .memory
        .as_deref()
        .map(options::parse_memory)
        .transpose()?;
    let cpu = args.cpus.map(options::cpu_quota).transpose()?;
    if let Some(limit) = args.pids_limit {
        if limit == 0 || limit < -1 {
            bail!("invalid --pids-limit {limit}: use a positive number, or -1 for no limit");
        }
    }
    let restart = options::parse_restart(&args.restart)?;
    let log = crate::logs::LogOptions::from_log_opts(&args.log_opt)?;
    let security = options::security_options(&args.security_opt)?;
    let env = options::environment(args)?;
    let labels = options::labels(&args.label)?;
    let (network_mode, networks) = super::network::mode(&args.network)?;
    let ports = super::network::parse_ports(&args.publish)?;
    if !ports.is_empty() && matches!(network_mode.as_str(), "none" | "host") {
        bail!("invalid -p with --network {network_mode}: published ports need a bridge network");
    }
    let mut mounts = Vec::new();
    for value in &args.volume {
        mounts.push(crate::volume::parse_volume_flag(value)?);
    }
    for value in &args.mount {
        mounts.push(crate::volume::parse_mount_flag(value)?);
    }
    for value in &args.tmpfs {
        mounts.push(crate::volume::parse_tmpfs_flag(value)?);
    }
    let settings = Settings {
        tty: args.tty,
        interactive: args.interactive,
        auto_remove: false,
        restart,
        stop_signal: args.stop_signal.clone().unwrap_or_default(),
        stop_timeout: args.stop_timeout,
        network_mode,
        networks,
        ports,
        hostname: args.hostname.clone().unwrap_or_default(),
        log_max_size: log.max_size,
        log_max_files: log.max_file,
    };
    if let Some(signal) = args.stop_signal.as_deref() {
        super::signal::parse(signal)?;
    }
    Ok(Checked {
        settings,
        env,
        memory,
        cpu,
        pids_limit: args.pids_limit,
        security,
        labels,
        mounts,
    })
}

/// Returns the stored image `reference`, pulling it first when the store
/// does not have it, as `docker run` does.
async fn ensure_image(ctx: &Context, reference: &str) -> anyhow::Result<pb::Image> {
    let channel = ctx.images().await?;
    let mut images = ImagesClient::new(channel.clone());
    let request = pb::InspectRequest {
        image: reference.to_owned(),
    };
    match images.inspect(request).await {
        Ok(response) => response
            .into_inner()
            .image
            .ok_or_else(|| anyhow!("hull-imaged returned no image for {reference}")),
        Err(status) if status.code() == Code::NotFound => {
            eprintln!("Unable to find image '{reference}' locally");
            let auth = crate::registry_auth::client(&ctx.global)?;
            let mut client = crate::commands::Client::new(channel, auth);
            client
                .pull_image(reference, false, None)
                .await
                .with_context(|| format!("failed to pull image {reference}"))
        }
        Err(status) => Err(anyhow!(
            "failed to look up image {reference}: {}",
            status.message()
        )),
    }
}

/// Writes the first record of the container under the store lock, after
/// checking that its name is free.
fn reserve(
    ctx: &Context,
    args: &CreateArgs,
    image: &pb::Image,
    settings: Settings,
) -> anyhow::Result<ContainerRecord> {
    let lock = ctx.store.lock()?;
    let existing = ctx.store.list()?;
    let taken = |name: &str| existing.iter().any(|record| record.name == name);
    let id = random_id()?;
    let name = match &args.name {
        Some(name) => {
            if let Some(owner) = existing.iter().find(|record| &record.name == name) {
                bail!(
                    "the container name {name:?} is already in use by container {}: remove that container or choose another name",
                    owner.short_id()
                );
            }
            name.clone()
        }
        None => generate_name(&taken, u64::from_str_radix(&id[..8], 16).unwrap_or(0)),
    };
    let record = ContainerRecord {
        id,
        name,
        image: args.image.clone(),
        image_id: image.id.clone(),
        created: super::now(),
        command: Vec::new(),
        state: State::Creating,
        pid: None,
        exit_code: None,
        started_at: None,
        finished_at: None,
        stopped_by_user: false,
        restart_count: 0,
        attached: None,
        run_token: None,
        settings,
        rootfs: Vec::new(),
        shim: None,
        mounts: Vec::new(),
        volumes: Vec::new(),
        network_attachment: None,
        labels: Default::default(),
    };
    ctx.store.write(&lock, &record)?;
    Ok(record)
}

/// Prepares and mounts the rootfs, resolves the mounts and writes the
/// bundle, recording each step before the next.
async fn build(
    ctx: &Context,
    args: &CreateArgs,
    checked: &Checked,
    record: ContainerRecord,
) -> anyhow::Result<ContainerRecord> {
    let dir = ctx.store.container_dir(&record.id);
    let mut images = ImagesClient::new(ctx.images().await?);
    let entrypoint = args.entrypoint.as_ref().map(|entrypoint| {
        if entrypoint.is_empty() {
            Vec::new()
        } else {
            vec![entrypoint.clone()]
        }
    });
    let hostname = if checked.settings.hostname.is_empty() {
        record.short_id().to_owned()
    } else {
        checked.settings.hostname.clone()
    };
    let spec_options = pb::SpecOptions {
        args: args.command.clone(),
        override_entrypoint: entrypoint.is_some(),
        entrypoint: entrypoint.unwrap_or_default(),
        env: checked.env.clone(),
        user: args.user.clone().unwrap_or_default(),
        workdir: args.workdir.clone().unwrap_or_default(),
        hostname: hostname.clone(),
        terminal: args.tty,
        readonly_rootfs: args.read_only,
        cap_add: args.cap_add.clone(),
        cap_drop: args.cap_drop.clone(),
    };
    let prepared = images
        .prepare_rootfs(pb::PrepareRootfsRequest {
            container_id: record.id.clone(),
            image: record.image_id.clone(),
            generate_spec: true,
            spec_options: Some(spec_options),
            rootfs_path: ROOTFS_DIR.to_owned(),
        })
        .await
        .map_err(|status| {
            anyhow!(
                "failed to prepare the rootfs of image {}: {}",
                args.image,
                status.message()
            )
        })?
        .into_inner();
    let rootfs_mounts: Vec<RootfsMount> = prepared
        .mounts
        .iter()
        .map(|mount| RootfsMount {
            kind: mount.r#type.clone(),
            source: mount.source.clone(),
            options: mount.options.clone(),
        })
        .collect();
    let record = ctx.store.update(&record.id, |record| {
        record.rootfs = rootfs_mounts.clone();
    })?;
    mount_rootfs(&dir, &record.rootfs)?;
    let mut spec: Value = serde_json::from_str(&prepared.spec_json)
        .context("hull-imaged returned an invalid runtime spec")?;
    let image_volumes = image_volumes(&spec);
    let volumes = crate::volume::Volumes::new(&ctx.paths);
    let resolved = volumes.resolve(&checked.mounts, &image_volumes, &dir.join(ROOTFS_DIR))?;
    let mut mount_infos = Vec::new();
    let mut volume_names = Vec::new();
    for mount in &resolved {
        let value = serde_json::to_value(&mount.mount)?;
        mount_infos.push(mount_info(&value, mount));
        if let Some(name) = &mount.volume {
            volume_names.push(name.clone());
        }
        push_mount(&mut spec, value);
    }
    let record = ctx.store.update(&record.id, |record| {
        record.mounts = mount_infos.clone();
        record.volumes = volume_names.clone();
    })?;

    apply_settings(&mut spec, &record, checked, &hostname)?;
    super::network::write_files(&dir, &hostname)?;
    add_network_files(&mut spec, &dir);
    let command = spec["process"]["args"]
        .as_array()
        .map(|args| {
            args.iter()
                .filter_map(|arg| arg.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    write_spec(&dir, &spec)?;
    let stop_signal = if record.settings.stop_signal.is_empty() {
        spec["annotations"][hull_images::bundle::STOP_SIGNAL_ANNOTATION]
            .as_str()
            .unwrap_or("SIGTERM")
            .to_owned()
    } else {
        record.settings.stop_signal.clone()
    };
    let labels = checked.labels.clone();
    ctx.store.update(&record.id, |record| {
        record.command = command;
        record.settings.stop_signal = stop_signal;
        record.settings.hostname = hostname.clone();
        record.labels = labels;
        record.state = State::Created;
    })
}

/// Mounts the rootfs at `<dir>/rootfs` unless it is mounted already.
pub fn mount_rootfs(dir: &Path, mounts: &[RootfsMount]) -> anyhow::Result<()> {
    let rootfs = dir.join(ROOTFS_DIR);
    std::fs::create_dir_all(&rootfs)
        .with_context(|| format!("failed to create {}", rootfs.display()))?;
    if bundle::is_mount_point(&rootfs)? {
        return Ok(());
    }
    for mount in mounts {
        let mount = pb::Mount {
            r#type: mount.kind.clone(),
            source: mount.source.clone(),
            target: String::new(),
            options: mount.options.clone(),
        };
        bundle::mount_one(&mount, &rootfs)?;
    }
    Ok(())
}

/// The image's declared volumes, from the annotation hull-imaged writes.
fn image_volumes(spec: &Value) -> Vec<String> {
    spec["annotations"][hull_images::bundle::VOLUMES_ANNOTATION]
        .as_str()
        .map(|text| {
            text.split(',')
                .filter(|path| !path.is_empty())
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
}

fn mount_info(value: &Value, resolved: &crate::volume::ResolvedMount) -> MountInfo {
    let options: Vec<&str> = value["options"]
        .as_array()
        .map(|options| options.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    let kind = match resolved.kind {
        crate::volume::MountKind::Volume => "volume",
        crate::volume::MountKind::Tmpfs => "tmpfs",
        crate::volume::MountKind::Bind => "bind",
    };
    MountInfo {
        kind: kind.to_owned(),
        name: resolved.volume.clone(),
        source: value["source"].as_str().unwrap_or_default().to_owned(),
        destination: value["destination"].as_str().unwrap_or_default().to_owned(),
        read_only: options.contains(&"ro"),
        anonymous: resolved.anonymous,
    }
}

/// Adds `mount` to the spec, replacing a default mount at the same
/// destination.
fn push_mount(spec: &mut Value, mount: Value) {
    let mounts = spec["mounts"].as_array_mut();
    let Some(mounts) = mounts else {
        spec["mounts"] = json!([mount]);
        return;
    };
    mounts.retain(|existing| existing["destination"] != mount["destination"]);
    mounts.push(mount);
}

/// Binds the container's hosts, hostname and resolv.conf files, unless
/// the user mounted something at those paths.
fn add_network_files(spec: &mut Value, dir: &Path) {
    for (file, destination) in [
        ("hosts", "/etc/hosts"),
        ("hostname", "/etc/hostname"),
        ("resolv.conf", "/etc/resolv.conf"),
    ] {
        let taken = spec["mounts"].as_array().is_some_and(|mounts| {
            mounts
                .iter()
                .any(|mount| mount["destination"] == destination)
        });
        if taken {
            continue;
        }
        push_mount(
            spec,
            json!({
                "destination": destination,
                "type": "bind",
                "source": dir.join(file),
                "options": ["rbind", "rprivate"],
            }),
        );
    }
}

/// Applies resources, the cgroup path and security options to the spec.
fn apply_settings(
    spec: &mut Value,
    record: &ContainerRecord,
    checked: &Checked,
    hostname: &str,
) -> anyhow::Result<()> {
    spec["hostname"] = json!(hostname);
    spec["linux"]["cgroupsPath"] = json!(format!("/hullctl/{}", record.id));
    let resources = &mut spec["linux"]["resources"];
    if let Some(memory) = checked.memory {
        resources["memory"]["limit"] = json!(memory);
        // Without swap accounting the limit would not hold: the same value
        // keeps the container off swap, as docker does when --memory-swap
        // is not given twice the limit.
        resources["memory"]["swap"] = json!(memory);
    }
    if let Some((quota, period)) = checked.cpu {
        resources["cpu"]["quota"] = json!(quota);
        resources["cpu"]["period"] = json!(period);
    }
    if let Some(limit) = checked.pids_limit.filter(|limit| *limit > 0) {
        resources["pids"]["limit"] = json!(limit);
    }
    if checked.security.seccomp_unconfined {
        if let Some(linux) = spec["linux"].as_object_mut() {
            linux.remove("seccomp");
        }
    } else if let Some(path) = &checked.security.seccomp_profile {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("failed to read seccomp profile {}", path.display()))?;
        let profile: Value = serde_json::from_str(&text).with_context(|| {
            format!(
                "invalid seccomp profile {}: expected the runtime spec's linux.seccomp JSON",
                path.display()
            )
        })?;
        spec["linux"]["seccomp"] = profile;
    }
    if let Some(no_new_privileges) = checked.security.no_new_privileges {
        spec["process"]["noNewPrivileges"] = json!(no_new_privileges);
    }
    spec["annotations"]["io.hull.container.name"] = json!(record.name);
    Ok(())
}

/// Writes the spec to `<dir>/config.json` through a temporary file.
pub fn write_spec(dir: &Path, spec: &Value) -> anyhow::Result<()> {
    let path = dir.join(CONFIG_FILE);
    let temporary = dir.join(format!(".{CONFIG_FILE}.tmp"));
    std::fs::write(&temporary, serde_json::to_vec_pretty(spec)?)
        .and_then(|()| std::fs::rename(&temporary, &path))
        .with_context(|| format!("failed to write {}", path.display()))
}

/// Reads `<dir>/config.json`.
pub fn read_spec(dir: &Path) -> anyhow::Result<Value> {
    let path = dir.join(CONFIG_FILE);
    let text =
        std::fs::read(&path).with_context(|| format!("failed to read {}", path.display()))?;
    serde_json::from_slice(&text).with_context(|| format!("invalid {}", path.display()))
}

/// Returns 64 random hex digits, the form of docker's container ids.
fn random_id() -> anyhow::Result<String> {
    let mut bytes = [0u8; 32];
    use std::io::Read;
    std::fs::File::open("/dev/urandom")
        .and_then(|mut random| random.read_exact(&mut bytes))
        .context("failed to read random bytes for the container id from /dev/urandom")?;
    Ok(hex::encode(bytes))
}
