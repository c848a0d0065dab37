//! The config checker's tests: each reads a whole file as an operator
//! writes it and checks every problem it names. One file (over 400 lines)
//! because they share the base config and its helpers; the newer sections
//! have files of their own (auto_deploy_tests.rs, notify_tests.rs).

use super::*;

fn no_env(_: &str) -> Option<String> {
    None
}

/// A valid config whose files exist in `dir`, with `extra` appended.
pub(super) fn write_config(dir: &Path, body: &str) -> PathBuf {
    std::fs::write(dir.join("secret"), "s3cret\n\nold-secret\n").unwrap();
    std::fs::write(dir.join("token"), "ghp_x\n").unwrap();
    std::fs::write(
        dir.join("known_hosts"),
        "web1.internal ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDnmjz7QvS0T4yC7c+2nGZ0hn8Ou2L1e4P/8aR5IkO9h\n",
    )
    .unwrap();
    let path = dir.join("ferry.toml");
    std::fs::write(&path, body).unwrap();
    path
}

pub(super) const BASE: &str = r#"
[server]
public_url = "https://deploy.example.com/"

[github]
webhook_secret_file = "secret"
token_file = "token"

[ssh]
known_hosts_file = "known_hosts"

[[target]]
repository = "octo-org/web"
environment = "production"
hosts = ["deploy@web1.internal", "deploy@web2.internal:2222", "[::1]:22"]

[[target.steps]]
name = "restart"
run = "true"
"#;

pub(super) fn parse(body: &str) -> Result<Config, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), body);
    Config::parse(body, &path, &no_env)
}

#[test]
fn defaults_as_spec_says() {
    let c = parse(BASE).unwrap();
    assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.server.public_url, "https://deploy.example.com");
    assert_eq!(c.github.api_url, "https://api.github.com");
    assert_eq!(
        c.github.webhook_secrets.len(),
        2,
        "one secret per line, blank lines skipped"
    );
    assert!(matches!(&c.github.auth, GitHubAuth::Token(t) if t.expose() == b"ghp_x"));
    assert_eq!(c.storage.dir, PathBuf::from("/var/lib/ferry"));
    assert_eq!(c.storage.log_retention, Duration::from_secs(30 * 86400));
    assert_eq!(c.runner.max_concurrent.get(), 8);
    assert_eq!(c.runner.shutdown_grace, Duration::from_secs(60));
    assert_eq!(c.ssh.connect_timeout, Duration::from_secs(10));
    assert_eq!(c.ssh.max_connections.get(), DEFAULT_MAX_CONNECTIONS);
    assert_eq!(c.ssh.idle_timeout, DEFAULT_IDLE_TIMEOUT);
    assert_eq!(c.ssh.keepalive, Duration::from_secs(15));
    assert_eq!(c.github.reconcile_every, Duration::from_secs(300));
    let t = &c.targets[0];
    assert_eq!(t.task, "deploy");
    assert_eq!(t.parallel, None);
    assert_eq!(t.timeout, Duration::from_secs(30 * 60));
    assert!(t.supersede && t.auto_inactive);
    assert_eq!(
        t.hosts[1],
        Host {
            user: Some("deploy".into()),
            name: "web2.internal".into(),
            port: Some(2222)
        }
    );
    assert_eq!(t.hosts[2].name, "::1");
    assert_eq!(t.hosts[2].to_string(), "[::1]:22");
    assert_eq!(t.hosts[0].to_string(), "web1.internal");
}

#[test]
fn misspelt_key_is_named_with_line_and_suggestion() {
    let body = BASE.replace(
        "environment = \"production\"",
        "enviroment = \"production\"",
    );
    let err = parse(&body).unwrap_err();
    let p = &err.problems[0];
    assert_eq!(p.key, "target[0].enviroment");
    assert_eq!(p.line, Some(14));
    assert!(
        p.message.contains("did you mean 'environment'"),
        "{}",
        p.message
    );
    assert!(
        err.to_string()
            .contains("ferry.toml:14: target[0].enviroment: unknown key"),
        "{err}"
    );
}

