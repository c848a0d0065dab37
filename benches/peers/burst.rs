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

/// A ferry (on SQLite, or on PostgreSQL at `database_url`) with a
/// deployment running in the environment the burst goes to.
pub(crate) async fn held_ferry(database_url: Option<String>) -> World {
    let w = World::build(
        Setup {
            database_url,
            ..Setup::default()
        },
        |sshd, scratch| {
            let hold = common::hold(scratch);
            target(REPO, "production", &[sshd.host()], &[("hold", &hold)], "")
        },
    )
    .await;
    w.deploy(2_999_999, REPO, "production").await;
    w.github
        .wait_state(2_999_999, "in_progress", Duration::from_secs(60))
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

pub(crate) async fn burst(report: &mut Vec<[String; 5]>, postgres: bool) {
    let (seconds, connections, n) = (4, 16, 100_000);
    let dir = tempfile::tempdir().unwrap();
    // Each round's deliveries are new to ferry: a repeat is a cheaper 200.
    let data: Vec<_> = (0..BURST_ROUNDS)
        .map(|round| {
            let path = dir.path().join(format!("burst-{round}.tsv"));
            write_burst(&path, n, 3_000_000 + (round * n) as i64);
            path
        })
        .collect();
    let mut stores = vec![("SQLite", None)];
    if postgres {
        stores.push(("PostgreSQL", Some(common::postgres::cluster().database())));
    }
    for (name, url) in stores {
        let w = held_ferry(url).await;
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
        let sqlite = name == "SQLite";
        let rate = |loads: &[Load]| median_of(loads.iter().map(|l| l.per_second).collect());
        let p = |loads: &[Load], pick: fn(&Load) -> &str| {
            median_of(loads.iter().map(|l| latency_ms(pick(l))).collect())
        };
        let rounds: Vec<String> = ferries
            .iter()
            .zip(&peers)
            .map(|(f, p)| format!("{:.2}", f.per_second / p.per_second))
            .collect();
        report.push([
            format!(
                "Burst to one environment, statuses flowing, wrk -c{connections}: {name} \
                 (medians of {BURST_ROUNDS} rounds)"
            ),
            format!("{:.0}/s (durable)", rate(&ferries)),
            format!("webhook {:.0}/s (not durable)", rate(&peers)),
            format!(
                "{:.2}x (rounds {})",
                rate(&ferries) / rate(&peers),
                rounds.join(", ")
            ),
            if sqlite { ">= 3x" } else { ">= 1x" }.into(),
        ]);
        report.push([
            format!("Burst latency p50 / p99: {name}"),
            format!(
                "{:.2}ms / {:.2}ms",
                p(&ferries, |l| &l.p50),
                p(&ferries, |l| &l.p99)
            ),
            format!(
                "webhook {:.2}ms / {:.2}ms",
                p(&peers, |l| &l.p50),
                p(&peers, |l| &l.p99)
            ),
            String::new(),
            if sqlite {
                "p99 <= 10 ms"
            } else {
                "p99 <= 50 ms"
            }
            .into(),
        ]);
        report.push([
            format!("GitHub status posts per deployment of the burst: {name}"),
            format!(
                "{:.2} ({posts} for {accepted}{})",
                posts as f64 / accepted.max(1) as f64,
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
