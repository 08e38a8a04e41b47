//! `run`, `create`, `start` and `exec` as commands: the foreground relay of
//! a container's stdio and the exit code that hullctl returns.

use std::process::ExitCode;

use anyhow::{anyhow, bail};
use hull_proto::containerd::task::v3::ExecProcessRequest;
use serde_json::json;

use super::attach::{self, OutputCopy};
use super::options::CreateArgs;
use super::record::State;
use super::shim::{self, Shim};
use super::{create, lifecycle, output, tty, Context};

/// Options of `run` beyond those of `create`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    pub detach: bool,
    pub auto_remove: bool,
}

/// `run`: create and start a container; in the foreground, relay its
/// output and return its exit code.
pub async fn run(
    ctx: &Context,
    args: &CreateArgs,
    options: &RunOptions,
) -> anyhow::Result<ExitCode> {
    let record = create::create(ctx, args).await?;
    let id = record.id.clone();
    let attached = (!options.detach).then(std::process::id);
    ctx.store.update(&id, |record| {
        record.settings.auto_remove = options.auto_remove;
        record.attached = attached;
    })?;
    let started = match lifecycle::start(ctx, &id).await {
        Ok(started) => started,
        Err(err) => {
            if options.auto_remove {
                let _ = super::remove::remove(ctx, &id, true, true).await;
            }
            return Err(err);
        }
    };
    if options.detach {
        println!("{id}");
        return Ok(ExitCode::SUCCESS);
    }
    let code = attach_main(ctx, &id, started.shim, args.tty, args.interactive).await?;
    if options.auto_remove {
        super::remove::remove(ctx, &id, true, true).await?;
    }
    Ok(exit_code(code))
}

/// Relays the main process's stdio until it exits, finishes the container
/// and returns the exit code. `shim` is the connection that started it, if
/// this hullctl did.
async fn attach_main(
    ctx: &Context,
    id: &str,
    shim: Option<Shim>,
    terminal: bool,
    interactive: bool,
) -> anyhow::Result<i32> {
    let record = ctx
        .store
        .read(id)?
        .ok_or_else(|| anyhow!("no such container: {id}"))?;
    let shim_record = record
        .shim
        .clone()
        .ok_or_else(|| anyhow!("container {} has no shim", record.name))?;
    let shim = match shim {
        Some(shim) => shim,
        None => Shim::connect(id, &shim_record).await?,
    };
    let _raw = (terminal && interactive).then(tty::RawMode::enable);
    if interactive {
        attach::open_stdin(&output::stdin_path(ctx, id))?.forward(
            shim.clone(),
            id.to_owned(),
            String::new(),
        );
    }
    if terminal {
        attach::forward_resize(shim.clone(), id.to_owned(), String::new());
    } else {
        attach::forward_signals(shim.clone(), id.to_owned());
    }
    let follow = output::follow(ctx, id);
    let status = lifecycle::wait_exit(&shim, shim_record.pid, "").await;
    // The logging program may still write the last output when the exit
    // arrives. finish deletes the task, and the shim's Delete waits for
    // the logging program to exit, so the follower reads to the end after.
    let finished = lifecycle::finish(ctx, id, false).await;
    follow.finish().await;
    let finished = finished?;
    let code = match (status, finished) {
        (Some(status), _) => status as i32,
        (None, Some(finished)) => finished.record.exit_code.unwrap_or(255),
        (None, None) => bail!("failed to wait for container {id}: its shim is gone"),
    };
    Ok(code)
}