#[test]
fn every_problem_is_reported_at_once() {
    let body = BASE
        .replace("[server]\n", "[server]\nlisten = \"nowhere\"\nport = 1\n")
        .replace(
            "hosts = [",
            "parallel = 0\ntimeout = \"soon\"\nhosts = [\"-oProxyCommand=x\", ",
        )
        + "[[target.steps]]\nname = \"restart\"\nrun = \"again\"\nsudo = true\n[runner]\nmax_concurent = 2\n";
    let err = parse(&body).unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert!(keys.contains(&"server.port"), "{keys:?}");
    assert!(keys.contains(&"runner.max_concurent"), "{keys:?}");
    assert!(keys.contains(&"target[0].steps[1].sudo"), "{keys:?}");
    assert!(err.problems.iter().all(|p| p.line.is_some()), "{err}");
    // Beside an unknown key, the section's values are still checked.
    let body = BASE
        .replace("[server]\n", "[server]\nlisten = \"nowhere\"\nport = 1\n")
        .replace("hosts = [", "parallel = 0\nhosts = [\"-oProxyCommand=x\", ");
    let err = parse(&body).unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.port",
            "server.listen",
            "target[0].hosts[0]",
            "target[0].parallel"
        ],
        "{err}"
    );
}

#[test]
fn type_errors_name_the_line() {
    let body = BASE.replace("hosts = [", "timeout = \"soon\"\nhosts = [");
    let err = parse(&body).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].line, Some(15), "{err}");
}

#[test]
fn syntax_errors_name_the_line() {
    let err = parse("[server]\npublic_url = \n").unwrap_err();
    assert_eq!(err.problems[0].key, "(syntax)");
    assert_eq!(err.problems[0].line, Some(2));
}

#[test]
fn environment_variables_win_over_files() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), BASE);
    let env = |k: &str| match k {
        ENV_WEBHOOK_SECRET => Some("from-env".to_string()),
        ENV_GITHUB_TOKEN => Some("tok-env".to_string()),
        _ => None,
    };
    let c = Config::parse(BASE, &path, &env).unwrap();
    assert_eq!(c.github.webhook_secrets, vec![Secret::new("from-env")]);
    assert!(matches!(&c.github.auth, GitHubAuth::Token(t) if t.expose() == b"tok-env"));
    // And the files are then not needed at all.
    std::fs::remove_file(dir.path().join("secret")).unwrap();
    assert!(Config::parse(BASE, &path, &env).is_ok());
    let err = Config::parse(BASE, &path, &no_env).unwrap_err();
    assert_eq!(err.problems[0].key, "github.webhook_secret_file");
}

#[test]
fn missing_required_keys_say_what_to_set() {
    let err = parse("[ssh]\nknown_hosts_file = \"known_hosts\"\n").unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    assert_eq!(
        keys,
        [
            "server.public_url",
            "github.webhook_secret_file",
            "github.token_file",
            "target"
        ]
    );
}

#[test]
fn first_matching_target_owns_a_deployment() {
    let body = BASE.to_string()
        + "[[target]]\nrepository = \"octo-org/web\"\nenvironment = \"review-*\"\nhosts = [\"h\"]\n[[target.steps]]\nname = \"a\"\nrun = \"b\"\n";
    let c = parse(&body).unwrap();
    assert_eq!(
        c.target_for("octo-org/web", "review-42", "deploy")
            .unwrap()
            .environment,
        "review-*"
    );
    assert_eq!(
        c.target_for("octo-org/web", "production", "deploy")
            .unwrap()
            .environment,
        "production"
    );
    assert!(
        c.target_for("octo-org/web", "production", "migrate")
            .is_none()
    );
    assert!(
        c.target_for("octo-org/other", "production", "deploy")
            .is_none()
    );
}

