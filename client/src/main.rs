//! hullctl: pulls, pushes, lists and inspects images through hull-imaged,
//! starting the daemon when its socket is absent.

mod bundle;
mod commands;
mod container;
mod daemon;
mod format;
mod logs;
mod network;
mod paths;
mod progress;
mod registry_auth;
mod volume;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "hullctl",
    version,
    about = "Run containers from OCI images, and manage the images, networks and volumes"
)]
struct Cli {
    #[command(flatten)]
    global: GlobalArgs,
    #[command(subcommand)]
    command: Command,
}

#[derive(Args, Debug, Clone)]
pub struct GlobalArgs {
    /// Unix socket of hull-imaged.
    #[arg(
        long,
        global = true,
        env = "HULL_ADDRESS",
        default_value = "/run/hull/imaged.sock"
    )]
    pub address: PathBuf,
    /// Root directory of the image store, passed to the daemon that hullctl
    /// starts.
    #[arg(
        long,
        global = true,
        env = "HULL_ROOT",
        default_value = "/var/lib/hull"
    )]
    pub root: PathBuf,
    /// Registry host[:port] to reach over plain HTTP (repeatable), passed to
    /// the daemon that hullctl starts.
    #[arg(long = "insecure-registry", global = true, value_name = "HOST")]
    pub insecure_registries: Vec<String>,
    /// Docker config.json that contains registry credentials [default:
    /// $DOCKER_CONFIG/config.json or ~/.docker/config.json].
    #[arg(long, global = true, env = "HULL_AUTH_FILE")]
    pub auth_file: Option<PathBuf>,
    /// Directory of hullctl's runtime state: network namespaces, CNI
    /// address leases, stdio FIFOs and the runtime's container state.
    #[arg(
        long,
        global = true,
        env = "HULL_RUN_ROOT",
        default_value = paths::DEFAULT_RUN_ROOT
    )]
    pub run_root: PathBuf,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Pull an image from a registry.
    Pull {
        reference: String,
        /// Print only the image id.
        #[arg(short, long)]
        quiet: bool,
        /// Platform to pull from a multi-platform image, as os/arch[/variant].
        #[arg(long)]
        platform: Option<String>,
    },
    /// Push a stored image to a registry.
    Push {
        image: String,
        /// Destination reference; the image's own name by default.
        destination: Option<String>,
        /// Print only the pushed digest.
        #[arg(short, long)]
        quiet: bool,
    },
    /// List stored images.
    #[command(alias = "ls")]
    Images {
        /// Reference, name or id prefix to filter on.
        filter: Option<String>,
        /// Print only image ids.
        #[arg(short, long)]
        quiet: bool,
        /// Show manifest digests.
        #[arg(long)]
        digests: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Remove images by name or id.
    Rmi {
        #[arg(required = true)]
        images: Vec<String>,
        /// Remove every name of an image given by id, and ignore absent
        /// images.
        #[arg(short, long)]
        force: bool,
    },
    /// Give a stored image another name.
    Tag { source: String, target: String },
    /// Print a container, a stored image, or with --remote a registry's
    /// image, as JSON.
    Inspect {
        image: String,
        /// Resolve the reference on its registry instead of the store.
        #[arg(long)]
        remote: bool,
    },
    /// Create, list, inspect and remove container networks.
    Network {
        #[command(subcommand)]
        command: network::command::NetworkCommand,
    },
    /// Check and store registry credentials.
    Login {
        /// Registry host[:port].
        registry: String,
        #[arg(short, long)]
        username: Option<String>,
        #[arg(short, long, conflicts_with = "password_stdin")]
        password: Option<String>,
        /// Read the password from standard input.
        #[arg(long)]
        password_stdin: bool,
    },
    /// Remove stored registry credentials.
    Logout {
        /// Registry host[:port].
        registry: String,
    },
    /// Write images to an archive or OCI layout.
    Save {
        #[arg(required = true)]
        images: Vec<String>,
        /// Output file, or directory for oci-dir.
        #[arg(short, long)]
        output: PathBuf,
        #[arg(long, value_enum, default_value_t = SaveFormat::OciArchive)]
        format: SaveFormat,
    },
    /// Read images from an archive or OCI layout.
    Load {
        /// Input file or OCI layout directory.
        #[arg(short, long)]
        input: PathBuf,
        /// Name for images the archive does not name.
        #[arg(long)]
        name: Option<String>,
    },
    /// Copy an image between registries without storing it.
    Copy {
        source: String,
        destination: String,
        #[arg(short, long)]
        quiet: bool,
    },
    /// Make and remove runtime bundles whose rootfs is a stored image.
    Bundle {
        #[command(subcommand)]
        command: BundleCommand,
    },
    /// Manage volumes: directories below the store root that containers
    /// mount.
    Volume {
        #[command(subcommand)]
        command: VolumeCommand,
    },
    /// Remove blobs and snapshots that no image uses.
    Gc,
    /// Verify stored blobs and metadata.
    Check,
    #[command(flatten)]
    Container(Box<container::cli::ContainerCommand>),
    /// Print a container's output.
    Logs(logs::LogsArgs),
    /// Write a container's output to its log (run by the shim).
    #[command(hide = true)]
    Logger(logs::LoggerArgs),
}

