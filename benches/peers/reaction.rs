//! Reaction time: from the webhook to the first step running on a host.

use super::*;

pub(crate) fn plain_ssh(w: &World, sshd: &Sshd, address: &str) -> Command {
    let mut c = ssh_to(w, sshd, address, &[]);
    c.arg("true");
    c
}

/// `ssh` to `address` with the world's key and known hosts, `options`
/// before the destination; the command is the caller's to add.
pub(crate) fn ssh_to(w: &World, sshd: &Sshd, address: &str, options: &[String]) -> Command {
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
    .args(options)
    .args([
        "-p",
        &sshd.port.to_string(),
        &format!("{}@{address}", sshd.user),
    ]);
    c
}

/// Medians over `rounds` one-host deployments of `true`, one after the
/// other: 202 -> in_progress, 202 -> success, and a plain `ssh host true`
/// run between deployments.
pub(crate) async fn reaction_rounds(ssh: &str, rounds: i64) -> (Duration, Duration, Duration) {
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

pub(crate) async fn reaction(report: &mut Vec<[String; 5]>) {
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