#[test]
fn a_target_without_steps_is_a_warning() {
    let body = BASE.replace("[[target.steps]]\nname = \"restart\"\nrun = \"true\"\n", "");
    let c = parse(&body).unwrap();
    assert!(c.targets[0].steps.is_empty());
    assert_eq!(c.warnings.len(), 1);
}

#[test]
fn shipped_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ferry.example.toml");
    let c = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    assert!(!c.targets.is_empty());
}

#[test]
fn credential_paths_come_from_systemd() {
    let dir = tempfile::tempdir().unwrap();
    let creds = dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("webhook-secret"), "from-systemd\n").unwrap();
    let body = BASE.replace(
        "webhook_secret_file = \"secret\"",
        "webhook_secret_file = \"${CREDENTIALS_DIRECTORY}/webhook-secret\"",
    );
    let path = write_config(dir.path(), &body);
    let dir_s = creds.display().to_string();
    let env = move |k: &str| (k == ENV_CREDENTIALS).then(|| dir_s.clone());
    let c = Config::parse(&body, &path, &env).unwrap();
    assert_eq!(c.github.webhook_secrets, vec![Secret::new("from-systemd")]);
    let err = Config::parse(&body, &path, &no_env).unwrap_err();
    assert!(
        err.problems[0].message.contains("only set under systemd"),
        "{err}"
    );
}

#[test]
fn host_forms() {
    assert_eq!(
        Host::parse("h").unwrap(),
        Host {
            user: None,
            name: "h".into(),
            port: None
        }
    );
    assert!(Host::parse("u@h:0").is_err());
    assert!(Host::parse("u@h:x").is_err());
    assert!(Host::parse("@h").is_err());
    assert!(Host::parse("h h").is_err());
    assert!(Host::parse("[::1").is_err());
    assert!(Host::parse("-oProxyCommand=evil").is_err());
    for spec in ["h", "u@h", "u@h:2222", "[::1]:22", "u@[fe80::1]:2"] {
        assert_eq!(Host::parse(spec).unwrap().spec(), spec);
    }
}

#[test]
fn app_mode_needs_a_usable_private_key() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("app.pem"),
        "-----BEGIN RSA PRIVATE KEY-----\nnot a key\n-----END RSA PRIVATE KEY-----\n",
    )
    .unwrap();
    let body = BASE.replace(
        "token_file = \"token\"",
        "app_id = 12\napp_private_key_file = \"app.pem\"",
    );
    let path = write_config(dir.path(), &body);
    let err = Config::parse(&body, &path, &no_env).unwrap_err();
    assert_eq!(err.problems.len(), 1, "{err}");
    assert_eq!(err.problems[0].key, "github.app_private_key_file");
    assert!(
        err.problems[0].message.contains("not an RSA private key"),
        "{err}"
    );

    let body = BASE.replace("token_file = \"token\"", "app_id = 12");
    let err = Config::parse(&body, &path, &no_env).unwrap_err();
    assert_eq!(err.problems[0].key, "github.app_private_key_file");
    let body = BASE.replace(
        "token_file = \"token\"",
        "token_file = \"token\"\napp_id = 12",
    );
    let err = Config::parse(&body, &path, &no_env).unwrap_err();
    assert!(err.problems[0].message.contains("not both"), "{err}");
}

