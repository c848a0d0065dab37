//! The package under a real systemd: a debootstrap'd Debian 12 booted by
//! systemd-nspawn, `apt-get install ./ferry_*.deb`, the README's install
//! steps, then a deployment, a reload, an idle watchdog period and a stop,
//! with a journal that must stay free of warnings.
//!
//! Needs root, debootstrap, systemd-nspawn and the package built by
//! `cargo deb`; `bash .ci/run` provides them and runs this test with
//! `--ignored`.

use ferry_testkit as common;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::container::{Container, Text, root_filesystem};
use common::{FakeGitHub, SECRET, Sshd, deployment_event};

const REPO: &str = "octo-org/web";

/// The newest package `cargo deb` built.
fn package() -> PathBuf {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/debian");
    std::fs::read_dir(&dir)
        .ok()
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with("ferry_") && n.ends_with(".deb"))
        })
        .max_by_key(|p| p.metadata().and_then(|m| m.modified()).ok())
        .unwrap_or_else(|| panic!("no ferry_*.deb in {}: run `cargo deb` first", dir.display()))
}

/// `WatchdogSec=` of the unit as shipped.
fn watchdog_sec() -> Duration {
    let unit = include_str!("../systemd/ferry.service");
    let value = unit
        .lines()
        .find_map(|l| l.strip_prefix("WatchdogSec="))
        .expect("the unit sets WatchdogSec");
    humantime::parse_duration(value.trim()).unwrap()
}

async fn deliver(http: &reqwest::Client, url: &str, id: i64) -> u16 {
    let event = deployment_event(id, REPO, "production");
    common::deliver_to(http, url, &event, &format!("live-{id}")).await
}

