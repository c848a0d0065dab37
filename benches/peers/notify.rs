//! Notifications never in the way: the burst while deployments run, with
//! two sinks (one answering, one that never answers) against the same
//! burst with none, rounds alternating in one run. The sinks hear the
//! default events, as most will; `NOTIFY_EVENTS=all` makes them hear every
//! event, `queued` and `inactive` too: four notifications per delivery of
//! a burst that supersedes itself.

use super::*;
use common::receiver::Receiver;

pub(crate) async fn notify(report: &mut Vec<[String; 5]>, postgres: bool) {
    let (seconds, connections, n) = (4, 16, 100_000);
    let dir = tempfile::tempdir().unwrap();
    let stores = burst_stores(postgres);
    let url = store_url;
    let answering = Receiver::start(None).await;
    let hanging = Receiver::start(None).await;
    hanging.hang();
    let all = std::env::var("NOTIFY_EVENTS").is_ok_and(|e| e == "all");
    let events = if all {
        format!("events = {ALL}")
    } else {
        String::new()
    };
    let heard = if all {
        "every event"
    } else {
        "the default events"
    };
    // `NOTIFY_EVENTS=none`: no sinks on either side, to see the bench's own
    // bias between its two ferries (an A/A run).
    let none = std::env::var("NOTIFY_EVENTS").is_ok_and(|e| e == "none");
    // This round's other parts configured beside the sinks: a target that
    // follows a branch (its reconciler reads the head) and commands in pull
    // requests. Protection rules need a GitHub App, which the burst's
    // token-authenticated ferry is not: left out.
    let features = format!(
        "\n[[target]]\nrepository = {REPO:?}\nenvironment = \"staging\"\nhosts = [\"127.0.0.9\"]\n\
         [[target.steps]]\nname = \"step\"\nrun = \"true\"\n\
         [target.auto_deploy]\nbranch = \"main\"\n\
         [commands]\ndefault_environment = \"staging\"\n"
    );
    let sinks = if none {
        String::new()
    } else {
        format!(
            "\n[[notify]]\nname = \"answering\"\nurl = {:?}\n{events}\n\
         [[notify]]\nname = \"hanging\"\nurl = {:?}\n{events}\n{features}",
            answering.url, hanging.url
        )
    };
    let mut first_id = 9_000_000;
    for name in stores {
        let data: Vec<_> = (0..ROUNDS * 2)
            .map(|round| {
                let path = dir.path().join(format!("notify-{round}.tsv"));
                write_burst(&path, n, first_id + (round * n) as i64);
                path
            })
            .collect();
        first_id += (ROUNDS * 2 * n) as i64;
        let without = burst_ferry(url(name), Busy::Running).await;
        let with = burst_ferry_with(url(name), Busy::Running, sinks.clone()).await;
        let (mut plain, mut notified) = (Vec::new(), Vec::new());
        for round in 0..ROUNDS {
            // Alternating which goes first, each starting once both
            // ferries' outboxes went quiet: what one left running must not
            // count against the other (an A/A run without sinks showed a
            // 10% bias against the second).
            let order = if round % 2 == 0 {
                [false, true]
            } else {
                [true, false]
            };
            for sinks in order {
                settled_posts(&without).await;
                settled_posts(&with).await;
                settle_disk().await;
                let (w, into, data) = if sinks {
                    (&with, &mut notified, &data[2 * round + 1])
                } else {
                    (&without, &mut plain, &data[2 * round])
                };
                into.push(wrk(
                    &w.ferry.url,
                    "/webhook",
                    data,
                    dir.path(),
                    seconds,
                    connections,
                ));
            }
        }
        let delivered = answering.delivered().len();
        let rates = |l: &[Load]| l.iter().map(|l| l.per_second).collect::<Vec<_>>();
        let p99s = |l: &[Load]| l.iter().map(|l| latency_ms(&l.p99)).collect::<Vec<_>>();
        let (with_rate, without_rate) = (median_of(rates(&notified)), median_of(rates(&plain)));
        let worst = rates(&notified).into_iter().fold(f64::INFINITY, f64::min);
        let best = rates(&plain).into_iter().fold(0.0, f64::max);
        let (with_p99, without_p99) = (median_of(p99s(&notified)), median_of(p99s(&plain)));
        report.push([
            format!("Burst with two sinks hearing {heard} (one answering, one hanging), an auto-deploy branch and [commands], deployments running: {name} (medians of {ROUNDS} rounds)"),
            format!("{with_rate:.0}/s; {delivered} notifications delivered meanwhile"),
            format!("none of them {without_rate:.0}/s"),
            format!("{:.2}x", with_rate / without_rate),
            ">= 0.95x".into(),
        ]);
        report.push([
            format!("Burst with sinks, same: its worst round against the best without: {name}"),
            format!("{worst:.0}/s"),
            format!("none of them {best:.0}/s"),
            format!("{:.2}x", worst / best),
            ">= 0.95x".into(),
        ]);
        report.push([
            format!("Burst with sinks, p99 (median of rounds): {name}"),
            format!("{with_p99:.2}ms"),
            format!("none of them {without_p99:.2}ms"),
            format!("{:+.2}ms", with_p99 - without_p99),
            "within 1 ms".into(),
        ]);
        without.release();
        with.release();
    }
}

/// Rounds of each; even, so that each side goes first as often.
const ROUNDS: usize = 4;

const ALL: &str =
    r#"["queued", "in_progress", "success", "failure", "error", "inactive", "locked", "unlocked"]"#;