/// `start`: start containers; with `attach`, relay the one container's
/// output and return its exit code.
pub async fn start(
    ctx: &Context,
    names: &[String],
    attach: bool,
    interactive: bool,
) -> anyhow::Result<ExitCode> {
    if attach && names.len() != 1 {
        bail!("start -a takes one container, {} given", names.len());
    }
    let mut failed = false;
    for name in names {
        let record = match ctx.store.find(name) {
            Ok(record) => record,
            Err(err) => {
                eprintln!("hullctl: {err:#}");
                failed = true;
                continue;
            }
        };
        if attach {
            ctx.store.update(&record.id, |record| {
                record.attached = Some(std::process::id())
            })?;
        }
        match lifecycle::start(ctx, &record.id).await {
            Ok(started) if attach => {
                let record = started.record;
                let code = attach_main(
                    ctx,
                    &record.id,
                    started.shim,
                    record.settings.tty,
                    interactive && record.settings.interactive,
                )
                .await?;
                return Ok(exit_code(code));
            }
            Ok(_) => println!("{name}"),
            Err(err) => {
                eprintln!("hullctl: {err:#}");
                failed = true;
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

/// Options of `exec`.
#[derive(Debug, Clone, Default)]
pub struct ExecOptions {
    pub interactive: bool,
    pub tty: bool,
    pub detach: bool,
    pub env: Vec<String>,
    pub user: Option<String>,
    pub workdir: Option<String>,
}

/// `exec`: runs `command` in the running container `name` and returns its
/// exit code.
pub async fn exec(
    ctx: &Context,
    name: &str,
    command: &[String],
    options: &ExecOptions,
) -> anyhow::Result<ExitCode> {
    if command.is_empty() {
        bail!("exec needs a command to run");
    }
    let record = ctx.store.find(name)?;
    let (state, _) = lifecycle::live_state(&record).await;
    let not_running = || {
        anyhow!(
            "container {} is not running: start it before exec",
            record.name
        )
    };
    if state != State::Running {
        if state == State::Paused {
            bail!(
                "container {} is paused: unpause it before exec",
                record.name
            );
        }
        return Err(not_running());
    }
    let shim_record = record.shim.clone().ok_or_else(not_running)?;
    let shim = Shim::connect(&record.id, &shim_record).await?;
    let dir = ctx.store.container_dir(&record.id);
    let spec = create::read_spec(&dir)?;
    let process = exec_process(
        &dir.join(create::ROOTFS_DIR),
        &spec["process"],
        command,
        options,
    )?;

    let exec_id = format!("exec-{}", std::process::id());
    let run_dir = ctx.paths.container_run(&record.id);
    std::fs::create_dir_all(&run_dir)?;
    let fifo = |stream: &str| run_dir.join(format!("{exec_id}.{stream}"));
    let (stdin, stdout, stderr) = (fifo("stdin"), fifo("stdout"), fifo("stderr"));
    let cleanup = || {
        for path in [&stdin, &stdout, &stderr] {
            let _ = std::fs::remove_file(path);
        }
    };
    let result = async {
        let mut request = ExecProcessRequest {
            id: record.id.clone(),
            exec_id: exec_id.clone(),
            terminal: options.tty,
            spec: Some(prost_types::Any {
                type_url: "types.containerd.io/opencontainers/runtime-spec/1/Process".into(),
                value: serde_json::to_vec(&process)?,
            }),
            ..Default::default()
        };
        let mut copies = Vec::new();
        if !options.detach {
            attach::make_fifo(&stdout)?;
            copies.push(OutputCopy::start(&stdout, false)?);
            request.stdout = stdout.display().to_string();
            if !options.tty {
                attach::make_fifo(&stderr)?;
                copies.push(OutputCopy::start(&stderr, true)?);
                request.stderr = stderr.display().to_string();
            }
        }
        if options.interactive && !options.detach {
            attach::make_fifo(&stdin)?;
            request.stdin = stdin.display().to_string();
        }
        shim.client()
            .exec(request)
            .await
            .map_err(|status| shim::task_error("exec in", &record.name, status))?;
        let _raw = (options.tty && options.interactive).then(tty::RawMode::enable);
        let stdin_fifo = if options.interactive && !options.detach {
            Some(attach::open_stdin(&stdin)?)
        } else {
            None
        };
        if let Err(status) = shim.start(&exec_id).await {
            let _ = shim.delete(&exec_id).await;
            return Err(shim::task_error("start exec in", &record.name, status));
        }
        if let Some(fifo) = stdin_fifo {
            fifo.forward(shim.clone(), record.id.clone(), exec_id.clone());
        }
        if options.tty {
            attach::forward_resize(shim.clone(), record.id.clone(), exec_id.clone());
        }
        if options.detach {
            return Ok(0);
        }
        let status = shim.wait(&exec_id).await;
        for copy in copies {
            copy.finish().await;
        }
        let _ = shim.delete(&exec_id).await;
        let status =
            status.map_err(|status| shim::task_error("wait for exec in", &record.name, status))?;
        Ok(status as i32)
    }
    .await;
    if !options.detach {
        cleanup();
    }
    result.map(exit_code)
}

/// The process of an exec: the container's process with the command and
/// the overrides of `options`.
fn exec_process(
    rootfs: &std::path::Path,
    base: &serde_json::Value,
    command: &[String],
    options: &ExecOptions,
) -> anyhow::Result<serde_json::Value> {
    let mut process = base.clone();
    process["args"] = json!(command);
    process["terminal"] = json!(options.tty);
    if options.tty {
        process["consoleSize"] = match tty::stdout_size() {
            Some((width, height)) => json!({ "width": width, "height": height }),
            None => serde_json::Value::Null,
        };
    } else if let Some(object) = process.as_object_mut() {
        object.remove("consoleSize");
    }
    let mut env: Vec<String> = process["env"]
        .as_array()
        .map(|env| {
            env.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    for value in super::options::expand_env(options.env.clone())? {
        let key = value.split_once('=').map_or(value.as_str(), |(key, _)| key);
        env.retain(|existing| existing.split_once('=').map(|(k, _)| k) != Some(key));
        env.push(value);
    }
    process["env"] = json!(env);
    if let Some(workdir) = &options.workdir {
        if !workdir.starts_with('/') {
            bail!("invalid --workdir {workdir:?}: use an absolute path");
        }
        process["cwd"] = json!(workdir);
    }
    if let Some(user) = &options.user {
        process["user"] = exec_user(rootfs, user)?;
    }
    Ok(process)
}

/// Resolves an exec's `--user` through the container's own passwd and
/// group files.
fn exec_user(rootfs: &std::path::Path, user: &str) -> anyhow::Result<serde_json::Value> {
    let resolved = hull_images::bundle::user::resolve(rootfs, user)
        .map_err(|err| anyhow!("invalid --user {user:?}: {err}"))?;
    Ok(json!({
        "uid": resolved.uid,
        "gid": resolved.gid,
        "additionalGids": resolved.additional_gids,
    }))
}

/// Converts a container exit status to hullctl's exit code.
pub fn exit_code(code: i32) -> ExitCode {
    ExitCode::from(code.clamp(0, 255) as u8)
}
