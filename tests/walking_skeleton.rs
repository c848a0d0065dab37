//! The whole path: a signed deployment event runs SSH steps on a real sshd
//! and reports back to a GitHub-like API.

use ferry_testkit as common;

use std::time::Duration;

use common::{SECRET, World, deployment_event, fixture, signature, target};
use serde_json::json;

const REPO: &str = "Codertocat/Hello-World";
const WAIT: Duration = Duration::from_secs(60);

fn states(statuses: &[common::github::Posted]) -> Vec<&str> {
    statuses.iter().map(|p| p.state()).collect()
}

#[tokio::test(flavor = "multi_thread")]
async fn happy_path_with_an_octokit_payload() {
    let w = World::start(|sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[
                (
                    "write",
                    &format!(
                        "printf '%s' \"$FERRY_SHA\" > {}/deployed-$FERRY_DEPLOYMENT_ID",
                        scratch.display()
                    ),
                ),
                (
                    "greet",
                    "echo \"hello from $FERRY_HOST for $FERRY_CREATOR\"; pwd",
                ),
            ],
            "environment_url = \"https://hello.example.com\"",
        )
    })
    .await;
    let event = fixture("deployment/payload.json");
    let (code, text) = w.deliver("deployment", &event).await;
    assert_eq!(code, 202, "{text}");

    let statuses = w.github.wait_final(145988746, WAIT).await;
    assert_eq!(
        states(&statuses),
        ["queued", "in_progress", "success"],
        "{statuses:?}"
    );
    w.assert_no_violations();
    assert!(statuses.iter().all(|s| s.repo == REPO));
    let success = &statuses[2];
    assert!(
        success
            .description()
            .starts_with("Deployed f95f852 to 1 host in"),
        "{}",
        success.description()
    );
    assert_eq!(success.body["environment_url"], "https://hello.example.com");
    assert_eq!(success.body["auto_inactive"], true);
    let log_url = statuses[1].log_url().expect("in_progress carries log_url");
    assert_eq!(success.log_url(), Some(log_url));
    assert!(log_url.starts_with(&format!("{}/deployments/145988746/log?token=", w.ferry.url)));

    // The remote side effect happened.
    let written = std::fs::read_to_string(w.scratch().join("deployed-145988746")).unwrap();
    assert_eq!(written, "f95f852bd8fca8fcc58a9a2d6c842781e32a215e");

    // The log link serves the step output; a wrong token gets 404.
    let text = w.log_text(log_url).await;
    let host = w.sshd.display();
    assert!(
        text.contains(&format!("{host} greet: hello from {host} for Codertocat")),
        "{text}"
    );
    assert!(text.contains("state: success"), "{text}");
    let wrong = log_url.replace("token=", "token=0");
    assert_eq!(w.http.get(&wrong).send().await.unwrap().status(), 404);
    let none = format!("{}/deployments/145988746/log", w.ferry.url);
    assert_eq!(w.http.get(&none).send().await.unwrap().status(), 404);

    // The CLI sees it too.
    let out = w.cli(&["deployments"]);
    let listing = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{out:?}");
    assert!(
        listing.contains("145988746") && listing.contains("success"),
        "{listing}"
    );
    let out = w.cli(&["logs", "145988746"]);
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("hello from"),
        "{out:?}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_failing_step_stops_the_deployment_and_names_step_and_host() {
    let w = World::start(|sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[
                ("build", "echo building"),
                (
                    "migrate",
                    "echo 'relation users does not exist' >&2; exit 3",
                ),
                ("restart", &format!("touch {}/restarted", scratch.display())),
            ],
            "",
        )
    })
    .await;
    let (code, _) = w
        .deliver("deployment", &deployment_event(7, REPO, "production"))
        .await;
    assert_eq!(code, 202);
    let statuses = w.github.wait_final(7, WAIT).await;
    assert_eq!(states(&statuses), ["queued", "in_progress", "failure"]);
    let failure = &statuses[2];
    assert_eq!(
        failure.description(),
        format!("Step 'migrate' failed on {} (exit 3)", w.sshd.display())
    );
    assert!(!w.scratch().join("restarted").exists(), "a later step ran");
    let log = w.log_text(failure.log_url().unwrap()).await;
    assert!(
        log.contains("migrate: relation users does not exist"),
        "{log}"
    );
    w.assert_no_violations();
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_signatures_and_bodies_are_refused_and_ferry_keeps_serving() {
    let w = World::start(|sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("mark", &format!("touch {}/ran", scratch.display()))],
            "",
        )
    })
    .await;
    let body = serde_json::to_vec(&fixture("deployment/payload.json")).unwrap();
    let base = |sig: Option<String>| {
        let mut h = vec![
            ("content-type", "application/json".to_string()),
            ("x-github-event", "deployment".to_string()),
            ("x-github-delivery", "sig-test".to_string()),
        ];
        if let Some(s) = sig {
            h.push(("x-hub-signature-256", s));
        }
        h
    };
    // Wrong secret, missing signature, SHA-1 only.
    assert_eq!(
        w.post(&base(Some(signature("wrong", &body))), body.clone())
            .await
            .0,
        401
    );
    assert_eq!(w.post(&base(None), body.to_vec()).await.0, 401);
    let mut sha1_only = base(None);
    sha1_only.push((
        "x-hub-signature",
        "sha1=0123456789abcdef0123456789abcdef01234567".into(),
    ));
    assert_eq!(w.post(&sha1_only, body.to_vec()).await.0, 401);
    // Signed, but over a different body.
    let mut tampered = body.clone();
    tampered.extend_from_slice(b" ");
    assert_eq!(
        w.post(&base(Some(signature(SECRET, &body))), tampered)
            .await
            .0,
        401
    );

    // Over 25 MiB.
    let huge = vec![b' '; 25 * 1024 * 1024 + 1];
    let (code, _) = w.post(&base(Some(signature(SECRET, &huge))), huge).await;
    assert_eq!(code, 413);
    // Signed, not JSON; signed, no event header.
    let junk = b"this is not json".to_vec();
    let (code, _) = w
        .post(&base(Some(signature(SECRET, &junk))), junk.clone())
        .await;
    assert_eq!(code, 400);
    let no_event: Vec<_> = base(Some(signature(SECRET, &body)))
        .into_iter()
        .filter(|(k, _)| *k != "x-github-event")
        .collect();
    assert_eq!(w.post(&no_event, body.clone()).await.0, 400);

    // Still serving; nothing was queued, run or posted.
    assert_eq!(
        w.http
            .get(format!("{}/healthz", w.ferry.url))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(w.github.statuses().is_empty());
    assert!(!w.scratch().join("ran").exists());
    let out = w.cli(&["deployments"]);
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).lines().count(),
        1,
        "only the header: {out:?}"
    );

    // And the same body correctly signed is accepted.
    assert_eq!(
        w.post(&base(Some(signature(SECRET, &body))), body.clone())
            .await
            .0,
        202
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn ping_and_deployments_no_target_owns_get_200_and_no_status() {
    let w =
        World::start(|sshd, _| target(REPO, "production", &[sshd.host()], &[("noop", "true")], ""))
            .await;
    for ping in [
        "ping/payload.json",
        "ping/with-app_id.payload.json",
        "ping/with-organization.payload.json",
    ] {
        let (code, text) = w.deliver("ping", &fixture(ping)).await;
        assert_eq!(code, 200, "{ping}: {text}");
    }
    let (code, _) = w
        .deliver(
            "deployment",
            &deployment_event(11, "someone/else", "production"),
        )
        .await;
    assert_eq!(code, 200);
    let (code, _) = w
        .deliver("deployment", &deployment_event(12, REPO, "staging"))
        .await;
    assert_eq!(code, 200);
    let (code, _) = w
        .deliver(
            "deployment_status",
            &fixture("deployment_status/payload.json"),
        )
        .await;
    assert_eq!(code, 200);
    let mut other_action = deployment_event(13, REPO, "production");
    other_action["action"] = "deleted".into();
    assert_eq!(w.deliver("deployment", &other_action).await.0, 200);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(w.github.statuses().is_empty(), "{:?}", w.github.statuses());
}

#[tokio::test(flavor = "multi_thread")]
async fn the_same_delivery_or_deployment_twice_runs_once() {
    let w = World::start(|sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[(
                "count",
                &format!(
                    "echo \"$FERRY_DEPLOYMENT_ID\" >> {}/runs",
                    scratch.display()
                ),
            )],
            "",
        )
    })
    .await;
    let event = deployment_event(21, REPO, "production");
    assert_eq!(w.deliver_as("deployment", &event, "dup-1").await.0, 202);
    assert_eq!(
        w.deliver_as("deployment", &event, "dup-1").await.0,
        200,
        "redelivery"
    );
    assert_eq!(
        w.deliver_as("deployment", &event, "dup-2").await.0,
        200,
        "same deployment, new delivery"
    );
    w.github.wait_final(21, WAIT).await;
    // Duplicates arriving after the run must not start it again either.
    assert_eq!(w.deliver_as("deployment", &event, "dup-3").await.0, 200);
    tokio::time::sleep(Duration::from_millis(800)).await;
    let runs = std::fs::read_to_string(w.scratch().join("runs")).unwrap();
    assert_eq!(runs, "21\n");
    assert_eq!(
        states(&w.github.statuses_of(21)),
        ["queued", "in_progress", "success"]
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn hostile_ref_and_payload_reach_the_step_verbatim_and_run_nothing() {
    let w = World::start(|sshd, scratch| {
        let s = scratch.display();
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[(
                "record",
                &format!(
                    "printf '%s' \"$FERRY_REF\" > {s}/ref\nprintf '%s' \"$FERRY_PAYLOAD\" > {s}/payload\nprintf '%s' \"$FERRY_ENVIRONMENT\" > {s}/env"
                ),
            )],
            "",
        )
    })
    .await;
    let pwned = w.scratch().join("pwned");
    let p = pwned.display();
    let evil_ref = format!("x;touch${{IFS}}{p}");
    let payload = json!({
        "a": format!("$(touch {p})"),
        "b": format!("`touch {p}`"),
        "c": format!("'; touch {p}; echo '"),
        "d": "\"quoted\" \\ back\\slash\nnewline",
    });
    let mut event = deployment_event(31, REPO, "production");
    event["deployment"]["ref"] = evil_ref.clone().into();
    event["deployment"]["payload"] = payload.clone();
    assert_eq!(w.deliver("deployment", &event).await.0, 202);
    let statuses = w.github.wait_final(31, WAIT).await;
    assert_eq!(statuses.last().unwrap().state(), "success", "{statuses:?}");
    assert!(!pwned.exists(), "a webhook value was run as a command");
    assert_eq!(
        std::fs::read_to_string(w.scratch().join("ref")).unwrap(),
        evil_ref
    );
    assert_eq!(
        std::fs::read_to_string(w.scratch().join("payload")).unwrap(),
        payload.to_string()
    );
    assert_eq!(
        std::fs::read_to_string(w.scratch().join("env")).unwrap(),
        "production"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn form_encoded_deliveries_are_verified_over_the_raw_body() {
    let w =
        World::start(|sshd, _| target(REPO, "production", &[sshd.host()], &[("noop", "true")], ""))
            .await;
    let json = serde_json::to_string(&deployment_event(41, REPO, "production")).unwrap();
    let body = form_urlencoded::Serializer::new(String::new())
        .append_pair("payload", &json)
        .finish()
        .into_bytes();
    let headers = |sig: String| {
        vec![
            (
                "content-type",
                "application/x-www-form-urlencoded".to_string(),
            ),
            ("x-github-event", "deployment".to_string()),
            ("x-github-delivery", "form-1".to_string()),
            ("x-hub-signature-256", sig),
        ]
    };
    // A signature over the JSON inside is not a signature over the body.
    assert_eq!(
        w.post(&headers(signature(SECRET, json.as_bytes())), body.clone())
            .await
            .0,
        401
    );
    assert_eq!(
        w.post(&headers(signature(SECRET, &body)), body).await.0,
        202
    );
    let statuses = w.github.wait_final(41, WAIT).await;
    assert_eq!(states(&statuses), ["queued", "in_progress", "success"]);
}

#[test]
fn check_config_and_serve_name_a_misspelt_key() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        common::example_config(dir.path()).replace("connect_timeout = ", "conect_timeout = ");
    let path = dir.path().join("ferry.toml");
    std::fs::write(&path, &text).unwrap();
    let line = text
        .lines()
        .position(|l| l.starts_with("conect_timeout"))
        .unwrap()
        + 1;
    let expected = format!(
        "{}:{line}: ssh.conect_timeout: unknown key 'conect_timeout' (did you mean 'connect_timeout'?)",
        path.display()
    );
    for command in ["check-config", "serve"] {
        let out = std::process::Command::new(common::ferry_binary())
            .args([command, "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{command}: {stderr}");
        assert!(stderr.contains(&expected), "{command}: {stderr}");
    }
}

/// A host without root certificates (no ca-certificates package) stops
/// `serve` with one line that names the fix, not rustls's "builder error".
#[test]
fn serve_without_root_certificates_says_how_to_fix_it() {
    let config = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("config")
        .join("ferry.example.toml");
    let empty = tempfile::tempdir().unwrap();
    let out = std::process::Command::new(common::ferry_binary())
        .args(["serve", "--config"])
        .arg(&config)
        // rustls-native-certs reads only these when they are set.
        .env("SSL_CERT_FILE", empty.path().join("none.pem"))
        .env("SSL_CERT_DIR", empty.path())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let last = stderr.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("error: no root certificates found on this system")
            && last.contains("apt-get install ca-certificates"),
        "{stderr}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn host_key_problems_are_errors_naming_the_host_and_cause() {
    let w = World::start(|sshd, scratch| {
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("mark", &format!("touch {}/ran", scratch.display()))],
            "",
        )
    })
    .await;
    let known_hosts = w.dir.path().join("known_hosts");
    // Another key for the same host and port: a man in the middle, to ssh.
    let other = w.dir.path().join("other_key");
    common::sshd::keygen(&other);
    let other_pub = std::fs::read_to_string(other.with_extension("pub")).unwrap();
    std::fs::write(
        &known_hosts,
        format!("[127.0.0.1]:{} {}", w.sshd.port, other_pub),
    )
    .unwrap();
    w.deploy(51, REPO, "production").await;
    let statuses = w.github.wait_final(51, WAIT).await;
    assert_eq!(states(&statuses), ["queued", "error"], "no step started");
    let host = w.sshd.display();
    assert!(
        statuses[1]
            .description()
            .starts_with(&format!("Cannot connect to {host}: host key mismatch")),
        "{}",
        statuses[1].description()
    );
    assert!(statuses[1].log_url().is_some());
    // What the host offered, and the line it contradicts, where an
    // operator checks: the deployment's log.
    let log = w.log_text(statuses[1].log_url().unwrap()).await;
    let offered = common::sshd::fingerprint(&w.sshd.dir.join("host_key.pub"));
    assert!(log.contains(&offered), "{offered} not in:\n{log}");
    assert!(
        log.contains(&format!("contradicts {}:1", known_hosts.display())),
        "{log}"
    );

    std::fs::write(&known_hosts, "").unwrap();
    w.deploy(52, REPO, "production").await;
    let statuses = w.github.wait_final(52, WAIT).await;
    assert!(
        statuses[1]
            .description()
            .starts_with(&format!("Cannot connect to {host}: unknown host key")),
        "{}",
        statuses[1].description()
    );
    // The key it offered and the exact command, in the log and in the
    // journal at warning priority.
    let log = w.log_text(statuses[1].log_url().unwrap()).await;
    let keyscan = format!(
        "ssh-keyscan -H -p {} 127.0.0.1 >> {}",
        w.sshd.port,
        known_hosts.display()
    );
    assert!(log.contains(&offered), "{offered} not in:\n{log}");
    assert!(log.contains(&keyscan), "{log}");
    let journal = w.ferry.output();
    assert!(
        journal
            .lines()
            .any(|l| l.contains("WARN") && l.contains(&offered) && l.contains(&keyscan)),
        "{journal}"
    );
    let hosts = w.cli(&["check-hosts"]);
    let hosts = String::from_utf8_lossy(&hosts.stdout);
    assert!(
        hosts.contains(&offered) && hosts.contains(&keyscan),
        "{hosts}"
    );
    assert!(!w.scratch().join("ran").exists());
    w.assert_no_violations();
}