#[derive(Subcommand, Debug)]
enum BundleCommand {
    /// Mount IMAGE's layers at DIR/rootfs with a new writable layer and
    /// write DIR/config.json from the image config, for `hull run`.
    Create {
        /// Container id that the rootfs is prepared for [default: the base
        /// name of DIR].
        #[arg(long)]
        id: Option<String>,
        /// Entrypoint element (repeatable) that replaces the image's
        /// entrypoint; a single empty value clears it.
        #[arg(long, value_name = "ARG", allow_hyphen_values = true)]
        entrypoint: Vec<String>,
        /// Environment variable KEY=VALUE added to the image's (repeatable).
        #[arg(short, long = "env", value_name = "KEY=VALUE")]
        env: Vec<String>,
        /// User as uid, uid:gid, name or name:group; replaces the image's.
        #[arg(short, long)]
        user: Option<String>,
        /// Absolute working directory; replaces the image's.
        #[arg(short, long)]
        workdir: Option<String>,
        /// Give the process a terminal.
        #[arg(short = 't', long = "tty")]
        terminal: bool,
        /// Name or id of a stored image.
        image: String,
        /// Bundle directory to create; it must be absent or empty.
        dir: PathBuf,
        /// Command and arguments that replace the image's Cmd.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        command: Vec<String>,
    },
    /// Unmount DIR/rootfs, release its writable layer and remove DIR.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        dirs: Vec<PathBuf>,
    },
}

#[derive(Subcommand, Debug)]
enum VolumeCommand {
    /// Create a volume and print its name, which is random when NAME is not
    /// given. A volume that exists already is left as it is.
    Create {
        /// Label KEY=VALUE of the volume (repeatable).
        #[arg(long = "label", value_name = "KEY=VALUE")]
        labels: Vec<String>,
        /// Volume name: two or more of [a-zA-Z0-9_.-], starting with a
        /// letter or digit.
        name: Option<String>,
    },
    /// List volumes.
    #[command(alias = "list")]
    Ls {
        /// Print only volume names.
        #[arg(short, long)]
        quiet: bool,
        /// Output format.
        #[arg(long, value_enum, default_value_t = OutputFormat::Table)]
        format: OutputFormat,
    },
    /// Print volumes as JSON.
    Inspect {
        #[arg(required = true)]
        names: Vec<String>,
    },
    /// Remove volumes that no container uses.
    #[command(alias = "remove")]
    Rm {
        #[arg(required = true)]
        names: Vec<String>,
        /// Ignore volumes that do not exist.
        #[arg(short, long)]
        force: bool,
    },
    /// Remove the anonymous volumes that no container uses.
    Prune {
        /// Remove named volumes too.
        #[arg(short, long)]
        all: bool,
        /// Do not ask for confirmation.
        #[arg(short, long)]
        force: bool,
    },
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutputFormat {
    Table,
    Json,
}

#[derive(ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
pub enum SaveFormat {
    OciArchive,
    DockerArchive,
    OciDir,
}

fn main() -> ExitCode {
    // Output piped into `head` ends with EPIPE: like other command-line
    // tools, hullctl then ends quietly instead of panicking in println!.
    // SAFETY: setting a signal's disposition to SIG_DFL has no memory
    // effects, and no other thread runs yet.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
    let cli = Cli::parse();
    if std::env::var_os("PATH").is_none() {
        // The logging program starts `container-exited` with an empty
        // environment, and the CNI plugins it runs need iptables and ip.
        // SAFETY: no other thread runs yet.
        unsafe {
            std::env::set_var(
                "PATH",
                "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            );
        }
    }
    // Warnings of steps that hullctl carries on after, such as a cleanup
    // that failed, go to stderr.
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(tracing::Level::WARN)
        .without_time()
        .with_target(false)
        .init();
    if let Command::Logger(args) = &cli.command {
        // The logger starts with every container: it needs no async runtime.
        return logs::logger::main(&args.log_path, &args.options);
    }
    // The runtime's threads write to gRPC sockets, which a shim closes when
    // it exits: there the write must fail with EPIPE instead of ending
    // hullctl, so those threads block SIGPIPE.
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .on_thread_start(block_sigpipe)
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hullctl: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("hullctl: {err:#}");
            ExitCode::FAILURE
        }
    }
}

