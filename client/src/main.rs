//! hullctl: pulls, pushes, lists and inspects images through hull-imaged,
//! starting the daemon when its socket is absent.

mod commands;
mod daemon;
mod format;
mod progress;
mod registry_auth;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

#[derive(Parser, Debug)]
#[command(
    name = "hullctl",
    version,
    about = "Manage OCI images through hull-imaged"
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
    /// Print a stored image, or with --remote a registry's image, as JSON.
    Inspect {
        image: String,
        /// Resolve the reference on its registry instead of the store.
        #[arg(long)]
        remote: bool,
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
    /// Remove blobs and snapshots that no image uses.
    Gc,
    /// Verify stored blobs and metadata.
    Check,
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
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
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
        command => {
            let channel = daemon::connect_or_start(&global).await?;
            dispatch(channel, command).await
        }
    }
}

async fn dispatch(
    channel: tonic::transport::Channel,
    command: Command,
) -> anyhow::Result<ExitCode> {
    let client = commands::Client::new(channel);
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
        Command::Login { .. } | Command::Logout { .. } => {
            unreachable!("login and logout do not use the daemon")
        }
    }
}
