//! `hull`: parses the command line and dispatches to the library.

use std::process::ExitCode;

use clap::{Parser, Subcommand};
use hull_runtime::commands::{self, Global};
use hull_runtime::logging::{self, ErrorEcho};

#[derive(Debug, Parser)]
#[command(
    name = "hull",
    about = "hull: a runc-compatible OCI runtime",
    disable_version_flag = true,
    arg_required_else_help = true
)]
struct Cli {
    #[command(flatten)]
    global: Global,
    /// Print the version
    #[arg(short = 'v', long = "version")]
    version: bool,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Create a container
    Create(commands::create::Args),
    /// Execute the user-defined process in a created container
    Start(commands::start::Args),
    /// Create and run a container
    Run(commands::run::Args),
    /// Output the state of a container
    State(commands::state::Args),
    /// Execute a new process inside the container
    Exec(commands::exec::Args),
    /// Send a signal to the container's init process (SIGTERM by default)
    Kill(commands::kill::Args),
    /// Delete any resources held by the container
    Delete(commands::delete::Args),
    /// List containers started by hull with the given root
    #[command(alias = "ps-all")]
    List(commands::list::Args),
    /// Suspend all processes of the container
    Pause(commands::pause::Args),
    /// Resume all processes of a paused container
    Resume(commands::resume::Args),
    /// Display the processes running inside a container
    Ps(commands::ps::Args),
    /// Create a new specification file
    Spec(commands::spec::Args),
    /// Show the enabled features
    Features(commands::features::Args),
    /// Display container events such as OOM kills and resource usage statistics
    Events(commands::events::Args),
    /// Update the resource limits of a container
    Update(Box<commands::update::Args>),
    /// Checkpoint a running container with criu
    Checkpoint(commands::checkpoint::Args),
    /// Restore a container from a checkpoint
    Restore(commands::restore::Args),
}

/// Long flags that runc also accepts with a single dash (`-bundle`).
const LONG_FLAGS: &[&str] = &[
    "root",
    "log",
    "log-format",
    "debug",
    "systemd-cgroup",
    "rootless",
    "criu",
    "bundle",
    "console-socket",
    "pid-file",
    "no-pivot",
    "no-new-keyring",
    "preserve-fds",
    "detach",
    "keep",
    "no-subreaper",
    "all",
    "force",
    "format",
    "quiet",
    "image-path",
    "work-path",
    "parent-path",
    "leave-running",
    "tcp-established",
    "ext-unix-sk",
    "shell-job",
    "lazy-pages",
    "status-fd",
    "page-server",
    "file-locks",
    "pre-dump",
    "manage-cgroups-mode",
    "empty-ns",
    "auto-dedup",
    "lsm-profile",
    "help",
    "version",
    "cwd",
    "env",
    "tty",
    "user",
    "additional-gids",
    "process",
    "process-label",
    "apparmor",
    "no-new-privs",
    "cap",
    "ignore-paused",
    "interval",
    "stats",
    "resources",
    "blkio-weight",
    "cpu-period",
    "cpu-quota",
    "cpu-share",
    "cpu-rt-period",
    "cpu-rt-runtime",
    "cpuset-cpus",
    "cpuset-mems",
    "kernel-memory",
    "kernel-memory-tcp",
    "memory",
    "memory-reservation",
    "memory-swap",
    "pids-limit",
    "l3-cache-schema",
    "mem-bw-schema",
];

/// Flags whose value is the next argument when not given with `=`.
const VALUE_FLAGS: &[&str] = &[
    "--interval",
    "--resources",
    "-r",
    "--blkio-weight",
    "--cpu-period",
    "--cpu-quota",
    "--cpu-share",
    "--cpu-rt-period",
    "--cpu-rt-runtime",
    "--cpuset-cpus",
    "--cpuset-mems",
    "--kernel-memory",
    "--kernel-memory-tcp",
    "--memory",
    "--memory-reservation",
    "--memory-swap",
    "--pids-limit",
    "--l3-cache-schema",
    "--mem-bw-schema",
    "--root",
    "--log",
    "--log-format",
    "--criu",
    "--bundle",
    "-b",
    "--console-socket",
    "--pid-file",
    "--preserve-fds",
    "--cwd",
    "--env",
    "-e",
    "--user",
    "-u",
    "--additional-gids",
    "-g",
    "--process",
    "-p",
    "--process-label",
    "--apparmor",
    "--cap",
    "-c",
    "--format",
    "-f",
];

