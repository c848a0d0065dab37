//! What the store's growth costs: the busy burst (deployments running) on
//! an empty store, then 200,000 more deliveries through the same ferry,
//! then the same burst again, in one run. The baseline is ferry itself
//! before the store grew, so the ratio is the cost of the rows, their
//! statuses and their indexes (and on PostgreSQL of plans, bloat and
//! autovacuum), not of the machine.

use super::*;

/// Deliveries stored between the two measures.
const FILL: usize = 200_000;

pub(crate) async fn growth(report: &mut Vec<[String; 5]>, postgres: bool) {
    let (seconds, connections, rounds) = (4, 16, BURST_ROUNDS);
    let dir = tempfile::tempdir().unwrap();
    for name in burst_stores(postgres) {
        let w = burst_ferry(store_url(name), Busy::Running).await;
        let mut first_id = 5_000_000_i64;
        let mut fresh = |n: usize| {
            let path = dir.path().join(format!("growth-{first_id}.tsv"));
            write_burst(&path, n, first_id);
            first_id += n as i64;
            path
        };
        // Each round on new deliveries, a quiet outbox and a settled disk.
        let measure = async |fresh: &mut dyn FnMut(usize) -> std::path::PathBuf| {
            let mut loads = Vec::new();
            for _ in 0..rounds {
                let path = fresh(60_000);
                settled_posts(&w).await;
                settle_disk().await;
                loads.push(wrk(
                    &w.ferry.url,
                    "/webhook",
                    &path,
                    dir.path(),
                    seconds,
                    connections,
                ));
                let _ = std::fs::remove_file(&path);
            }
            loads
        };
        let empty = measure(&mut fresh).await;

        // The fill: new deliveries until FILL more are stored, in chunks
        // short enough that no chunk's file runs out (a repeat is a
        // cheaper 200).
        let started = Instant::now();
        let mut stored = 0;
        while stored < FILL as u64 {
            let path = fresh(100_000);
            let load = wrk(&w.ferry.url, "/webhook", &path, dir.path(), 8, connections);
            assert!(load.requests < 100_000, "a fill chunk ran out");
            // 900 MB a chunk: gone once sent.
            let _ = std::fs::remove_file(&path);
            stored += load.requests - load.non_2xx;
        }
        let filled_in = started.elapsed();
        let (_, drained) = settled_posts(&w).await;
        eprintln!("  {name}: {stored} stored in {filled_in:.0?}; outbox drained: {drained}");

        let grown = measure(&mut fresh).await;
        growth_rows(report, name, stored, (&grown, &empty));
        w.release();
    }
}

fn growth_rows(
    report: &mut Vec<[String; 5]>,
    name: &str,
    stored: u64,
    (grown, empty): (&[Load], &[Load]),
) {
    let rates = |l: &[Load]| l.iter().map(|l| l.per_second).collect::<Vec<_>>();
    let worst = rates(grown).into_iter().fold(f64::INFINITY, f64::min);
    let best = rates(empty).into_iter().fold(0.0, f64::max);
    let p99 = |l: &[Load]| median_of(l.iter().map(|l| latency_ms(&l.p99)).collect());
    let (after, before) = (median_of(rates(grown)), median_of(rates(empty)));
    report.push([
        format!(
            "Store growth: the burst with deployments running after {stored} more deliveries, against the same ferry's empty store: {name} (medians of {BURST_ROUNDS} rounds)"
        ),
        format!("{after:.0}/s"),
        format!("empty store {before:.0}/s"),
        format!("{:.2}x", after / before),
        ">= 0.9x".into(),
    ]);
    report.push([
        format!("Store growth, same: the grown store's worst round against the empty store's best: {name}"),
        format!("{worst:.0}/s"),
        format!("empty store {best:.0}/s"),
        format!("{:.2}x", worst / best),
        ">= 0.9x".into(),
    ]);
    report.push([
        format!("Store growth, same: p99 (median of rounds): {name}"),
        format!("{:.2}ms", p99(grown)),
        format!("empty store {:.2}ms", p99(empty)),
        String::new(),
        String::new(),
    ]);
}
