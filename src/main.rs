use std::process::ExitCode;

use clap::Parser;

use ferry::cmd::{self, Command};

/// Turns GitHub Deployments into SSH deploys.
#[derive(Parser)]
#[command(version, about)]
struct Args {
    #[command(subcommand)]
    command: Command,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let daemon = args.command.is_serve();
    if !daemon {
        // `ferry deployments | head -1`: a closed output ends the command
        // quietly, as it does any Unix filter, instead of a panic in
        // println!. The daemon keeps Rust's default (EPIPE as an error on
        // its sockets).
        // SAFETY: setting a signal's disposition to the default is sound.
        unsafe {
            libc::signal(libc::SIGPIPE, libc::SIG_DFL);
        }
    } else {
        // The sockets systemd passed, if any (socket activation).
        // SAFETY: no other thread exists yet (tracing and the runtime
        // start below), and this is the one call.
        if let Err(e) = unsafe { ferry::daemon::sockets::inherit() } {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    }
    cmd::init_tracing(daemon);
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = runtime.block_on(args.command.run());
    // Blocking threads (a DNS lookup that hangs) must not hold the exit.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) if e.is::<cmd::Failed>() => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