/// Rewrites `-flag` and `-flag=value` into `--flag`, as runc's parser takes
/// both spellings. Arguments after the container id (the command of
/// `exec`, the ps arguments of `ps`) are left as they are.
fn normalise(args: impl Iterator<Item = String>) -> Vec<String> {
    let mut out = vec![];
    let mut positionals = 0;
    let mut takes_value = false;
    for arg in args {
        // The program name, the subcommand and the container id.
        if positionals >= 3 {
            out.push(arg);
            continue;
        }
        if takes_value {
            takes_value = false;
            out.push(arg);
            continue;
        }
        if arg == "--" || !arg.starts_with('-') {
            positionals += 1;
            out.push(arg);
            continue;
        }
        let name = arg
            .strip_prefix('-')
            .filter(|rest| !rest.starts_with('-'))
            .map(|rest| rest.split('=').next().unwrap_or(rest));
        let arg = match name {
            Some(name) if LONG_FLAGS.contains(&name) => format!("-{arg}"),
            _ => arg,
        };
        takes_value = !arg.contains('=') && VALUE_FLAGS.contains(&arg.as_str());
        out.push(arg);
    }
    out
}

/// Returns the exit status of a command line that does not parse, as runc
/// does: 0 for help, 3 for an unknown command, 1 for other usage errors.
fn usage_exit_code(kind: clap::error::ErrorKind) -> u8 {
    use clap::error::ErrorKind;
    match kind {
        ErrorKind::DisplayHelp
        | ErrorKind::DisplayVersion
        | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => 0,
        ErrorKind::InvalidSubcommand => 3,
        _ => 1,
    }
}

fn main() -> ExitCode {
    let cli = match Cli::try_parse_from(normalise(std::env::args())) {
        Ok(cli) => cli,
        Err(error) => {
            let _ = error.print();
            return ExitCode::from(usage_exit_code(error.kind()));
        }
    };
    let Some(command) = &cli.command else {
        if !cli.version {
            // runc prints its help and succeeds without a command.
            let _ = <Cli as clap::CommandFactory>::command().print_help();
            return ExitCode::SUCCESS;
        }
        // The layout of runc's version output, which callers print.
        println!(
            "hull version {}\nspec: {}",
            env!("CARGO_PKG_VERSION"),
            hull_runtime::OCI_VERSION
        );
        return ExitCode::SUCCESS;
    };
    let global = &cli.global;
    let echo = match logging::init(global.log.as_deref(), global.log_format, global.debug) {
        Ok(echo) => echo,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match command {
        Command::Create(args) => commands::create::run(global, args),
        Command::Start(args) => commands::start::run(global, args),
        Command::Run(args) => commands::run::run(global, args),
        Command::State(args) => commands::state::run(global, args),
        Command::Exec(args) => commands::exec::run(global, args),
        Command::Kill(args) => commands::kill::run(global, args),
        Command::Delete(args) => commands::delete::run(global, args),
        Command::List(args) => commands::list::run(global, args),
        Command::Pause(args) => commands::pause::run(global, args),
        Command::Resume(args) => commands::resume::run(global, args),
        Command::Ps(args) => commands::ps::run(global, args),
        Command::Spec(args) => commands::spec::run(global, args),
        Command::Features(args) => commands::features::run(global, args),
        Command::Events(args) => commands::events::run(global, args),
        Command::Update(args) => commands::update::run(global, args),
        Command::Checkpoint(args) => commands::checkpoint::run(global, args),
        Command::Restore(args) => commands::restore::run(global, args),
    };
    match result {
        Ok(code) => ExitCode::from(code.clamp(0, 255) as u8),
        Err(error) => {
            tracing::error!("{error}");
            if echo == ErrorEcho::Stderr {
                eprintln!("{error}");
            }
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::normalise;

    fn split(line: &str) -> Vec<String> {
        line.split(' ').map(str::to_owned).collect()
    }

    #[test]
    fn single_dash_long_flags_become_double() {
        let args = normalise(split("hull -root /r create -bundle /b -pid-file=/p id").into_iter());
        assert_eq!(
            args,
            split("hull --root /r create --bundle /b --pid-file=/p id")
        );
    }

    #[test]
    fn exec_command_is_left_alone() {
        let args = normalise(split("hull exec -e A=1 id find / -user root").into_iter());
        assert_eq!(args, split("hull exec -e A=1 id find / -user root"));
    }
}