#[test]
fn teardown_steps_and_teardown_after() {
    let c = parse(
        &(BASE.replace("hosts = [", "teardown_after = \"7d\"\nhosts = [")
            + "[[target.teardown]]\nname = \"destroy\"\nrun = \"docker compose down\"\n"),
    )
    .unwrap();
    let t = &c.targets[0];
    assert_eq!(t.teardown_after, Some(Duration::from_secs(7 * 86400)));
    assert_eq!(t.teardown[0].name, "destroy");
    assert_eq!(t.steps[0].name, "restart");
    assert!(c.targets.iter().all(|t| !t.teardown.is_empty()));

    // Bad teardown keys are reported with the others, each with its line.
    let body = BASE.replace("hosts = [", "teardown_after = \"0s\"\nhosts = [")
        + "[[target.teardown]]\nname = \"\"\nrun = \"x\"\nwhen = \"now\"\n[runner]\nmax_concurent = 2\n";
    let err = parse(&body).unwrap_err();
    let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "target[0].teardown_after",
        "target[0].teardown[0].when",
        "target[0].teardown[0].name",
        "runner.max_concurent",
    ] {
        assert!(keys.contains(&key), "{key} missing from {keys:?}");
    }
    assert!(err.problems.iter().all(|p| p.line.is_some()), "{err}");
}

#[test]
fn keepalive_and_reconcile_every() {
    let c = parse(
        &BASE
            .replace("[ssh]\n", "[ssh]\nkeepalive = \"2s\"\n")
            .replace("[github]\n", "[github]\nreconcile_every = \"0s\"\n"),
    )
    .unwrap();
    assert_eq!(c.ssh.keepalive, Duration::from_secs(2));
    assert!(c.github.reconcile_every.is_zero(), "0s: never");
    for bad in ["\"0s\"", "\"1500ms\""] {
        let e = parse(&BASE.replace("[ssh]\n", &format!("[ssh]\nkeepalive = {bad}\n")))
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("ssh.keepalive") && e.contains("whole number of seconds"),
            "{e}"
        );
    }
}

#[test]
fn checks_with_within_and_interval() {
    let body = format!(
        "{BASE}\n[[target.checks]]\nname = \"healthz\"\nrun = \"curl -fsS http://127.0.0.1/healthz\"\nwithin = \"30s\"\n\n[[target.checks]]\nname = \"smoke\"\nrun = \"true\"\n"
    );
    let c = parse(&body).unwrap();
    let checks = &c.targets[0].checks;
    assert_eq!(checks.len(), 2);
    assert_eq!(
        (
            checks[0].name.as_str(),
            checks[0].within,
            checks[0].interval
        ),
        ("healthz", Duration::from_secs(30), DEFAULT_CHECK_INTERVAL)
    );
    assert_eq!(checks[1].within, DEFAULT_CHECK_WITHIN);
    let bad =
        format!("{BASE}\n[[target.checks]]\nname = \"healthz\"\nwithin = \"0s\"\ntries = 3\n");
    let e = parse(&bad).unwrap_err().to_string();
    for expected in [
        "target[0].checks[0].run",
        "target[0].checks[0].within",
        "target[0].checks[0].tries",
    ] {
        assert!(e.contains(expected), "{expected} not in {e}");
    }
}

#[test]
fn rollback_is_a_switch_or_steps_of_its_own() {
    let c =
        parse(&BASE.replace("[[target.steps]]", "rollback = true\n\n[[target.steps]]")).unwrap();
    assert!(c.targets[0].rollback && c.targets[0].rollback_steps.is_empty());
    let c = parse(&format!(
        "{BASE}\n[[target.rollback]]\nname = \"switch\"\nrun = \"ln -sfn old current\"\n"
    ))
    .unwrap();
    assert!(c.targets[0].rollback);
    assert_eq!(c.targets[0].rollback_steps[0].name, "switch");
    assert!(!parse(BASE).unwrap().targets[0].rollback, "off by default");
    let e = parse(&format!("{BASE}\n[[target.rollback]]\nname = \"switch\"\n"))
        .unwrap_err()
        .to_string();
    assert!(e.contains("target[0].rollback[0].run"), "{e}");
}

