//! Intake alone: ferry and adnanh/webhook taking signed deliveries side by side.

use super::*;

/// A small signed deployment delivery per line: `delivery \t signature \t body`.
pub(crate) fn write_deliveries(path: &Path, n: usize, first_id: i64, repository: &str) {
    let mut out = String::with_capacity(n * 400);
    for i in 0..n {
        let id = first_id + i as i64;
        let body = serde_json::json!({
            "action": "created",
            "deployment": {
                "id": id, "sha": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e", "ref": "main",
                "task": "deploy", "payload": {}, "environment": format!("env-{}", i % 10),
                "creator": {"login": "octocat"}
            },
            "repository": {"full_name": repository}
        })
        .to_string();
        let _ = writeln!(
            out,
            "bench-{id}\t{}\t{body}",
            common::signature(SECRET, body.as_bytes())
        );
    }
    std::fs::write(path, out).unwrap();
}

pub(crate) const WRK_SCRIPT: &str = r#"
local counter = 0
function setup(thread)
  thread:set("id", counter)
  counter = counter + 1
end
function init(args)
  local threads, n = tonumber(args[2]), 0
  path = args[3]
  requests = {}
  for line in io.lines(args[1]) do
    if n % threads == id then
      local d, sig, body = line:match("([^\t]*)\t([^\t]*)\t(.*)")
      requests[#requests + 1] = wrk.format("POST", path, {
        ["Content-Type"] = "application/json", ["X-GitHub-Event"] = "deployment",
        ["X-GitHub-Delivery"] = d, ["X-Hub-Signature-256"] = sig }, body)
    end
    n = n + 1
  end
  i = 0
end
function request()
  i = i + 1
  if i > #requests then i = 1 end
  return requests[i]
end
"#;

pub(crate) struct Load {
    pub(crate) per_second: f64,
    pub(crate) p50: String,
    pub(crate) p99: String,
    pub(crate) non_2xx: u64,
    pub(crate) requests: u64,
}

