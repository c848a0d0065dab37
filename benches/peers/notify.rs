//! Notifications never in the way: the burst while deployments run, with
//! two sinks that hear every event (one answering, one that never answers)
//! against the same burst with none, rounds alternating in one run.

use super::*;
use common::receiver::Receiver;

pub(crate) async fn notify(report: &mut Vec<[String; 5]>, postgres: bool) {
    let (seconds, connections, n) = (4, 16, 100_000);
    let dir = tempfile::tempdir().unwrap();
    let mut stores = vec!["SQLite"];
    if postgres {
        stores.push("PostgreSQL");
    }
    if let Ok(only) = std::env::var("BURST_STORE") {
        stores.retain(|s| s.to_lowercase().starts_with(&only.to_lowercase()));
    }
    let url = |store: &str| (store == "PostgreSQL").then(|| common::postgres::cluster().database());
    let answering = Receiver::start(None).await;
    let hanging = Receiver::start(None).await;
    hanging.hang();
    let sinks = format!(
        "\n[[notify]]\nname = \"answering\"\nurl = {:?}\nevents = {ALL}\n\
         [[notify]]\nname = \"hanging\"\nurl = {:?}\nevents = {ALL}\n",
        answering.url, hanging.url
    );
    let mut first_id = 9_000_000;
    for name in stores {
        let data: Vec<_> = (0..BURST_ROUNDS * 2)
            .map(|round| {
                let path = dir.path().join(format!("notify-{round}.tsv"));
                write_burst(&path, n, first_id + (round * n) as i64);
                path
            })
            .collect();
        first_id += (BURST_ROUNDS * 2 * n) as i64;
        let without = burst_ferry(url(name), Busy::Running).await;
        let with = burst_ferry_with(url(name), Busy::Running, sinks.clone()).await;
        let (mut plain, mut notified) = (Vec::new(), Vec::new());
        for round in 0..BURST_ROUNDS {
            settle_disk().await;
            plain.push(wrk(
                &without.ferry.url,
                "/webhook",
                &data[2 * round],
                dir.path(),
                seconds,
                connections,
            ));
            settle_disk().await;
            notified.push(wrk(
                &with.ferry.url,
                "/webhook",
                &data[2 * round + 1],
                dir.path(),
                seconds,
                connections,
            ));
        }
        let delivered = answering.delivered().len();
        let rates = |l: &[Load]| l.iter().map(|l| l.per_second).collect::<Vec<_>>();
        let p99s = |l: &[Load]| l.iter().map(|l| latency_ms(&l.p99)).collect::<Vec<_>>();
        let (with_rate, without_rate) = (median_of(rates(&notified)), median_of(rates(&plain)));
        let worst = rates(&notified).into_iter().fold(f64::INFINITY, f64::min);
        let best = rates(&plain).into_iter().fold(0.0, f64::max);
        let (with_p99, without_p99) = (median_of(p99s(&notified)), median_of(p99s(&plain)));
        report.push([
            format!("Burst with two sinks (one answering, one hanging), deployments running: {name} (medians of {BURST_ROUNDS} rounds)"),
            format!("{with_rate:.0}/s; {delivered} notifications delivered meanwhile"),
            format!("no sinks {without_rate:.0}/s"),
            format!("{:.2}x", with_rate / without_rate),
            ">= 0.95x".into(),
        ]);
        report.push([
            format!("Burst with sinks, same: its worst round against the best without: {name}"),
            format!("{worst:.0}/s"),
            format!("no sinks {best:.0}/s"),
            format!("{:.2}x", worst / best),
            ">= 0.95x".into(),
        ]);
        report.push([
            format!("Burst with sinks, p99 (median of rounds): {name}"),
            format!("{with_p99:.2}ms"),
            format!("no sinks {without_p99:.2}ms"),
            format!("{:+.2}ms", with_p99 - without_p99),
            "within 1 ms".into(),
        ]);
        without.release();
        with.release();
    }
}

const ALL: &str =
    r#"["queued", "in_progress", "success", "failure", "error", "inactive", "locked", "unlocked"]"#;