#[test]
fn freezes_are_read_and_bad_windows_named_with_key_and_line() {
    let good = format!(
        "{BASE}\n[[freeze]]\nname = \"weekend\"\nrepositories = [\"octo-org/*\"]\nenvironments = [\"production\"]\n\
         weekly = [\"Fri 16:00 - Mon 08:00\"]\ndates = [\"2026-12-23 00:00 - 2027-01-04 08:00\"]\ntimezone = \"Europe/Berlin\"\n\
         [[freeze]]\nname = \"nights\"\nweekly = [\"Mon 22:00 - Tue 06:00\"]\n"
    );
    let c = parse(&good).unwrap();
    assert_eq!(c.freezes.len(), 2);
    assert_eq!(c.freezes[0].timezone_name, "Europe/Berlin");
    assert_eq!(c.freezes[1].timezone_name, DEFAULT_FREEZE_TIMEZONE);
    assert!(c.freezes[1].repositories.is_empty());

    let bad = format!(
        "{BASE}\n[[freeze]]\nname = \"weekend\"\nweekly = [\n  \"Fri 16:00 - Mon 08:00\",\n  \"Fri 4pm - Mon 8am\",\n]\n\
         dates = [\"2027-01-04 08:00 - 2026-12-23 00:00\"]\ntimezone = \"Mars/Olympus\"\nwindows = []\n\
         [[freeze]]\nname = \"empty\"\n"
    );
    let e = parse(&bad).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "freeze[0].weekly[1]",
        "freeze[0].dates[0]",
        "freeze[0].timezone",
        "freeze[0].windows",
        "freeze[1]",
    ] {
        assert!(keys.contains(&key), "{key} not in {keys:?}");
    }
    let weekly = e
        .problems
        .iter()
        .find(|p| p.key == "freeze[0].weekly[1]")
        .unwrap();
    let line = bad.lines().position(|l| l.contains("4pm")).unwrap() + 1;
    assert_eq!(weekly.line, Some(line), "{weekly:?}");
    assert!(
        weekly.message.contains("DAY HH:MM - DAY HH:MM"),
        "{weekly:?}"
    );
}

#[test]
fn an_empty_known_hosts_is_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), BASE);
    std::fs::write(dir.path().join("known_hosts"), "# nothing yet\n\n").unwrap();
    let c = Config::parse(BASE, &path, &no_env).unwrap();
    let w: Vec<&Problem> = c
        .warnings
        .iter()
        .filter(|w| w.key == "ssh.known_hosts_file")
        .collect();
    assert_eq!(w.len(), 1, "{:?}", c.warnings);
    assert!(w[0].message.contains("holds no host key"), "{:?}", w[0]);
}

#[test]
fn a_bad_duration_hides_no_other_problem_of_its_target() {
    let body = r#"
[server]
public_url = "https://deploy.example.com/"

[github]
webhook_secret_file = "secret"
token_file = "token"

[ssh]
known_hosts_file = "known_hosts"
keepalive = 15

[[target]]
repository = "not a repository"
environment = "production"
hosts = ["deploy@web1.internal:22222222"]
timeout = "5 minutes please"

[[target.steps]]
name = "restart"

[[target.checks]]
name = "healthz"
run = "true"
within = "soon"
"#;
    let e = parse(body).unwrap_err();
    let keys: Vec<&str> = e.problems.iter().map(|p| p.key.as_str()).collect();
    for key in [
        "target[0].timeout",
        "target[0].repository",
        "target[0].hosts[0]",
        "target[0].steps[0].run",
        "target[0].checks[0].within",
        "ssh.keepalive",
    ] {
        assert!(keys.contains(&key), "{key} not in {:#?}", e.problems);
    }
    let timeout = e
        .problems
        .iter()
        .find(|p| p.key == "target[0].timeout")
        .unwrap();
    let line = body.lines().position(|l| l.starts_with("timeout")).unwrap() + 1;
    assert_eq!(timeout.line, Some(line));
    assert!(
        timeout
            .message
            .contains("\"5 minutes please\" is not a duration"),
        "{timeout:?}"
    );
}

