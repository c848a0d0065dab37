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

// ---- intake ------------------------------------------------------------

/// A small signed deployment delivery per line: `delivery \t signature \t body`.
fn write_deliveries(path: &Path, n: usize, first_id: i64, repository: &str) {
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

const WRK_SCRIPT: &str = r#"
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

struct Load {
    per_second: f64,
    p50: String,
    p99: String,
    non_2xx: u64,
    requests: u64,
}

/// wrk with 2 threads and `connections` connections for `seconds` against `url`.
fn wrk(url: &str, path: &str, data: &Path, dir: &Path, seconds: u32, connections: u32) -> Load {
    let script = dir.join("deliveries.lua");
    std::fs::write(&script, WRK_SCRIPT).unwrap();
    let (ok, out) = run(Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{seconds}s"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .arg("--")
        .arg(data)
        .args(["2", path]));
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
async fn busy_ferry() -> World {
    let setup = Setup {
        runner: "max_concurrent = 16\nshutdown_grace = \"5s\"".into(),
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
fn start_webhook(dir: &Path) -> (std::process::Child, u16) {
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

// ---- a burst to one environment ------------------------------------------

/// GitHub's own deployment events (the octokit example, 8.6 KB), all to one
/// environment: each one supersedes the one waiting before it.
fn write_burst(path: &Path, n: usize, first_id: i64) {
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
async fn held_ferry(database_url: Option<String>) -> World {
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
async fn settled_posts(w: &World) -> (usize, bool) {
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
const BURST_ROUNDS: usize = 3;

fn median_of(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// wrk's latency figure ("812.00us", "1.56ms", "1.02s") in milliseconds.
fn latency_ms(figure: &str) -> f64 {
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
async fn settle_disk() {
    let _ = std::process::Command::new("sync").status();
    tokio::time::sleep(Duration::from_secs(5)).await;
}

async fn burst(report: &mut Vec<[String; 5]>, postgres: bool) {
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

// ---- failover -------------------------------------------------------------

/// Two replicas on PostgreSQL; `kill -9` of the one running a deployment;
/// how long until the other has posted its `error`.
async fn failover(report: &mut Vec<[String; 5]>) {
    let url = common::postgres::cluster().database();
    let mut w = held_ferry(Some(url.clone())).await;
    let mut b = w.replica(2).await;
    let id = 2_999_999;
    let pid = common::postgres::holder(&url, id).await.expect("held");
    let killed = Instant::now();
    if pid == w.ferry.pid() {
        w.ferry.kill9();
    } else {
        b.kill9();
    }
    w.github.wait_final(id, Duration::from_secs(90)).await;
    let took = killed.elapsed();
    report.push([
        "Failover: kill -9 of the replica running a deployment, until the other posts `error`"
            .into(),
        secs(took),
        "SPEC: 30 s".into(),
        format!("{:.2}x", took.as_secs_f64() / 30.0),
        "<= 30 s".into(),
    ]);
    w.release();
}

async fn intake(report: &mut Vec<[String; 5]>) {
    let seconds = 6;
    for connections in [32, 128] {
        let w = busy_ferry().await;
        // Every request a distinct delivery and deployment.
        let data = w.dir.path().join("deliveries.tsv");
        write_deliveries(&data, 120_000, 1, REPO);

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
            ferry.requests < 120_000,
            "more requests than distinct deliveries: raise the count"
        );
        if ferry.non_2xx + peer.non_2xx > 0 {
            eprintln!(
                "note: non-2xx answers: ferry {}, webhook {}",
                ferry.non_2xx, peer.non_2xx
            );
        }
        report.push([
            format!("Intake: signed deliveries/s, wrk -t2 -c{connections}"),
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

// ---- reaction time ----------------------------------------------------

fn plain_ssh(w: &World, sshd: &Sshd, address: &str) -> Command {
    let d = w.dir.path();
    let mut c = Command::new("ssh");
    c.args([
        "-F",
        "none",
        "-o",
        "BatchMode=yes",
        "-o",
        "StrictHostKeyChecking=yes",
        "-o",
    ])
    .arg(format!(
        "UserKnownHostsFile={}",
        d.join("known_hosts").display()
    ))
    .arg("-i")
    .arg(d.join("id_ed25519"))
    .args([
        "-p",
        &sshd.port.to_string(),
        &format!("{}@{address}", sshd.user),
        "true",
    ]);
    c
}

/// Medians over `rounds` one-host deployments of `true`, one after the
/// other: 202 -> in_progress, 202 -> success, and a plain `ssh host true`
/// run between deployments.
async fn reaction_rounds(ssh: &str, rounds: i64) -> (Duration, Duration, Duration) {
    let setup = Setup {
        ssh: ssh.into(),
        ..Setup::default()
    };
    let w = World::build(setup, |sshd, _| {
        target(REPO, "production", &[sshd.host()], &[("noop", "true")], "")
    })
    .await;
    let (mut started, mut done, mut ssh) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..rounds {
        let id = 1000 + i;
        w.deploy(id, REPO, "production").await;
        let accepted = Instant::now();
        let statuses = w.github.wait_final(id, Duration::from_secs(60)).await;
        let at = |state: &str| {
            statuses
                .iter()
                .find(|p| p.state() == state)
                .map(|p| p.at)
                .unwrap()
        };
        started.push(at("in_progress") - accepted);
        done.push(at("success") - accepted);
        let t = Instant::now();
        let (ok, out) = run(&mut plain_ssh(&w, &w.sshd, "127.0.0.1"));
        assert!(ok, "ssh: {out}");
        ssh.push(t.elapsed());
    }
    (median(started), median(done), median(ssh))
}

async fn reaction(report: &mut Vec<[String; 5]>) {
    // The first deployment opens the connection and the rest reuse it
    // (ssh.idle_timeout); with idle_timeout 0s every deployment opens its own.
    let warm = reaction_rounds("", 15).await;
    let cold = reaction_rounds("idle_timeout = \"0s\"", 9).await;
    let measures = [
        (
            "202 -> in_progress, median",
            "ssh handshake + exec",
            "<= 20 ms",
            warm.0,
            cold.0,
        ),
        (
            "202 -> success (1 host, `true`)",
            "`ssh host true`",
            "<= 1.5x",
            warm.1,
            cold.1,
        ),
    ];
    for (measure, baseline, goal, reused, new) in measures {
        for (what, took, ssh) in [
            ("connection reused", reused, warm.2),
            ("new connection", new, cold.2),
        ] {
            report.push([
                format!("Reaction: {measure}, {what}"),
                ms(took),
                format!("{baseline} {}", ms(ssh)),
                format!("{:.2}x", took.as_secs_f64() / ssh.as_secs_f64()),
                goal.into(),
            ]);
        }
    }
}

// ---- fan-out ------------------------------------------------------------

fn fleet_setup(max_connections: usize) -> Setup {
    Setup {
        // 50 hosts: sshd listens on 16 addresses at most.
        sshds: vec![
            loopback(2, 16),
            loopback(18, 16),
            loopback(34, 16),
            loopback(50, 2),
        ],
        // Room for every tool to open all 50 at once.
        sshd_config: "MaxStartups 100".into(),
        ssh: format!("max_connections = {max_connections}"),
        ..Setup::default()
    }
}

fn fleet_hosts(sshds: &[&Sshd]) -> Vec<String> {
    sshds.iter().flat_map(|s| s.hosts()).collect()
}

/// Runs one 50-host deployment of `true` three times; median wall time from
/// the 202 to `success`, and ferry's peak RSS.
async fn ferry_fanout(max_connections: usize) -> (Duration, u64, World) {
    let w = World::build_fleet(fleet_setup(max_connections), |sshds, _| {
        target(
            REPO,
            "production",
            &fleet_hosts(sshds),
            &[("noop", "true")],
            "",
        )
    })
    .await;
    let mut times = Vec::new();
    for i in 0..3 {
        w.deploy(2000 + i, REPO, "production").await;
        let t = Instant::now();
        let statuses = w
            .github
            .wait_final(2000 + i, Duration::from_secs(120))
            .await;
        let last = statuses.last().unwrap();
        assert_eq!(last.state(), "success", "{}", last.description());
        times.push(last.at - t);
    }
    let peak = kib(w.ferry.pid(), "VmHWM:");
    (median(times), peak, w)
}

fn timed(mut cmd: Command) -> Duration {
    let t = Instant::now();
    let (ok, out) = run(&mut cmd);
    let took = t.elapsed();
    assert!(ok, "{cmd:?}: {out}");
    took
}

async fn fanout(report: &mut Vec<[String; 5]>, rss: &mut Vec<[String; 5]>) {
    let (default_cap, _, _) = ferry_fanout(ferry::config::DEFAULT_MAX_CONNECTIONS).await;
    let (ferry, peak, w) = ferry_fanout(50).await;
    let d = w.dir.path();
    let sshds: Vec<&Sshd> = std::iter::once(&w.sshd).chain(w.fleet.iter()).collect();

    let hosts_file = d.join("pssh-hosts");
    let lines: Vec<String> = sshds
        .iter()
        .flat_map(|s| {
            s.addresses
                .iter()
                .map(move |a| format!("{}@{a}:{}", s.user, s.port))
        })
        .collect();
    std::fs::write(&hosts_file, lines.join("\n")).unwrap();
    let pssh = median(
        (0..3)
            .map(|_| {
                let mut c = Command::new("parallel-ssh");
                c.arg("-h")
                    .arg(&hosts_file)
                    .args(["-p", "50", "-t", "60"])
                    .args([
                        "-O",
                        "BatchMode=yes",
                        "-O",
                        "StrictHostKeyChecking=yes",
                        "-O",
                    ])
                    .arg(format!(
                        "UserKnownHostsFile={}",
                        d.join("known_hosts").display()
                    ))
                    .arg("-x")
                    .arg(format!("-F none -i {}", d.join("id_ed25519").display()))
                    .arg("true");
                timed(c)
            })
            .collect(),
    );

    let inventory = d.join("inventory.ini");
    let mut inv = String::from("[fleet]\n");
    for s in &sshds {
        for a in &s.addresses {
            let _ = writeln!(
                inv,
                "{a}-{} ansible_host={a} ansible_port={}",
                s.port, s.port
            );
        }
    }
    let _ = write!(
        inv,
        "[fleet:vars]\nansible_user={}\nansible_ssh_private_key_file={}\n\
         ansible_ssh_common_args='-F none -o StrictHostKeyChecking=yes -o UserKnownHostsFile={}'\n\
         ansible_python_interpreter=/usr/bin/python3\n",
        w.sshd.user,
        d.join("id_ed25519").display(),
        d.join("known_hosts").display()
    );
    std::fs::write(&inventory, inv).unwrap();
    let cp = tempfile::tempdir_in("/tmp").unwrap();
    let ansible = median(
        (0..3)
            .map(|_| {
                let mut c = Command::new("ansible");
                c.args(["fleet", "-i"])
                    .arg(&inventory)
                    .args(["-m", "command", "-a", "true", "-f", "50"])
                    .env("ANSIBLE_HOST_KEY_CHECKING", "True")
                    .env("ANSIBLE_SSH_CONTROL_PATH_DIR", cp.path())
                    .env("ANSIBLE_LOCAL_TEMP", cp.path())
                    .env("ANSIBLE_NOCOLOR", "1");
                timed(c)
            })
            .collect(),
    );

    report.push([
        "Fan-out: `true` on 50 hosts, wall time".into(),
        format!("{} (all at once)", secs(ferry)),
        format!("parallel-ssh -p 50 {}", secs(pssh)),
        format!("{:.2}x", ferry.as_secs_f64() / pssh.as_secs_f64()),
        "<= 1.1x".into(),
    ]);
    report.push([
        "Fan-out, same run".into(),
        secs(ferry),
        format!("ansible -m command -f 50 {}", secs(ansible)),
        format!("{:.1}x faster", ansible.as_secs_f64() / ferry.as_secs_f64()),
        ">= 5x faster".into(),
    ]);
    report.push([
        "Fan-out with the default ssh.max_connections = 8".into(),
        secs(default_cap),
        format!("parallel-ssh -p 50 {}", secs(pssh)),
        format!("{:.2}x", default_cap.as_secs_f64() / pssh.as_secs_f64()),
        "(safe for sshd's MaxStartups)".into(),
    ]);
    rss.push([
        "Peak RSS during the 50-host fan-out".into(),
        mb(peak),
        String::new(),
        String::new(),
        String::new(),
    ]);
}

// ---- footprint ----------------------------------------------------------

async fn footprint(rss: &mut Vec<[String; 5]>) {
    let w = World::build(Setup::default(), |sshd, scratch| {
        let hold = common::hold(scratch);
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("hold", &hold)],
            "supersede = false",
        )
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = w.ferry.pid();
    let idle = kib(pid, "VmHWM:");
    // The first deployment holds the environment; 10,000 more wait behind it.
    let data = w.dir.path().join("queued.tsv");
    let mut lines = String::new();
    for i in 0..10_001i64 {
        let body = serde_json::to_string(&common::deployment_event(50_000 + i, REPO, "production"))
            .unwrap();
        let _ = writeln!(
            lines,
            "q-{i}\t{}\t{body}",
            common::signature(SECRET, body.as_bytes())
        );
    }
    std::fs::write(&data, lines).unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/webhook", w.ferry.url);
    let text = std::fs::read_to_string(&data).unwrap();
    let mut pending = tokio::task::JoinSet::new();
    for chunk in text.lines().collect::<Vec<_>>().chunks(400) {
        let chunk: Vec<String> = chunk.iter().map(|s| s.to_string()).collect();
        let (client, url) = (client.clone(), url.clone());
        pending.spawn(async move {
            for line in chunk {
                let mut f = line.splitn(3, '\t');
                let (d, sig, body) = (
                    f.next().unwrap(),
                    f.next().unwrap(),
                    f.next().unwrap().to_string(),
                );
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "deployment")
                    .header("x-github-delivery", d)
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        });
    }
    while pending.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queued_now = kib(pid, "VmRSS:");
    let queued_peak = kib(pid, "VmHWM:");
    rss.insert(
        0,
        [
            "Idle RSS after start".into(),
            mb(idle),
            String::new(),
            String::new(),
            "< 20 MB".into(),
        ],
    );
    rss.insert(
        1,
        [
            "RSS with 10,000 deployments queued (peak while they arrived)".into(),
            format!("{} ({} peak)", mb(queued_now), mb(queued_peak)),
            String::new(),
            String::new(),
            String::new(),
        ],
    );
    w.release();
}

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
    if wanted("footprint") {
        eprintln!("footprint ...");
        footprint(&mut rss).await;
    }
    report.extend(rss);
    println!("\nferry {} on {}\n", env!("CARGO_PKG_VERSION"), machine());
    print!("{}", table(&report));
}
