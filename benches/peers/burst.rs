//! A burst to one environment, with the environment held or its deployments running.

use super::*;

/// GitHub's own deployment events (the octokit example, 8.6 KB), all to one
/// environment: each one supersedes the one waiting before it.
pub(crate) fn write_burst(path: &Path, n: usize, first_id: i64) {
    let mut out = String::with_capacity(n * 9000);
    for i in 0..n {
        let id = first_id + i as i64;
        let body = common::deployment_event(id, REPO, "production").to_string();
        let _ = writeln!(
            out,
            "burst-{id}\t{}\t{body}",
            common::signature(SECRET, body.as_bytes())
        );
    }
    std::fs::write(path, out).unwrap();
}

/// What the environment the burst goes to is doing meanwhile.
#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Busy {
    /// One deployment runs through the whole burst (a step that never
    /// ends): nothing else runs, no logs are written.
    Held,
    /// Deployments run and finish all through the burst: `true` on one
    /// host over a kept connection, each claim, `in_progress`, log and
    /// `success` written while the deliveries arrive.
    Running,
}

impl Busy {
    fn name(self) -> &'static str {
        match self {
            Busy::Held => "environment held",
            Busy::Running => "deployments running",
        }
    }
}

/// A ferry (on SQLite, or on PostgreSQL at `database_url`) with the
/// environment the burst goes to `busy`.
pub(crate) async fn burst_ferry(database_url: Option<String>, busy: Busy) -> World {
    burst_ferry_with(database_url, busy, String::new()).await
}

/// As [`burst_ferry`], with `extra` tables (`[[notify]]`) in its config.
pub(crate) async fn burst_ferry_with(
    database_url: Option<String>,
    busy: Busy,
    extra: String,
) -> World {
    let w = World::build(
        Setup {
            database_url,
            // Debian's bash reads ~/.bashrc for every command sshd runs
            // (here pyenv, ~120 ms): SHLVL=1 skips it, so deployments run
            // as often as a quick host lets them.
            sshd_config: "SetEnv SHLVL=1".into(),
            env: production_log(),
            ..Setup::default()
        },
        |sshd, scratch| {
            let step = match busy {
                Busy::Held => common::hold(scratch),
                Busy::Running => "true".to_string(),
            };
            target(REPO, "production", &[sshd.host()], &[("step", &step)], "") + &extra
        },
    )
    .await;
    let first = 2_999_999;
    w.deploy(first, REPO, "production").await;
    let wanted = match busy {
        Busy::Held => "in_progress",
        Busy::Running => "success",
    };
    w.github
        .wait_state(first, wanted, Duration::from_secs(60))
        .await;
    w
}