#[test]
fn a_freeze_that_matches_no_target_is_a_warning_naming_the_glob() {
    let freeze = |repos: &str, envs: &str| {
        format!(
            "{BASE}\n[[freeze]]\nname = \"weekend\"\nrepositories = [{repos}]\nenvironments = [{envs}]\nweekly = [\"Fri 16:00 - Mon 08:00\"]\n"
        )
    };
    let c = parse(&freeze("\"octo-org/*\"", "\"prod*\", \"staging\"")).unwrap();
    let w: Vec<String> = c.warnings.iter().map(|w| w.at(Path::new("f"))).collect();
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(w[0].contains("freeze[0].environments[1]"), "{w:?}");
    assert!(
        w[0].contains("\"staging\" matches no target's environment"),
        "{w:?}"
    );
    assert!(w[0].contains("production"), "{w:?}");
    let c = parse(&freeze("\"octo-org/api\"", "\"production\"")).unwrap();
    let w: Vec<String> = c.warnings.iter().map(|w| w.at(Path::new("f"))).collect();
    assert!(
        w.iter()
            .any(|w| w.contains("freeze[0].repositories[0]") && w.contains("octo-org/web")),
        "{w:?}"
    );
    // A glob either way, and no globs at all, match.
    let c = parse(&freeze("", "\"*\"")).unwrap();
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
}

#[test]
fn local_is_ferry_s_own_host() {
    assert!(Host::parse("local").unwrap().is_local());
    assert!(!Host::parse("deploy@local").unwrap().is_local());
    assert!(!Host::parse("local:2222").unwrap().is_local());
    assert!(!Host::parse("localhost").unwrap().is_local());
}

/// Every key is in the shipped example (set, or commented out with its
/// default), so that the example is where an operator finds them all.
#[test]
fn every_key_is_in_the_example() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/ferry.example.toml");
    let text = std::fs::read_to_string(path).unwrap();
    let mut missing = Vec::new();
    for (table, keys) in [
        ("server", keys::<RawServer>()),
        ("github", keys::<RawGitHub>()),
        ("storage", keys::<RawStorage>()),
        ("runner", keys::<RawRunner>()),
        ("ssh", keys::<RawSsh>()),
        ("target", keys::<RawTarget>()),
        ("target.checks", keys::<RawHostCheck>()),
        ("target.auto_deploy", keys::<raw::RawAutoDeploy>()),
        ("freeze", keys::<RawFreeze>()),
        ("notify", keys::<RawNotify>()),
        ("commands", keys::<RawCommands>()),
        ("protection", keys::<raw::RawProtection>()),
    ] {
        for key in keys {
            let set = text.lines().any(|l| {
                let l = l.trim_start_matches(['#', ' ']);
                l.starts_with(&format!("{key} ="))
                    || l.starts_with(&format!("[[target.{key}]]"))
                    || l.starts_with(&format!("[target.{key}]"))
            });
            if !set {
                missing.push(format!("{table}.{key}"));
            }
        }
    }
    assert!(
        missing.is_empty(),
        "not in config/ferry.example.toml: {missing:?}"
    );
}

#[test]
fn metrics_listen_is_an_address_of_its_own() {
    assert_eq!(parse(BASE).unwrap().server.metrics_listen, None);
    let with = |value: &str| {
        BASE.replace(
            "[server]\n",
            &format!("[server]\nmetrics_listen = {value:?}\n"),
        )
    };
    let c = parse(&with("127.0.0.1:9184")).unwrap();
    assert_eq!(
        c.server.metrics_listen.map(|a| a.to_string()).as_deref(),
        Some("127.0.0.1:9184")
    );
    for (bad, says) in [
        ("9184", "is not an address and port"),
        ("127.0.0.1:8080", "is server.listen too"),
    ] {
        let err = parse(&with(bad)).unwrap_err();
        let p = &err.problems[0];
        assert_eq!(p.key, "server.metrics_listen", "{err}");
        assert!(p.message.contains(says), "{err}");
        assert!(p.line.is_some(), "{err}");
    }
}
