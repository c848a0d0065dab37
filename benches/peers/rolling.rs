//! A rolling deploy with checks: 20 hosts one at a time, a check on each
//! before the next starts. What ferry adds per batch beyond the commands'
//! own time, against the same sequence of plain `ssh` commands over
//! connections already open (ControlMaster), measured in the same run.

use super::*;

const HOSTS: usize = 20;
/// The check's own time on each host: `sleep 0.1`.
const CHECK: Duration = Duration::from_millis(100);
const ROUNDS: i64 = 5;

fn rolling_setup() -> Setup {
    Setup {
        // sshd listens on 16 addresses at most.
        sshds: vec![loopback(2, 16), loopback(18, 4)],
        // Debian's bash reads ~/.bashrc for every command sshd runs; this
        // machine's root .bashrc starts pyenv (~120 ms, varying), which
        // would be most of what is measured. SHLVL=1 makes bash skip it, for
        // ferry and ssh alike: what is left is the tools' own time.
        sshd_config: "MaxStartups 100\nSetEnv SHLVL=1".into(),
        ..Setup::default()
    }
}

/// Per batch: (wall time − the checks' own time) / batches.
fn per_batch(total: Duration) -> Duration {
    total.saturating_sub(CHECK * HOSTS as u32) / HOSTS as u32
}

/// From a deployment's log: how long ferry took from each batch's passed
/// check to the next batch's first step, the time that is ferry's alone.
fn between_batches(w: &World, id: i64) -> Vec<Duration> {
    let log = w.dir.path().join(format!("state/logs/{id}.jsonl"));
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let mut passed = None;
    let mut gaps = Vec::new();
    for line in text.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let (t, said) = (v["t"].as_i64().unwrap(), v["text"].as_str().unwrap_or(""));
        if said.starts_with("check try") && said.contains("passed") {
            passed = Some(t);
        } else if said == "step started"
            && let Some(p) = passed.take()
        {
            gaps.push(Duration::from_millis((t - p).max(0) as u64));
        }
    }
    assert_eq!(gaps.len(), HOSTS - 1, "{}", log.display());
    gaps
}

/// `true` then the check on each host in turn, over kept connections.
fn ssh_rolling(w: &World, sshds: &[&Sshd], control: &Path) -> Duration {
    let options = [
        "-o".to_string(),
        "ControlMaster=auto".to_string(),
        "-o".to_string(),
        "ControlPersist=120".to_string(),
        "-o".to_string(),
        format!("ControlPath={}/%C", control.display()),
    ];
    let t = Instant::now();
    for s in sshds {
        for a in &s.addresses {
            for command in ["true", "sleep 0.1"] {
                let (ok, out) = run(ssh_to(w, s, a, &options).arg(command));
                assert!(ok, "{out}");
            }
        }
    }
    t.elapsed()
}

pub(crate) async fn rolling(report: &mut Vec<[String; 5]>) {
    let w = World::build_fleet(rolling_setup(), |sshds, _| {
        target(
            REPO,
            "production",
            &fleet_hosts(sshds),
            &[("noop", "true")],
            "parallel = 1\n[[target.checks]]\nname = \"healthz\"\nrun = \"sleep 0.1\"\nwithin = \"10s\"\ninterval = \"1s\"\n",
        )
    })
    .await;
    let (mut ferry, mut gaps) = (Vec::new(), Vec::new());
    for i in 0..ROUNDS {
        let id = 3000 + i;
        w.deploy(id, REPO, "production").await;
        let statuses = w.github.wait_final(id, Duration::from_secs(120)).await;
        let at = |state: &str| {
            statuses
                .iter()
                .find(|p| p.state() == state)
                .map(|p| p.at)
                .unwrap()
        };
        assert_eq!(statuses.last().unwrap().state(), "success");
        ferry.push(at("success") - at("in_progress"));
        if i > 0 {
            gaps.extend(between_batches(&w, id));
        }
    }
    gaps.sort();
    // The first round opened the connections; the others found them open.
    let cold = ferry[0];
    let warm = ferry[1..].to_vec();
    let worst = *warm.iter().max().unwrap();
    let sshds: Vec<&Sshd> = std::iter::once(&w.sshd).chain(w.fleet.iter()).collect();
    let control = tempfile::tempdir_in("/tmp").unwrap();
    let first_ssh = ssh_rolling(&w, &sshds, control.path());
    let ssh: Vec<Duration> = (0..ROUNDS - 1)
        .map(|_| ssh_rolling(&w, &sshds, control.path()))
        .collect();
    let best_ssh = *ssh.iter().min().unwrap();
    let (f, s) = (
        per_batch(median(warm.clone())),
        per_batch(median(ssh.clone())),
    );
    let beyond = |a: Duration, b: Duration| (a.as_secs_f64() - b.as_secs_f64()) * 1000.0;
    report.push([
        format!(
            "Rolling deploy, {HOSTS} hosts one at a time, `true` and a 100 ms check on each: time per batch beyond the check (median of {} rounds)",
            ROUNDS - 1
        ),
        ms(f),
        format!("ssh, same commands over open connections {}", ms(s)),
        format!("{:.2}x ({:+.0} ms)", f.as_secs_f64() / s.as_secs_f64(), beyond(f, s)),
        "ferry - ssh <= 50 ms per batch".into(),
    ]);
    let (worst_f, best_s) = (per_batch(worst), per_batch(best_ssh));
    report.push([
        "Rolling deploy, same: ferry's worst round against ssh's best".into(),
        ms(worst_f),
        ms(best_s),
        format!(
            "{:.2}x ({:+.0} ms)",
            worst_f.as_secs_f64() / best_s.as_secs_f64(),
            beyond(worst_f, best_s)
        ),
        "ferry - ssh <= 50 ms per batch".into(),
    ]);
    report.push([
        "Rolling deploy, same: ferry's own time from a batch's passed check to the next batch's step (its log), median / worst".into(),
        format!("{} / {}", ms(gaps[gaps.len() / 2]), ms(*gaps.last().unwrap())),
        String::new(),
        String::new(),
        "<= 50 ms per batch".into(),
    ]);
    let (cold_f, cold_s) = (per_batch(cold), per_batch(first_ssh));
    report.push([
        "Rolling deploy, first round (each host's connection opened in its batch)".into(),
        ms(cold_f),
        format!("ssh opening each connection {}", ms(cold_s)),
        format!(
            "{:.2}x ({:+.0} ms)",
            cold_f.as_secs_f64() / cold_s.as_secs_f64(),
            beyond(cold_f, cold_s)
        ),
        String::new(),
    ]);
}