/// Status requests GitHub got once the outbox has settled (or ten
/// minutes: a burst's backlog goes out at the stand-in's pace).
pub(crate) async fn settled_posts(w: &World) -> (usize, bool) {
    let mut last = (usize::MAX, Instant::now());
    let deadline = Instant::now() + Duration::from_secs(600);
    loop {
        let now = w.github.statuses().len();
        if now != last.0 {
            last = (now, Instant::now());
        } else if last.1.elapsed() > Duration::from_secs(3) {
            return (now, true);
        }
        if Instant::now() > deadline {
            return (now, false);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Rounds of webhook then ferry, each pair measured minutes apart at most:
/// the machine is shared and its pace drifts, so a single pair's ratio
/// swung by up to 15% from run to run. The table gives the medians.
pub(crate) const BURST_ROUNDS: usize = 3;

pub(crate) fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// wrk's latency figure ("812.00us", "1.56ms", "1.02s") in milliseconds.
pub(crate) fn latency_ms(figure: &str) -> f64 {
    let (number, scale) = if let Some(n) = figure.strip_suffix("us") {
        (n, 0.001)
    } else if let Some(n) = figure.strip_suffix("ms") {
        (n, 1.0)
    } else if let Some(n) = figure.strip_suffix('s') {
        (n, 1000.0)
    } else {
        (figure, f64::NAN)
    };
    number.parse::<f64>().unwrap_or(f64::NAN) * scale
}

/// Lets the writes of the run before reach the disk (hundreds of MB that
/// stalled PostgreSQL's commits), so each measure starts on a settled
/// machine.
pub(crate) async fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
    tokio::time::sleep(Duration::from_secs(5)).await;
}

/// `BURST=held` or `BURST=running` measures one case only (for `perf`).
fn cases() -> Vec<Busy> {
    match std::env::var("BURST").as_deref() {
        Ok("held") => vec![Busy::Held],
        Ok("running") => vec![Busy::Running],
        _ => vec![Busy::Held, Busy::Running],
    }
}

/// `BURST_PROFILE=SECONDS`: ferry alone under one long burst, its pid on
/// stderr, for `perf record -g -p PID` (no peer, nothing reported).
/// `BURST_PROFILE=SECONDSxTIMES`: that many bursts in a row, each of
/// deliveries new to ferry, to see whether its pace drifts.
async fn profile(stores: &[&str], url: impl Fn(&str) -> Option<String>, spec: &str) {
    let (seconds, times) = match spec.split_once('x') {
        Some((s, t)) => (s.parse().unwrap_or(4), t.parse().unwrap_or(1)),
        None => (spec.parse().unwrap_or(20), 1),
    };
    let dir = tempfile::tempdir().unwrap();
    let per_burst = (seconds as usize * 12_000).min(400_000);
    let mut first_id = 3_000_000;
    for (name, busy) in stores
        .iter()
        .flat_map(|s| cases().into_iter().map(move |b| (*s, b)))
    {
        let w = burst_ferry(url(name), busy).await;
        eprintln!(
            "  profile {name}, {}: ferry pid {}",
            busy.name(),
            w.ferry.pid()
        );
        for _ in 0..times {
            let path = dir.path().join("burst.tsv");
            write_burst(&path, per_burst, first_id);
            first_id += per_burst as i64;
            settle_disk().await;
            let load = wrk(&w.ferry.url, "/webhook", &path, dir.path(), seconds, 16);
            eprintln!(
                "  {:.0}/s p50 {} p99 {} ({} requests, {} not 2xx)",
                load.per_second, load.p50, load.p99, load.requests, load.non_2xx
            );
        }
        w.release();
    }
}

/// The stores a burst measures: SQLite, and PostgreSQL unless left out;
/// `BURST_STORE=postgres` (or `sqlite`) measures one only.
pub(crate) fn burst_stores(postgres: bool) -> Vec<&'static str> {
    let mut stores = vec!["SQLite"];
    if postgres {
        stores.push("PostgreSQL");
    }
    if let Ok(only) = std::env::var("BURST_STORE") {
        stores.retain(|s| s.to_lowercase().starts_with(&only.to_lowercase()));
    }
    stores
}

/// A database of its own for each case on PostgreSQL; None for SQLite.
pub(crate) fn store_url(store: &str) -> Option<String> {
    (store == "PostgreSQL").then(|| common::postgres::cluster().database())
}

pub(crate) async fn burst(report: &mut Vec<[String; 5]>, postgres: bool) {
    let (seconds, connections, n) = (4, 16, 100_000);
    let dir = tempfile::tempdir().unwrap();
    let stores = burst_stores(postgres);
    let url = store_url;
    let mut first_id = 3_000_000;
    if let Ok(secs) = std::env::var("BURST_PROFILE") {
        return profile(&stores, url, &secs).await;
    }
    for name in stores {
        for busy in cases() {
            // Each round's deliveries are new to ferry: a repeat is a cheaper 200.
            let data: Vec<_> = (0..BURST_ROUNDS)
                .map(|round| {
                    let path = dir.path().join(format!("burst-{round}.tsv"));
                    write_burst(&path, n, first_id + (round * n) as i64);
                    path
                })
                .collect();
            first_id += (BURST_ROUNDS * n) as i64;
            let w = burst_ferry(url(name), busy).await;
            let (mut webhook, port) = start_webhook(dir.path());
            let before = w.github.statuses().len();
            let (mut peers, mut ferries) = (Vec::new(), Vec::new());
            for deliveries in &data {
                settle_disk().await;
                peers.push(wrk(
                    &format!("http://127.0.0.1:{port}"),
                    "/hooks/deploy",
                    &data[0],
                    dir.path(),
                    seconds,
                    connections,
                ));
                settle_disk().await;
                let ferry = wrk(
                    &w.ferry.url,
                    "/webhook",
                    deliveries,
                    dir.path(),
                    seconds,
                    connections,
                );
                assert!(
                    ferry.requests < n as u64,
                    "more requests than deliveries: raise n"
                );
                ferries.push(ferry);
            }
            let _ = webhook.kill();
            let _ = webhook.wait();
            let accepted: u64 = ferries.iter().map(|f| f.requests - f.non_2xx).sum();
            let (settled, drained) = settled_posts(&w).await;
            let posts = settled - before;
            let ran = w
                .github
                .statuses()
                .iter()
                .filter(|s| s.state() == "success")
                .count()
                .saturating_sub(1);
            burst_rows(
                report,
                &format!("{name}, {}", busy.name()),
                name == "SQLite",
                (&ferries, &peers),
                connections,
            );
            report.push([
                format!(
                    "GitHub status posts per deployment of the burst: {name}, {}",
                    busy.name()
                ),
                format!(
                    "{:.2} ({posts} for {accepted}{}{})",
                    posts as f64 / accepted.max(1) as f64,
                    if busy == Busy::Running {
                        format!("; {ran} ran to success")
                    } else {
                        String::new()
                    },
                    if drained {
                        ""
                    } else {
                        "; outbox not drained in 10 min"
                    }
                ),
                String::new(),
                String::new(),
                "<= 1.05".into(),
            ]);
            w.release();
        }
    }
}

/// The rate (medians, and ferry's worst round against webhook's best) and
/// the latencies of one store and case.
fn burst_rows(
    report: &mut Vec<[String; 5]>,
    case: &str,
    sqlite: bool,
    (ferries, peers): (&[Load], &[Load]),
    connections: u32,
) {
    let rates = |loads: &[Load]| loads.iter().map(|l| l.per_second).collect::<Vec<_>>();
    let rate = |loads: &[Load]| median_of(rates(loads));
    let p = |loads: &[Load], pick: fn(&Load) -> &str| {
        median_of(loads.iter().map(|l| latency_ms(pick(l))).collect())
    };
    let worst = rates(ferries).into_iter().fold(f64::INFINITY, f64::min);
    let best = rates(peers).into_iter().fold(0.0, f64::max);
    let worst_p99 = ferries
        .iter()
        .map(|l| latency_ms(&l.p99))
        .fold(0.0, f64::max);
    let rounds: Vec<String> = ferries
        .iter()
        .zip(peers)
        .map(|(f, p)| format!("{:.2}", f.per_second / p.per_second))
        .collect();
    let goal = if sqlite { ">= 3x" } else { ">= 1.5x" };
    report.push([
        format!(
            "Burst to one environment, wrk -c{connections}: {case} (medians of {BURST_ROUNDS} rounds)"
        ),
        format!("{:.0}/s (durable)", rate(ferries)),
        format!("webhook {:.0}/s (not durable)", rate(peers)),
        format!(
            "{:.2}x (rounds {})",
            rate(ferries) / rate(peers),
            rounds.join(", ")
        ),
        goal.into(),
    ]);
    report.push([
        format!("Burst, same: ferry's worst round against webhook's best: {case}"),
        format!("{worst:.0}/s"),
        format!("webhook {best:.0}/s"),
        format!("{:.2}x", worst / best),
        goal.into(),
    ]);
    report.push([
        format!("Burst latency p50 / p99 (worst round's p99): {case}"),
        format!(
            "{:.2}ms / {:.2}ms ({worst_p99:.2}ms)",
            p(ferries, |l| &l.p50),
            p(ferries, |l| &l.p99)
        ),
        format!(
            "webhook {:.2}ms / {:.2}ms",
            p(peers, |l| &l.p50),
            p(peers, |l| &l.p99)
        ),
        String::new(),
        if sqlite {
            "p99 <= 10 ms"
        } else {
            "p99 <= 25 ms"
        }
        .into(),
    ]);
}
