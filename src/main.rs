use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use ferry::cli;
use ferry::config::{self, Config};
use ferry::control::{self, EnvName};

/// Turns GitHub Deployments into SSH deploys.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(clap::Args)]
struct ConfigArg {
    /// Config file [default: $FERRY_CONFIG, else /etc/ferry/ferry.toml]
    #[arg(long, value_name = "PATH")]
    config: Option<PathBuf>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the daemon.
    Serve(ConfigArg),
    /// Validate the config and print a summary.
    CheckConfig(ConfigArg),
    /// Connect to every configured host and run `true`.
    CheckHosts {
        #[command(flatten)]
        config: ConfigArg,
        /// Only this target's hosts.
        #[arg(long, value_name = "REPO:ENV")]
        target: Option<String>,
    },
    /// List recent deployments.
    Deployments {
        #[command(flatten)]
        config: ConfigArg,
        /// At most this many, newest first.
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
        /// Only this environment's.
        #[arg(long, value_name = "REPO:ENV")]
        environment: Option<EnvName>,
        /// Only those in this state: queued, running, success, failure,
        /// error, cancelled or inactive.
        #[arg(long, value_name = "STATE", value_parser = parse_state)]
        state: Option<String>,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// One deployment: its fields, log link, statuses (and whether GitHub
    /// has each yet) and who acted on it.
    Show {
        /// Deployment id (a teardown's is negative).
        #[arg(allow_negative_numbers = true)]
        id: i64,
        #[command(flatten)]
        config: ConfigArg,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Print a deployment's log; with --follow, exit 0 only for a success.
    Logs {
        /// Deployment id (a teardown's is negative).
        #[arg(allow_negative_numbers = true)]
        id: i64,
        #[command(flatten)]
        config: ConfigArg,
        /// Keep printing until the deployment ends.
        #[arg(long)]
        follow: bool,
    },
    /// Hold an environment: its deployments wait until it is unlocked.
    Lock {
        /// The environment, as owner/repo:environment.
        #[arg(value_name = "REPO:ENV")]
        env: EnvName,
        /// Why; shown on GitHub and in `ferry locks`.
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Lift an environment's lock; its waiting deployment starts.
    Unlock {
        /// The environment, as owner/repo:environment.
        #[arg(value_name = "REPO:ENV")]
        env: EnvName,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// List locked environments: who, since when, why.
    Locks {
        #[command(flatten)]
        config: ConfigArg,
        /// One JSON object per line.
        #[arg(long)]
        json: bool,
    },
    /// Tear an environment down now, in its turn: its teardown steps, then
    /// `inactive` on GitHub for its deployments.
    Teardown {
        /// The environment, as owner/repo:environment.
        #[arg(value_name = "REPO:ENV")]
        env: EnvName,
        /// Also when its latest deployment is not transient (production):
        /// GitHub then shows the environment as destroyed.
        #[arg(long)]
        yes: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// End a queued or running deployment (its final status is `error`).
    Cancel {
        /// Deployment id (a teardown's is negative).
        #[arg(allow_negative_numbers = true)]
        id: i64,
        /// Why; shown on GitHub and in the log.
        #[arg(long, value_name = "TEXT", default_value = "")]
        reason: String,
        /// Then put back the hosts it changed, with the environment's last
        /// good version (as `rollback = true` does for a failed one).
        #[arg(long)]
        rollback: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Ask GitHub (through the running ferry) for a deployment of REF.
    Deploy {
        /// The environment, as owner/repo:environment.
        #[arg(value_name = "REPO:ENV")]
        env: EnvName,
        /// A branch, tag or sha.
        #[arg(value_name = "REF")]
        git_ref: String,
        /// The deployment's task.
        #[arg(long, value_name = "TASK", default_value = "deploy")]
        task: String,
        /// The deployment's payload, a JSON object [default: {}].
        #[arg(long, value_name = "JSON")]
        payload: Option<String>,
        /// Skip GitHub's required status contexts (required_contexts: []).
        #[arg(long)]
        force: bool,
        /// Then print its log until it ends; exit 0 only for a success.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
    /// Ask GitHub (through the running ferry) for a new deployment of the
    /// environment's last good version.
    Rollback {
        /// The environment, as owner/repo:environment.
        #[arg(value_name = "REPO:ENV")]
        env: EnvName,
        /// The deployment whose version to put back, instead of the last good one.
        #[arg(long, value_name = "ID")]
        to: Option<i64>,
        /// Then print its log until it ends; exit 0 only for a success.
        #[arg(long)]
        follow: bool,
        #[command(flatten)]
        config: ConfigArg,
    },
}

fn parse_state(s: &str) -> Result<String, String> {
    let words = ferry::store::STATE_WORDS;
    if words.contains(&s) {
        return Ok(s.to_string());
    }
    Err(format!("{s:?} is not a state: {}", words.join(", ")))
}

fn load(arg: ConfigArg) -> Result<Config, cli::Failed> {
    let path = config::resolve_path(arg.config);
    Config::load(&path).map_err(|e| {
        eprintln!("error: {e}");
        cli::Failed
    })
}

/// For the commands that act through the store: only `[storage]` and the
/// targets' names are read (SPEC: Command line), so missing secrets and
/// other keys' problems never stop an operator mid-incident.
fn load_for_store(arg: ConfigArg) -> Result<config::Steering, cli::Failed> {
    let path = config::resolve_path(arg.config);
    config::Steering::load(&path).map_err(|e| {
        eprintln!("error: {e}");
        cli::Failed
    })
}

async fn try_main(args: Args) -> anyhow::Result<()> {
    match args.command {
        Command::Serve(c) => {
            let config = load(c)?;
            for w in &config.warnings {
                tracing::warn!("{}", w.at(&config.path));
            }
            let signals = async {
                if let Err(e) = ferry::daemon::signals().await {
                    // No signal handler: ferry runs until it is killed.
                    tracing::error!("cannot listen for SIGTERM and SIGINT: {e}");
                    std::future::pending::<()>().await;
                }
            };
            ferry::daemon::serve(config, signals).await
        }
        Command::CheckConfig(c) => cli::check_config(&load(c)?).await,
        Command::CheckHosts { config, target } => {
            cli::check_hosts(&load(config)?, target.as_deref()).await
        }
        Command::Deployments {
            config,
            limit,
            environment,
            state,
            json,
        } => {
            let listing = cli::ListOptions {
                limit,
                environment: environment.map(|e| (e.repository, e.environment)),
                state,
                json,
            };
            cli::deployments(&load_for_store(config)?, listing).await
        }
        Command::Show { id, config, json } => {
            ferry::show::show(&load_for_store(config)?, id, json).await
        }
        Command::Logs { id, config, follow } => {
            cli::logs(&load_for_store(config)?, id, follow).await
        }
        Command::Lock {
            env,
            reason,
            config,
        } => control::lock(&load_for_store(config)?, &env, &reason).await,
        Command::Unlock { env, config } => control::unlock(&load_for_store(config)?, &env).await,
        Command::Locks { config, json } => control::locks(&load_for_store(config)?, json).await,
        Command::Teardown { env, yes, config } => {
            control::teardown(&load_for_store(config)?, &env, yes).await
        }
        Command::Cancel {
            id,
            reason,
            rollback,
            config,
        } => control::cancel(&load_for_store(config)?, id, &reason, rollback).await,
        Command::Deploy {
            env,
            git_ref,
            task,
            payload,
            force,
            follow,
            config,
        } => {
            let deploy = control::deploy::Deploy {
                env,
                git_ref,
                task,
                payload,
                force,
                follow,
            };
            control::deploy::deploy(&load_for_store(config)?, deploy).await
        }
        Command::Rollback {
            env,
            to,
            follow,
            config,
        } => control::deploy::rollback(&load_for_store(config)?, &env, to, follow).await,
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    if !matches!(args.command, Command::Serve(_)) {
        // `ferry deployments | head -1`: a closed output ends the command
        // quietly, as it does any Unix filter, instead of a panic in
        // println!. The daemon keeps Rust's default (EPIPE as an error on
        // its sockets).
        // SAFETY: setting a signal's disposition to the default is sound.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    }
    ferry::cli::init_tracing(matches!(args.command, Command::Serve(_)));
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(try_main(args));
    // Blocking threads (a DNS lookup that hangs) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<cli::Failed>() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