#[tokio::test(flavor = "multi_thread")]
#[ignore = "boots a container as root: bash .ci/run runs it"]
async fn the_package_installs_serves_reloads_idles_and_stops_cleanly_under_systemd() {
    let started = Instant::now();
    assert!(
        common::is_root(),
        "systemd-nspawn needs root (bash .ci/run runs this test as root)"
    );
    let deb = package();
    let root = root_filesystem();
    let dir = tempfile::tempdir().unwrap();
    let share = dir.path().join("share");
    std::fs::create_dir(&share).unwrap();
    std::fs::copy(&deb, share.join(deb.file_name().unwrap())).unwrap();

    // The host ferry deploys to, and GitHub, both outside the container.
    let client = dir.path().join("unused_client_key");
    common::sshd::keygen(&client);
    let sshd = Sshd::start(&dir.path().join("sshd"), &client.with_extension("pub"));
    let github = FakeGitHub::start("").await;
    // ferry in the container binds this itself, so the test cannot hold
    // it from here (see testkit's `ports`); an address no other test and
    // no outgoing connection uses (those take ports on 127.0.0.1) cannot
    // be taken before ferry starts.
    let listen = "127.0.80.1:8080";
    let url = format!("http://{listen}");
    let scratch = dir.path().join("scratch");
    std::fs::create_dir(&scratch).unwrap();

    let c = Container::boot(&root, &share, dir.path().join("console.log"));
    eprintln!("booted in {:?}", started.elapsed());

    // README, "Install": the package, with nothing else added by hand.
    c.ok("apt-get install -y -qq /mnt/share/ferry_*.deb");
    // README, "From a fresh Debian host to a running service", step 1.
    c.ok(&format!(
        "ssh-keygen -t ed25519 -N '' -C ferry -f /etc/ferry/id_ed25519
         printf '%s\\n' '{SECRET}' | tee /etc/ferry/webhook-secret >/dev/null
         echo '{token}' | tee /etc/ferry/github-token >/dev/null
         chmod 0600 /etc/ferry/id_ed25519 /etc/ferry/webhook-secret /etc/ferry/github-token",
        token = common::github::TOKEN
    ));
    // The host trusts ferry's new key (what ssh-copy-id would do).
    let key = c.ok("cat /etc/ferry/id_ed25519.pub");
    std::fs::write(sshd.dir.join("authorized_keys"), key).unwrap();
    // Step 2: the host's key.
    c.ok(&format!(
        "ssh-keyscan -p {} -H 127.0.0.1 2>/dev/null | tee -a /etc/ferry/known_hosts",
        sshd.port
    ));
    // Step 3: the config, from the example, with the edits the README lists.
    c.ok("install -m 0640 -g ferry /usr/share/doc/ferry/ferry.example.toml /etc/ferry/ferry.toml");
    let config = format!(
        r#"[server]
listen = "{listen}"
public_url = "{url}"

[github]
api_url = "{api}"
webhook_secret_file = "${{CREDENTIALS_DIRECTORY}}/webhook-secret"
token_file = "${{CREDENTIALS_DIRECTORY}}/github-token"

[storage]
dir = "/var/lib/ferry"

[ssh]
identity_file = "${{CREDENTIALS_DIRECTORY}}/id_ed25519"
known_hosts_file = "/etc/ferry/known_hosts"

[[target]]
repository = "{REPO}"
environment = "production"
hosts = ["{host}"]

[[target.steps]]
name = "mark"
run = 'echo "$FERRY_DEPLOYMENT_ID $FERRY_SHA" >> {scratch}/deployed'
"#,
        api = github.url,
        host = sshd.host(),
        scratch = scratch.display(),
    );
    let write = c.sh(&format!("cat > /etc/ferry/ferry.toml <<'EOF'\n{config}EOF"));
    assert!(write.status.success(), "{}", write.text());
    assert_eq!(
        c.ok("stat -c '%U:%G %a' /etc/ferry /etc/ferry/ferry.toml"),
        "root:ferry 750\nroot:ferry 640\n"
    );
    let checked =
        c.ok("CREDENTIALS_DIRECTORY=/etc/ferry ferry check-config --config /etc/ferry/ferry.toml");
    assert!(
        checked.contains("ok: 1 target, 1 host, 1 step"),
        "{checked}"
    );
    // Step 4: run it.
    c.ok("systemctl enable --now ferry");
    assert_eq!(c.property("ferry", "ActiveState"), "active");
    let hosts =
        c.ok("CREDENTIALS_DIRECTORY=/etc/ferry ferry check-hosts --config /etc/ferry/ferry.toml");
    assert!(hosts.contains("ok"), "{hosts}");

    let http = reqwest::Client::new();
    let wait = Duration::from_secs(30);
    assert_eq!(deliver(&http, &url, 5001).await, 202);
    let statuses = github.wait_final(5001, wait).await;
    let states: Vec<&str> = statuses.iter().map(|s| s.state()).collect();
    assert_eq!(
        states,
        ["queued", "in_progress", "success"],
        "{}",
        journal(&c)
    );
    let deployed = std::fs::read_to_string(scratch.join("deployed")).unwrap();
    assert!(deployed.starts_with("5001 "), "{deployed}");
    // The log link works from outside, as plain text for curl.
    let log_url = statuses[2].log_url().unwrap();
    let log = http.get(log_url).send().await.unwrap();
    assert_eq!(log.status(), 200);
    assert!(log.text().await.unwrap().contains("mark"));

    // A reload keeps serving, and the next deployment uses the new config.
    let reload = c.sh("systemctl reload ferry");
    assert!(
        reload.status.success(),
        "{}\n{}",
        reload.text(),
        journal(&c)
    );
    // `systemctl reload` returns once SIGHUP is sent; the unit is
    // "reloading" until ferry says READY=1 again.
    common::eventually(
        "active again after the reload",
        Duration::from_secs(30),
        || async { (c.property("ferry", "ActiveState") == "active").then_some(()) },
    )
    .await;
    assert_eq!(
        http.get(format!("{url}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(deliver(&http, &url, 5002).await, 202);
    let states: Vec<String> = github
        .wait_final(5002, wait)
        .await
        .iter()
        .map(|s| s.state().to_string())
        .collect();
    assert_eq!(states, ["queued", "in_progress", "success"]);

    // An operator steers the running service from a root shell, as the
    // README says (sudo sets SUDO_USER; no $CREDENTIALS_DIRECTORY outside
    // the service): a lock holds the next deployment, an unlock lets it
    // run, and the CLI leaves nothing of root's in the state directory.
    let cli = "env -u CREDENTIALS_DIRECTORY SUDO_USER=alice ferry";
    c.ok(&format!(
        "{cli} lock octo-org/web:production --reason 'live test' --config /etc/ferry/ferry.toml"
    ));
    assert_eq!(deliver(&http, &url, 5003).await, 202);
    github.wait_state(5003, "queued", wait).await;
    // Inside the container there is no /metrics reachable to wait on the
    // runner's rounds; this gives it a few.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let held = github.statuses_of(5003);
    assert_eq!(held.len(), 1, "a locked environment runs nothing: {held:?}");
    assert!(
        held[0].description().contains("locked by alice"),
        "{held:?}"
    );
    let locks = c.ok(&format!("{cli} locks --config /etc/ferry/ferry.toml"));
    assert!(
        locks.contains("alice") && locks.contains("live test"),
        "{locks}"
    );
    c.ok(&format!(
        "{cli} unlock octo-org/web:production --config /etc/ferry/ferry.toml"
    ));
    let states: Vec<String> = github
        .wait_final(5003, wait)
        .await
        .iter()
        .map(|s| s.state().to_string())
        .collect();
    assert_eq!(states, ["queued", "in_progress", "success"]);
    let listed = c.ok(&format!("{cli} deployments --config /etc/ferry/ferry.toml"));
    assert!(listed.contains("5003"), "{listed}");
    // So can a member of group ferry, without root.
    c.ok("useradd --no-create-home --groups ferry oncall");
    // Its name comes from its uid, whatever USER and LOGNAME say.
    let member = "runuser -u oncall -- env -u SUDO_USER USER=someone-else LOGNAME= ferry";
    c.ok(&format!(
        "{member} lock octo-org/web:production --config /etc/ferry/ferry.toml"
    ));
    assert!(
        c.ok(&format!("{member} locks --config /etc/ferry/ferry.toml"))
            .contains("oncall")
    );
    c.ok(&format!(
        "{member} unlock octo-org/web:production --config /etc/ferry/ferry.toml"
    ));
    // Deploy and roll back from the command line, with no credentials:
    // the service asks GitHub, whose webhook then comes to the service.
    github.set_webhook(&format!("{url}/webhook"), SECRET);
    github.set_ref("main", "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");
    let deployed = c.ok(&format!(
        "{cli} deploy octo-org/web:production main --force --follow --config /etc/ferry/ferry.toml"
    ));
    assert!(deployed.contains("success"), "{deployed}");
    let rolled = c.ok(&format!(
        "{member} rollback octo-org/web:production --to 5001 --follow --config /etc/ferry/ferry.toml"
    ));
    assert!(rolled.contains("success"), "{rolled}");
    let creates = github.creates();
    assert_eq!(creates.len(), 2, "{creates:?}");
    assert_eq!(creates[0].body["description"], "Deploy by alice");
    assert_eq!(
        creates[1].body["description"],
        "Rollback to f95f852 (deployment 5001) by oncall"
    );
    // One deployment's story, and the listings for scripts, as a member.
    let shown = c.ok(&format!(
        "{member} show 5003 --config /etc/ferry/ferry.toml"
    ));
    assert!(
        shown.contains("deployment 5003: octo-org/web to production")
            && shown.contains("[on GitHub since "),
        "{shown}"
    );
    let listed = c.ok(&format!(
        "{member} deployments --json --state success --config /etc/ferry/ferry.toml"
    ));
    assert!(listed.lines().all(|l| l.starts_with("{\"")), "{listed}");
    assert_eq!(
        c.ok(&format!(
            "{member} locks --json --config /etc/ferry/ferry.toml"
        )),
        ""
    );
    // Delivery metrics as a member: the successes above, and the rollback.
    let stats = c.ok(&format!(
        "{member} stats --json --environment octo-org/web:production --config /etc/ferry/ferry.toml"
    ));
    let stats: serde_json::Value = serde_json::from_str(stats.trim()).unwrap();
    assert!(stats["successes"].as_u64().unwrap() >= 3, "{stats}");
    assert_eq!(stats["rollbacks"], 1, "{stats}");
    // The dashboard and the rules are in the package.
    c.ok("test -s /usr/share/ferry/grafana/ferry.json && test -s /usr/share/ferry/prometheus/ferry-rules.yml");
    assert_eq!(c.ok("find /var/lib/ferry -user root"), "");
    assert_eq!(c.ok("find /var/lib/ferry ! -group ferry"), "");
    // A closed output ends a command quietly.
    let piped = c.sh(&format!(
        "{cli} deployments --config /etc/ferry/ferry.toml | head -c 1 >/dev/null"
    ));
    assert!(!piped.text().contains("panicked"), "{}", piped.text());
    // The running ferry wrote each action to the journal, naming who.
    common::eventually("the audit lines in the journal", wait, || async {
        let alice = c.ok("journalctl -u ferry ACTOR=alice -o cat --no-pager");
        let oncall = c.ok("journalctl -u ferry ACTOR=oncall -o cat --no-pager");
        let all = alice.contains("alice locked octo-org/web:production: live test")
            && alice.contains("alice unlocked octo-org/web:production")
            && oncall.contains("oncall locked octo-org/web:production")
            && oncall.contains("oncall unlocked octo-org/web:production")
            && alice.contains("alice asked for a deployment of main to octo-org/web:production")
            && oncall.contains("oncall asked for a rollback of octo-org/web:production to f95f852");
        all.then_some(())
            .ok_or_else(|| format!("{alice}\n{oncall}\n{}", journal(&c)))
    })
    .await;

    // Idle past the watchdog's interval: nothing restarts.
    let idle = watchdog_sec() + Duration::from_secs(5);
    tokio::time::sleep(idle).await;
    assert_eq!(c.property("ferry", "NRestarts"), "0", "{}", journal(&c));
    assert_eq!(c.property("ferry", "ActiveState"), "active");

    // The journal names deployments in its text and in a field an operator
    // can type.
    let by_field = c.ok("journalctl -u ferry DEPLOYMENT=5001 -o cat --no-pager");
    for line in [
        "deployment 5001 accepted: octo-org/web to production",
        "deployment 5001 started",
    ] {
        assert!(by_field.contains(line), "{line:?} not in:\n{by_field}");
    }
    assert!(!by_field.contains("5002"), "{by_field}");

    c.ok("systemctl stop ferry");
    assert_eq!(c.property("ferry", "Result"), "success");
    assert_eq!(c.property("ferry", "ActiveState"), "inactive");

    // The whole healthy run, systemd's own lines about the unit included.
    let warnings = c.ok("journalctl -u ferry -p warning -o cat --no-pager");
    assert!(
        warnings.trim().is_empty(),
        "warnings or errors in a healthy run:\n{warnings}\n\nthe whole journal:\n{}",
        journal(&c)
    );
    assert!(github.violations().is_empty(), "{:?}", github.violations());
    eprintln!("live systemd test took {:?}", started.elapsed());
}

fn journal(c: &Container) -> String {
    c.sh("journalctl -u ferry -o short-monotonic --no-pager")
        .text()
}
