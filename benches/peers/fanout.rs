//! Fan-out: one deployment to many hosts, against plain ssh in parallel.

use super::*;

pub(crate) fn fleet_setup(max_connections: usize) -> Setup {
    Setup {
        // 50 hosts: sshd listens on 16 addresses at most.
        sshds: vec![
            loopback(2, 16),
            loopback(18, 16),
            loopback(34, 16),
            loopback(50, 2),
        ],
        // Room for every tool to open all 50 at once. SHLVL=1: Debian's
        // bash then skips ~/.bashrc (this machine's starts pyenv, ~120 ms
        // a host), the lab hosts' shell start-up, not ferry's or ssh's.
        sshd_config: "MaxStartups 100\nSetEnv SHLVL=1".into(),
        // Cold: every deployment opens its connections, as parallel-ssh
        // does every run (none is left open for the next).
        ssh: format!("max_connections = {max_connections}\nidle_timeout = \"0s\""),
        ..Setup::default()
    }
}

pub(crate) fn fleet_hosts(sshds: &[&Sshd]) -> Vec<String> {
    sshds.iter().flat_map(|s| s.hosts()).collect()
}

/// Runs one 50-host deployment of `true` three times, each opening its
/// connections; the wall times from the 202 to `success` with the CPU the
/// whole machine spent meanwhile, and ferry's peak RSS.
pub(crate) async fn ferry_fanout(
    max_connections: usize,
) -> (Vec<(Duration, Duration)>, u64, World) {
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
        let cpu = machine_cpu();
        w.deploy(2000 + i, REPO, "production").await;
        let t = Instant::now();
        let statuses = w
            .github
            .wait_final(2000 + i, Duration::from_secs(120))
            .await;
        let last = statuses.last().unwrap();
        assert_eq!(last.state(), "success", "{}", last.description());
        times.push((last.at - t, machine_cpu() - cpu));
    }
    let peak = kib(w.ferry.pid(), "VmHWM:");
    (times, peak, w)
}

/// CPU time the whole machine has spent (user, system, interrupts; not
/// idle or waiting), from /proc/stat: the hosts' sshd and shells, ssh,
/// ferry and the tools alike.
pub(crate) fn machine_cpu() -> Duration {
    let stat = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let ticks: u64 = stat
        .lines()
        .next()
        .unwrap_or_default()
        .split_whitespace()
        .skip(1)
        .enumerate()
        // user nice system idle iowait irq softirq steal
        .filter(|(i, _)| matches!(i, 0 | 1 | 2 | 5 | 6))
        .filter_map(|(_, v)| v.parse::<u64>().ok())
        .sum();
    // USER_HZ is 100 on Linux.
    Duration::from_millis(ticks * 10)
}

pub(crate) fn timed(mut cmd: Command) -> Duration {
    let t = Instant::now();
    let (ok, out) = run(&mut cmd);
    let took = t.elapsed();
    assert!(ok, "{cmd:?}: {out}");
    took
}

pub(crate) async fn fanout(report: &mut Vec<[String; 5]>, rss: &mut Vec<[String; 5]>) {
    let (default_cap, _, _) = ferry_fanout(ferry::config::DEFAULT_MAX_CONNECTIONS).await;
    let default_cap = median(default_cap.into_iter().map(|(t, _)| t).collect());
    let (ferry_runs, peak, w) = ferry_fanout(50).await;
    let ferry_times: Vec<Duration> = ferry_runs.iter().map(|(t, _)| *t).collect();
    let ferry_cpu = median(ferry_runs.iter().map(|(_, c)| *c).collect());
    let ferry = median(ferry_times.clone());
    let ferry_worst = ferry_times.iter().copied().max().unwrap();
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
    let mut pssh_cpu = Vec::new();
    let pssh_times: Vec<Duration> = (0..3)
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
            let cpu = machine_cpu();
            let took = timed(c);
            pssh_cpu.push(machine_cpu() - cpu);
            took
        })
        .collect();
    let pssh_cpu = median(pssh_cpu);
    let pssh = median(pssh_times.clone());
    let pssh_best = pssh_times.iter().copied().min().unwrap();

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
    // bench/run installs Ansible; a run by hand without it leaves its row out.
    let have_ansible = Command::new("ansible").arg("--version").output().is_ok();
    let ansible = have_ansible.then(|| {
        let cp = tempfile::tempdir_in("/tmp").unwrap();
        median(
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
        )
    });
    report.push([
        "Fan-out: `true` on 50 hosts, every connection new, wall time (median of 3)".into(),
        format!("{} (all at once)", secs(ferry)),
        format!("parallel-ssh -p 50 {}", secs(pssh)),
        format!("{:.2}x", ferry.as_secs_f64() / pssh.as_secs_f64()),
        "<= 1.0x".into(),
    ]);
    report.push([
        "Fan-out, same: CPU the whole machine spent per run (hosts included), median".into(),
        secs(ferry_cpu),
        format!("parallel-ssh -p 50 {}", secs(pssh_cpu)),
        format!("{:.2}x", ferry_cpu.as_secs_f64() / pssh_cpu.as_secs_f64()),
        String::new(),
    ]);
    report.push([
        "Fan-out, same: ferry's worst round against parallel-ssh's best".into(),
        secs(ferry_worst),
        format!("parallel-ssh -p 50 {}", secs(pssh_best)),
        format!(
            "{:.2}x",
            ferry_worst.as_secs_f64() / pssh_best.as_secs_f64()
        ),
        "<= 1.0x".into(),
    ]);
    if let Some(ansible) = ansible {
        report.push([
            "Fan-out, same run".into(),
            secs(ferry),
            format!("ansible -m command -f 50 {}", secs(ansible)),
            format!("{:.1}x faster", ansible.as_secs_f64() / ferry.as_secs_f64()),
            ">= 5x faster".into(),
        ]);
    }
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