/// wrk with one thread and `connections` connections for `seconds` against
/// `url`. One thread, because wrk starts each thread as soon as its script
/// has read the deliveries, and starts the clock only once every thread
/// has: with two, the first sent requests while the second read its half
/// of hundreds of MB, and those counted against a clock that had not
/// started (a 4 s burst on PostgreSQL read 6,724/s with a p50 of 8.4 ms
/// over 16 connections, which allows 1,900/s).
pub(crate) fn wrk(
    url: &str,
    path: &str,
    data: &Path,
    dir: &Path,
    seconds: u32,
    connections: u32,
) -> Load {
    let script = dir.join("deliveries.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let (ok, out) = run(Command::new("wrk")
        .args([
            "-t1",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .arg("--")
        .arg(data)
        .args(["1", path]));
    assert!(ok, "wrk: {out}");
    if let Some(rate) = out.lines().find(|l| l.starts_with("Requests/sec:")) {
        eprintln!("  wrk {url}{path}: {}", rate.trim());
    }
    let find = |prefix: &str| {
        out.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .map(|l| l.split_whitespace().nth(1).unwrap_or_default().to_string())
            .unwrap_or_default()
    };
    let requests = out
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let non_2xx = out
        .lines()
        .find(|l| l.contains("Non-2xx"))
        .and_then(|l| l.split_whitespace().last())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    Load {
        per_second: find("Requests/sec:").parse().unwrap_or(0.0),
        p50: find("50%"),
        p99: find("99%"),
        non_2xx,
        requests,
    }
}

/// A ferry whose ten environments each have a deployment running, so that
/// deliveries arriving now are stored, supersede the one waiting before them
/// and get their statuses posted: the work of a burst.
pub(crate) async fn busy_ferry() -> World {
    let setup = Setup {
        runner: "max_concurrent = 16\nshutdown_grace = \"5s\"".into(),
        env: production_log(),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, scratch| {
        let hold = common::hold(scratch);
        target(REPO, "env-*", &[sshd.host()], &[("hold", &hold)], "")
    })
    .await;
    for env in 0..10 {
        w.deploy(900_000 + env, REPO, &format!("env-{env}")).await;
    }
    for env in 0..10 {
        w.github
            .wait_state(900_000 + env, "in_progress", Duration::from_secs(60))
            .await;
    }
    w
}

/// adnanh/webhook on a free port: the same deliveries, an HMAC-SHA256
/// rule, `/bin/true`.
pub(crate) fn start_webhook(dir: &Path) -> (std::process::Child, u16) {
    let hooks = dir.join("hooks.json");
    std::fs::write(
        &hooks,
        serde_json::json!([{
            "id": "deploy",
            "execute-command": "/bin/true",
            "trigger-rule": {"match": {"type": "payload-hmac-sha256", "secret": SECRET,
                "parameter": {"source": "header", "name": "X-Hub-Signature-256"}}}
        }])
        .to_string(),
    )
    .unwrap();
    let port = common::sshd::free_port();
    let webhook = Command::new("webhook")
        .args(["-hooks"])
        .arg(&hooks)
        .args(["-ip", "127.0.0.1", "-port", &port.to_string()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("webhook (Debian package 'webhook')");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "webhook did not listen");
        std::thread::sleep(Duration::from_millis(20));
    }
    (webhook, port)
}

/// Distinct deliveries per intake measure: more than ferry takes in its
/// seconds, since a repeat is a cheaper `200`.
const DISTINCT: usize = 240_000;

pub(crate) async fn intake(report: &mut Vec<[String; 5]>) {
    let seconds = 6;
    for connections in [32, 128] {
        let w = busy_ferry().await;
        // Every request a distinct delivery and deployment.
        let data = w.dir.path().join("deliveries.tsv");
        // A fast machine took 20,000/s at -c128: 120,000 ran out.
        write_deliveries(&data, DISTINCT, 1, REPO);

        let (mut webhook, port) = start_webhook(w.dir.path());
        let load = |url: &str, path: &str, data: &Path| {
            wrk(url, path, data, w.dir.path(), seconds, connections)
        };
        // webhook first: after ferry's run, its outbox is still posting the
        // statuses of the burst, which would take CPU from webhook's run.
        let peer = load(&format!("http://127.0.0.1:{port}"), "/hooks/deploy", &data);
        let _ = webhook.kill();
        let _ = webhook.wait();
        // Before ferry's stored run, whose outbox is still posting the
        // burst's statuses for a while after it.
        let ceiling = if connections == 128 {
            // The same work short of storing: a repository no target owns
            // is verified, parsed and answered 200. What is left for the
            // store on this machine, with the load generator beside it.
            let unowned = w.dir.path().join("unowned.tsv");
            write_deliveries(&unowned, 120_000, 500_000, "someone-else/app");
            Some(load(&w.ferry.url, "/webhook", &unowned))
        } else {
            None
        };
        let ferry = load(&w.ferry.url, "/webhook", &data);
        assert!(
            ferry.requests < DISTINCT as u64,
            "more requests than distinct deliveries: raise the count"
        );
        if ferry.non_2xx + peer.non_2xx > 0 {
            eprintln!(
                "note: non-2xx answers: ferry {}, webhook {}",
                ferry.non_2xx, peer.non_2xx
            );
        }
        report.push([
            format!("Intake: signed deliveries/s, wrk -t1 -c{connections}"),
            format!("{:.0}/s (durable)", ferry.per_second),
            format!("webhook {:.0}/s (not durable)", peer.per_second),
            format!("{:.2}x", ferry.per_second / peer.per_second),
            ">= 3x".into(),
        ]);
        report.push([
            format!("Intake latency p50 / p99, -c{connections}"),
            format!("{} / {}", ferry.p50, ferry.p99),
            format!("webhook {} / {}", peer.p50, peer.p99),
            String::new(),
            "p99 < 10 ms".into(),
        ]);
        if let Some(ceiling) = ceiling {
            report.push([
                format!(
                    "Intake ceiling: the same without storing (no target owns it), -c{connections}"
                ),
                format!("{:.0}/s", ceiling.per_second),
                format!("webhook {:.0}/s", peer.per_second),
                format!("{:.2}x", ceiling.per_second / peer.per_second),
                String::new(),
            ]);
        }
        w.release();
    }
}
