//! ferry against the tools operators use today, measured side by side in
//! one run on this machine. `bash bench/run` installs the peers and runs it.
//!
//! Every figure is reported with its ratio to a peer (or baseline) measured
//! in the same run: the machines are shared and noisy, ratios travel better
//! than absolute numbers. Nothing here passes or fails a build.

use ferry_testkit as common;

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{Setup, Sshd, World, loopback, target};

const REPO: &str = "octo-org/web";
const SECRET: &str = common::SECRET;

/// ferry's environment for the rate measures: its own default log level,
/// as under systemd (a line per delivery, none per status posted), not the
/// tests' debug lines.
fn production_log() -> Vec<(String, String)> {
    vec![("RUST_LOG".into(), "info".into())]
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

fn secs(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn kib(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with(field)).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}

fn mb(kib: u64) -> String {
    format!("{:.1} MB", kib as f64 / 1024.0)
}

fn run(cmd: &mut Command) -> (bool, String) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

mod around;
mod burst;
mod failover;
mod fanout;
mod footprint;
mod growth;
mod intake;
mod notify;
mod reaction;
mod rolling;
mod stats;
use around::*;
use burst::*;
use failover::*;
use fanout::*;
use footprint::*;
use growth::*;
use intake::*;
use notify::*;
use reaction::*;
use rolling::*;
use stats::*;

fn machine() -> String {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split(':').nth(1))
        .unwrap_or("unknown")
        .trim()
        .to_string();
    let cores = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(0);
    let mem = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|k| k.parse::<u64>().ok())
        .map_or("?".to_string(), |k| format!("{} GiB", k / 1024 / 1024));
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    format!("{cores} cores ({cpu}), {mem}, Linux {}", kernel.trim())
}

fn table(rows: &[[String; 5]]) -> String {
    let mut s = String::from(
        "| measure | ferry | peer / baseline (same run) | ratio | goal |\n|---|---|---|---|---|\n",
    );
    for r in rows {
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} |",
            r[0], r[1], r[2], r[3], r[4]
        );
    }
    s
}

#[tokio::main]
async fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    // `cargo bench --bench peers -- intake fanout` runs only those parts.
    let only: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with('-'))
        .collect();
    let wanted = |part: &str| only.is_empty() || only.iter().any(|o| o == part);
    let mut report = Vec::new();
    let mut rss = Vec::new();
    if wanted("intake") {
        eprintln!("intake ...");
        intake(&mut report).await;
    }
    // `burst-sqlite`: the burst on SQLite alone, for a quicker look.
    if wanted("burst") || wanted("burst-sqlite") {
        eprintln!("burst to one environment ...");
        burst(&mut report, !wanted("burst-sqlite") || wanted("burst")).await;
    }
    // `notify-sqlite`: SQLite alone.
    if wanted("notify") || wanted("notify-sqlite") {
        eprintln!("burst with notification sinks ...");
        notify(&mut report, !wanted("notify-sqlite") || wanted("notify")).await;
    }
    // `growth-sqlite`: SQLite alone.
    if wanted("growth") || wanted("growth-sqlite") {
        eprintln!("the burst before and after the store grows ...");
        growth(&mut report, !wanted("growth-sqlite") || wanted("growth")).await;
    }
    if wanted("failover") {
        eprintln!("failover ...");
        failover(&mut report).await;
    }
    if wanted("reaction") {
        eprintln!("reaction time ...");
        reaction(&mut report).await;
    }
    if wanted("fanout") {
        eprintln!("fan-out ...");
        fanout(&mut report, &mut rss).await;
    }
    if wanted("rolling") {
        eprintln!("rolling deploy with checks ...");
        rolling(&mut report).await;
    }
    // `stats-sqlite`: SQLite alone.
    if wanted("stats") || wanted("stats-sqlite") {
        eprintln!("ferry stats on a store of 200,000 deployments ...");
        stats(&mut report, !wanted("stats-sqlite") || wanted("stats")).await;
    }
    if wanted("around") {
        eprintln!("the loop around a deployment ...");
        around(&mut report).await;
    }
    if wanted("footprint") {
        eprintln!("footprint ...");
        footprint(&mut rss).await;
    }
    report.extend(rss);
    println!("\nferry {} on {}\n", env!("CARGO_PKG_VERSION"), machine());
    print!("{}", table(&report));
}
