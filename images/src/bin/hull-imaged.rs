//! hull-imaged: serves hull's image API and the CRI image service on a
//! unix socket.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use hull_images::api::{self, socket, Daemon, Registries};
use hull_images::registry::RegistryConfig;
use hull_images::store::Store;
use tokio::signal::unix::{signal, SignalKind};

#[derive(Parser, Debug)]
#[command(
    name = "hull-imaged",
    version,
    about = "Serve hull's image API on a unix socket"
)]
struct Args {
    /// Root directory of the image store.
    #[arg(long, env = "HULL_ROOT", default_value = "/var/lib/hull")]
    root: PathBuf,
    /// Unix socket to listen on; its directory is created with mode 0700.
    #[arg(long, env = "HULL_ADDRESS", default_value = "/run/hull/imaged.sock")]
    address: PathBuf,
    /// Registry host[:port] to reach over plain HTTP (repeatable).
    /// Loopback registries always are.
    #[arg(long = "insecure-registry", value_name = "HOST")]
    insecure_registries: Vec<String>,
    /// Docker config.json with registry credentials [default:
    /// $DOCKER_CONFIG/config.json or ~/.docker/config.json].
    #[arg(long)]
    auth_file: Option<PathBuf>,
    /// Log level: error, warn, info, debug or trace.
    #[arg(long, default_value = "info")]
    log_level: tracing::Level,
}

fn main() -> ExitCode {
    let args = Args::parse();
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(args.log_level)
        .with_ansi(false)
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("hull-imaged: failed to start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            tracing::error!("{message}");
            eprintln!("hull-imaged: {message}");
            ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> Result<(), String> {
    let mut sigterm = signal(SignalKind::terminate())
        .map_err(|err| format!("failed to handle SIGTERM: {err}"))?;
    let mut sigint =
        signal(SignalKind::interrupt()).map_err(|err| format!("failed to handle SIGINT: {err}"))?;

    let root = args.root.clone();
    let store = tokio::task::spawn_blocking(move || Store::open(&root))
        .await
        .map_err(|err| format!("failed to open the store: {err}"))?
        .map_err(|err| err.to_string())?;
    let config = RegistryConfig {
        insecure: args.insecure_registries.clone(),
        auth_file: args.auth_file.clone(),
        ..RegistryConfig::default()
    };
    let registries = Registries::new(config).map_err(|err| err.to_string())?;
    let socket = socket::bind(&args.address).map_err(|err| err.to_string())?;

    let (shutdown_tx, shutdown_rx) = tokio::sync::watch::channel(false);
    let daemon = Daemon::new(store, registries, shutdown_rx);
    tracing::info!(
        root = %args.root.display(),
        address = %args.address.display(),
        pid = std::process::id(),
        "hull-imaged started"
    );
    let stop = async move {
        tokio::select! {
            _ = sigterm.recv() => tracing::info!("received SIGTERM"),
            _ = sigint.recv() => tracing::info!("received SIGINT"),
        }
    };
    api::serve(daemon, socket, shutdown_tx, stop)
        .await
        .map_err(|err| err.to_string())
}