/// Blocks SIGPIPE in the calling thread, so that its writes to a closed
/// pipe or socket fail with EPIPE.
fn block_sigpipe() {
    let mut set = nix::sys::signal::SigSet::empty();
    set.add(nix::sys::signal::Signal::SIGPIPE);
    let _ = set.thread_block();
}

async fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let global = cli.global;
    match cli.command {
        Command::Login {
            registry,
            username,
            password,
            password_stdin,
        } => commands::login(&global, &registry, username, password, password_stdin).await,
        Command::Logout { registry } => commands::logout(&global, &registry).await,
        Command::Container(command) => {
            let ctx = container::Context::new(&global);
            container::cli::dispatch(&ctx, *command).await
        }
        Command::Inspect {
            image,
            remote: false,
        } if is_container(&global, &image) => {
            let ctx = container::Context::new(&global);
            let values = container::inspect::inspect_containers(&ctx, &[image]).await?;
            println!("{}", serde_json::to_string_pretty(&values)?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Volume { command } => dispatch_volume(&paths::Paths::new(&global), command),
        Command::Network { command } => network::command::run(&paths::Paths::new(&global), command),
        Command::Logs(args) => logs::run(&global, args).await,
        command => {
            let channel = daemon::connect_or_start(&global).await?;
            dispatch(channel, command, &global).await
        }
    }
}

/// Returns true when `name` names a container rather than an image, for
/// `inspect`, which takes both as docker's does.
fn is_container(global: &GlobalArgs, name: &str) -> bool {
    let ctx = container::Context::new(global);
    ctx.store.find(name).is_ok()
}

async fn dispatch(
    channel: tonic::transport::Channel,
    command: Command,
    global: &GlobalArgs,
) -> anyhow::Result<ExitCode> {
    if let Command::Bundle { command } = command {
        return dispatch_bundle(channel, command).await;
    }
    let client = commands::Client::new(channel, registry_auth::client(global)?);
    match command {
        Command::Pull {
            reference,
            quiet,
            platform,
        } => client.pull(&reference, quiet, platform.as_deref()).await,
        Command::Push {
            image,
            destination,
            quiet,
        } => client.push(&image, destination.as_deref(), quiet).await,
        Command::Images {
            filter,
            quiet,
            digests,
            format,
        } => {
            client
                .images(filter.as_deref(), quiet, digests, format)
                .await
        }
        Command::Rmi { images, force } => client.rmi(&images, force).await,
        Command::Tag { source, target } => client.tag(&source, &target).await,
        Command::Inspect { image, remote } => client.inspect(&image, remote).await,
        Command::Save {
            images,
            output,
            format,
        } => client.save(&images, &output, format).await,
        Command::Load { input, name } => client.load(&input, name.as_deref()).await,
        Command::Copy {
            source,
            destination,
            quiet,
        } => client.copy(&source, &destination, quiet).await,
        Command::Gc => client.gc().await,
        Command::Check => client.check().await,
        Command::Login { .. }
        | Command::Logout { .. }
        | Command::Volume { .. }
        | Command::Network { .. }
        | Command::Logs(_)
        | Command::Logger(_) => {
            unreachable!("login, logout, volume, network, logs and logger do not use the daemon")
        }
        Command::Bundle { .. } => unreachable!("bundle commands are dispatched above"),
        Command::Container(_) => unreachable!("container commands are dispatched above"),
    }
}

fn dispatch_volume(paths: &paths::Paths, command: VolumeCommand) -> anyhow::Result<ExitCode> {
    match command {
        VolumeCommand::Create { labels, name } => {
            volume::command::create(paths, name.as_deref(), &labels)
        }
        VolumeCommand::Ls { quiet, format } => volume::command::list(paths, quiet, format),
        VolumeCommand::Inspect { names } => volume::command::inspect(paths, &names),
        VolumeCommand::Rm { names, force } => volume::command::remove(paths, &names, force),
        VolumeCommand::Prune { all, force } => volume::command::prune(paths, all, force),
    }
}

async fn dispatch_bundle(
    channel: tonic::transport::Channel,
    command: BundleCommand,
) -> anyhow::Result<ExitCode> {
    match command {
        BundleCommand::Create {
            id,
            entrypoint,
            env,
            user,
            workdir,
            terminal,
            image,
            dir,
            command,
        } => {
            let options = bundle::CreateOptions {
                id,
                entrypoint: (!entrypoint.is_empty()).then_some(entrypoint),
                env,
                user,
                workdir,
                terminal,
                args: command,
            };
            bundle::create(channel, &image, &dir, options).await
        }
        BundleCommand::Rm { dirs } => {
            let mut code = ExitCode::SUCCESS;
            for dir in &dirs {
                if let Err(err) = bundle::remove(channel.clone(), dir).await {
                    eprintln!("hullctl: {err:#}");
                    code = ExitCode::FAILURE;
                }
            }
            Ok(code)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
