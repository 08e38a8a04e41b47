//! The container commands of hullctl's command line.

use std::process::ExitCode;

use clap::Subcommand;

use super::cp::CpOptions;
use super::options::CreateArgs;
use super::run::{self, ExecOptions, RunOptions};
use super::stats::StatsOptions;
use super::{inspect, lifecycle, remove, signal, Context};

#[derive(Subcommand, Debug)]
pub enum ContainerCommand {
    /// Create and start a container from an image.
    Run {
        /// Run in the background and print the container id.
        #[arg(short, long)]
        detach: bool,
        /// Remove the container when it exits.
        #[arg(long = "rm")]
        auto_remove: bool,
        #[command(flatten)]
        args: CreateArgs,
    },
    /// Create a container without starting it and print its id.
    Create {
        #[command(flatten)]
        args: CreateArgs,
    },
    /// Start created or stopped containers.
    Start {
        #[arg(required = true)]
        containers: Vec<String>,
        /// Relay the container's output and return its exit code.
        #[arg(short, long)]
        attach: bool,
        /// Relay standard input too.
        #[arg(short, long)]
        interactive: bool,
    },
    /// Stop containers: the stop signal, then SIGKILL after the timeout.
    Stop {
        #[arg(required = true)]
        containers: Vec<String>,
        /// Seconds to wait before killing [default: the container's
        /// --stop-timeout, 10].
        #[arg(short = 't', long = "time")]
        time: Option<u32>,
    },
    /// Send a signal to containers.
    Kill {
        #[arg(required = true)]
        containers: Vec<String>,
        /// Signal name or number.
        #[arg(short, long, default_value = "KILL")]
        signal: String,
    },
    /// Stop and start containers.
    Restart {
        #[arg(required = true)]
        containers: Vec<String>,
        /// Seconds to wait before killing.
        #[arg(short = 't', long = "time")]
        time: Option<u32>,
    },
    /// Remove containers.
    Rm {
        #[arg(required = true)]
        containers: Vec<String>,
        /// Kill running containers first.
        #[arg(short, long)]
        force: bool,
        /// Remove the containers' anonymous volumes too.
        #[arg(short, long)]
        volumes: bool,
    },
    /// List containers.
    Ps {
        /// Show stopped containers too.
        #[arg(short, long)]
        all: bool,
        /// Print only container ids.
        #[arg(short, long)]
        quiet: bool,
        /// json, table, or a template such as "{{.ID}}\t{{.Names}}".
        #[arg(long)]
        format: Option<String>,
    },
    /// Run a command in a running container.
    Exec {
        /// Keep standard input open.
        #[arg(short, long)]
        interactive: bool,
        /// Give the command a terminal.
        #[arg(short = 't', long = "tty")]
        tty: bool,
        /// Run the command in the background.
        #[arg(short, long)]
        detach: bool,
        /// Environment variable KEY=VALUE (repeatable).
        #[arg(short, long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// User as uid, uid:gid, name or name:group.
        #[arg(short, long)]
        user: Option<String>,
        /// Working directory inside the container.
        #[arg(short, long)]
        workdir: Option<String>,
        container: String,
        #[arg(trailing_var_arg = true, allow_hyphen_values = true, required = true)]
        command: Vec<String>,
    },
    /// Wait for containers to stop and print their exit codes.
    Wait {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Pause all processes of containers.
    Pause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Resume paused containers.
    Unpause {
        #[arg(required = true)]
        containers: Vec<String>,
    },
    /// Show the processes of a running container.
    Top {
        container: String,
        /// ps options, accepted for docker's syntax; the default columns
        /// are printed whatever they are.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        ps_options: Vec<String>,
    },
    /// Show the CPU, memory, network and block I/O use of containers
    /// [default: the running ones], redrawn every second.
    Stats {
        containers: Vec<String>,
        /// Print one sample and exit.
        #[arg(long)]
        no_stream: bool,
        /// Show stopped containers too.
        #[arg(short, long)]
        all: bool,
        /// json, table, or a template such as "{{.Name}}\t{{.CPUPerc}}".
        #[arg(long)]
        format: Option<String>,
        /// Print full container ids.
        #[arg(long)]
        no_trunc: bool,
    },
    /// Copy files between a container and the host. SOURCE and
    /// DESTINATION are CONTAINER:PATH, a host path, or - for a tar stream
    /// on stdin or stdout.
    Cp {
        /// Keep the source's uid and gid instead of giving copies to root
        /// (in the container) or to the calling user (on the host).
        #[arg(short, long)]
        archive: bool,
        /// Follow a symlink named as SOURCE instead of copying the link.
        #[arg(short = 'L', long)]
        follow_link: bool,
        /// Print no summary on stderr.
        #[arg(short, long)]
        quiet: bool,
        source: String,
        destination: String,
    },
    /// Finish a container whose process has exited; run by the logging
    /// program, not by people.
    #[command(hide = true)]
    ContainerExited {
        id: String,
        /// The start's token; without it, any start is finished.
        token: Option<String>,
    },
}

/// Runs `command` and returns hullctl's exit code.
pub async fn dispatch(ctx: &Context, command: ContainerCommand) -> anyhow::Result<ExitCode> {
    match command {
        ContainerCommand::Run {
            detach,
            auto_remove,
            args,
        } => {
            run::run(
                ctx,
                &args,
                &RunOptions {
                    detach,
                    auto_remove,
                },
            )
            .await
        }
        ContainerCommand::Create { args } => {
            let record = super::create::create(ctx, &args).await?;
            println!("{}", record.id);
            Ok(ExitCode::SUCCESS)
        }
        ContainerCommand::Start {
            containers,
            attach,
            interactive,
        } => run::start(ctx, &containers, attach, interactive).await,
        ContainerCommand::Stop { containers, time } => {
            for_each(ctx, &containers, async |ctx, id| {
                lifecycle::stop(ctx, id, time).await
            })
            .await
        }
        ContainerCommand::Kill { containers, signal } => {
            let number = signal::parse(&signal)?;
            for_each(ctx, &containers, async |ctx, id| {
                let record = ctx.store.find(id)?;
                lifecycle::kill(ctx, &record, number).await
            })
            .await
        }
        ContainerCommand::Restart { containers, time } => {
            for_each(ctx, &containers, async |ctx, id| {
                lifecycle::stop(ctx, id, time).await?;
                lifecycle::start(ctx, id).await.map(|_| ())
            })
            .await
        }
        ContainerCommand::Rm {
            containers,
            force,
            volumes,
        } => {
            for_each(ctx, &containers, async |ctx, id| {
                remove::remove(ctx, id, force, volumes).await
            })
            .await
        }
        ContainerCommand::Ps { all, quiet, format } => {
            inspect::ps(ctx, all, quiet, format.as_deref()).await
        }
        ContainerCommand::Exec {
            interactive,
            tty,
            detach,
            env,
            user,
            workdir,
            container,
            command,
        } => {
            let options = ExecOptions {
                interactive,
                tty,
                detach,
                env,
                user,
                workdir,
            };
            run::exec(ctx, &container, &command, &options).await
        }
        ContainerCommand::Wait { containers } => {
            let mut code = ExitCode::SUCCESS;
            for name in &containers {
                match ctx.store.find(name) {
                    Ok(record) => println!("{}", lifecycle::wait(ctx, &record.id).await?),
                    Err(err) => {
                        eprintln!("hullctl: {err:#}");
                        code = ExitCode::FAILURE;
                    }
                }
            }
            Ok(code)
        }
        ContainerCommand::Pause { containers } => {
            for_each(ctx, &containers, async |ctx, id| {
                lifecycle::pause(ctx, id, true).await
            })
            .await
        }
        ContainerCommand::Unpause { containers } => {
            for_each(ctx, &containers, async |ctx, id| {
                lifecycle::pause(ctx, id, false).await
            })
            .await
        }
        ContainerCommand::Top {
            container,
            ps_options,
        } => super::top::top(ctx, &container, &ps_options).await,
        ContainerCommand::Stats {
            containers,
            no_stream,
            all,
            format,
            no_trunc,
        } => {
            let options = StatsOptions {
                no_stream,
                all,
                format,
                no_trunc,
            };
            super::stats::stats(ctx, &containers, &options).await
        }
        ContainerCommand::Cp {
            archive,
            follow_link,
            quiet,
            source,
            destination,
        } => {
            let options = CpOptions {
                archive,
                follow_link,
                quiet,
            };
            super::cp::cp(ctx, &source, &destination, options).await
        }
        ContainerCommand::ContainerExited { id, token } => {
            lifecycle::exited(ctx, &id, token.as_deref()).await?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Applies `action` to each named container by id, printing the name on
/// success and the error otherwise, as docker does. Fails when any failed.
async fn for_each(
    ctx: &Context,
    names: &[String],
    action: impl AsyncFn(&Context, &str) -> anyhow::Result<()>,
) -> anyhow::Result<ExitCode> {
    let mut code = ExitCode::SUCCESS;
    for name in names {
        let result = match ctx.store.find(name) {
            Ok(record) => action(ctx, &record.id).await,
            Err(err) => Err(err),
        };
        match result {
            Ok(()) => println!("{name}"),
            Err(err) => {
                eprintln!("hullctl: {err:#}");
                code = ExitCode::FAILURE;
            }
        }
    }
    Ok(code)
}
