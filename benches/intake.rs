//! Intake throughput: signed deployment deliveries accepted durably per
//! second through the real HTTP route, sequential and concurrent, against
//! the disk's own fsync rate measured in the same run (the machines are
//! shared and noisy: compare the ratios, not the absolute numbers).
//!
//! `cargo bench --bench intake` (FERRY_BENCH_N deliveries per run, default 2000).

use std::io::Write;
use std::sync::Arc;
use std::time::{Duration, Instant};

use ferry::config::Config;
use ferry::logs::Logs;
use ferry::store::sqlite::SqliteStore;

const SECRET: &str = "bench-secret";

fn config(dir: &std::path::Path) -> Config {
    std::fs::write(dir.join("secret"), SECRET).unwrap();
    std::fs::write(dir.join("token"), "t").unwrap();
    std::fs::write(dir.join("known_hosts"), "").unwrap();
    let text = "[server]\npublic_url = \"http://bench\"\n[github]\nwebhook_secret_file = \"secret\"\n\
        token_file = \"token\"\n[storage]\ndir = \"state\"\n[ssh]\nknown_hosts_file = \"known_hosts\"\n\
        [[target]]\nrepository = \"octo-org/web\"\nenvironment = \"env-*\"\nhosts = [\"h\"]\n\
        [[target.steps]]\nname = \"s\"\nrun = \"true\"\n";
    Config::parse(text, &dir.join("ferry.toml"), &|_| None).unwrap()
}

/// Pre-signed bodies with unique deployment ids and deliveries.
fn deliveries(n: usize, first_id: i64) -> Vec<(String, Vec<u8>, String)> {
    let template: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/tests/data/github/deployment/payload.json"
        ))
        .unwrap(),
    )
    .unwrap();
    (0..n)
        .map(|i| {
            let mut v = template.clone();
            let id = first_id + i as i64;
            v["deployment"]["id"] = id.into();
            v["deployment"]["environment"] = format!("env-{}", i % 10).into();
            v["repository"]["full_name"] = "octo-org/web".into();
            let body = serde_json::to_vec(&v).unwrap();
            let sig = format!(
                "sha256={}",
                hex::encode(ferry::sign::sign(SECRET.as_bytes(), &body))
            );
            (format!("bench-{id}"), body, sig)
        })
        .collect()
}

struct Run {
    per_second: f64,
    p50: Duration,
    p99: Duration,
}

async fn load(url: &str, work: Vec<(String, Vec<u8>, String)>, concurrency: usize) -> Run {
    let client = reqwest::Client::new();
    let n = work.len();
    let work = Arc::new(tokio::sync::Mutex::new(work));
    let started = Instant::now();
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..concurrency {
        let (client, work, url) = (client.clone(), work.clone(), url.to_string());
        tasks.spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let Some((delivery, body, sig)) = work.lock().await.pop() else {
                    break;
                };
                let t = Instant::now();
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "deployment")
                    .header("x-github-delivery", delivery)
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
                latencies.push(t.elapsed());
            }
            latencies
        });
    }
    let mut all = Vec::with_capacity(n);
    while let Some(l) = tasks.join_next().await {
        all.extend(l.unwrap());
    }
    let elapsed = started.elapsed();
    all.sort();
    Run {
        per_second: n as f64 / elapsed.as_secs_f64(),
        p50: all[n / 2],
        p99: all[(n * 99 / 100).min(n - 1)],
    }
}

/// What the disk gives one writer that syncs after every write.
fn fsyncs_per_second(dir: &std::path::Path, n: usize) -> f64 {
    let mut f = std::fs::File::create(dir.join("fsync-probe")).unwrap();
    let started = Instant::now();
    for _ in 0..n {
        f.write_all(&[0u8; 512]).unwrap();
        f.sync_data().unwrap();
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn ms(d: Duration) -> String {
    format!("{:.2} ms", d.as_secs_f64() * 1000.0)
}

#[tokio::main]
async fn main() {
    let n: usize = std::env::var("FERRY_BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(2000);
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let config = config(dir.path());
    let store = std::sync::Arc::new(SqliteStore::open(&config.storage.dir).await.unwrap());
    let logs = Logs::open(&config.storage.dir, "http://bench", None)
        .await
        .unwrap();
    let routes = ferry::daemon::routes_only(config, store, logs);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/webhook", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, routes).await });

    let fsync = fsyncs_per_second(dir.path(), n.min(1000));
    let sequential = load(&url, deliveries(n / 4, 1), 1).await;
    let concurrent = load(&url, deliveries(n, 1_000_000), 64).await;

    println!(
        "intake benchmark: {n} signed deployment deliveries, each committed (WAL, synchronous=FULL) before its 202"
    );
    println!(
        "{:<34} {:>12} {:>10} {:>10} {:>14}",
        "", "per second", "p50", "p99", "vs fsync rate"
    );
    println!(
        "{:<34} {:>12.0} {:>10} {:>10} {:>14}",
        "disk: write+fdatasync, 1 writer", fsync, "-", "-", "1.00x"
    );
    for (name, r) in [
        ("ferry, 1 client at a time", &sequential),
        ("ferry, 64 concurrent clients", &concurrent),
    ] {
        println!(
            "{:<34} {:>12.0} {:>10} {:>10} {:>13.2}x",
            name,
            r.per_second,
            ms(r.p50),
            ms(r.p99),
            r.per_second / fsync
        );
    }
    println!(
        "group commit: 64 concurrent clients accept {:.1}x the deliveries per second of one client",
        concurrent.per_second / sequential.per_second
    );
}
