//! The test world: a real sshd, a fake GitHub and the real `ferry` binary,
//! for the integration tests (`tests/tests.rs`) and the benchmarks
//! (`benches/`) alike.

pub mod browser;
pub mod container;
pub mod github;
pub mod ports;
pub mod postgres;
mod process;
pub mod prometheus;
pub mod receiver;
mod schema;
pub mod slack;
pub mod sshd;
pub mod timeline;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::Value;

pub use github::FakeGitHub;
pub use process::Ferry;
pub use sshd::Sshd;

/// `backends!(name, ...)` runs each `async fn name(database_url:
/// Option<String>)` of the calling module on every backend, one module
/// each; `backends!(with f; name, ...)` hands each `f(database_url)`
/// instead. The backends are the list below (riverqueue/river's driver
/// test suite, garage's `db/test.rs`): adding one is one line, a module
/// name and the `storage.database_url` its tests get (None: SQLite).
#[macro_export]
macro_rules! backends {
    ($($tests:tt)*) => {
        $crate::backend_tests!(on_sqlite, None; $($tests)*);
        $crate::backend_tests!(on_postgres, Some($crate::postgres::cluster().database()); $($tests)*);
    };
}

/// One backend's module of [`backends!`]: `$url` is evaluated in each
/// test, so each gets a store of its own.
#[macro_export]
macro_rules! backend_tests {
    ($module:ident, $url:expr; with $with:ident; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name(super::$with($url)).await
                }
            )*
        }
    };
    ($module:ident, $url:expr; $($name:ident),* $(,)?) => {
        mod $module {
            $(
                #[tokio::test(flavor = "multi_thread")]
                async fn $name() {
                    super::$name($url).await
                }
            )*
        }
    };
}

/// The `ferry` binary cargo built beside the test or benchmark running
/// (`target/{debug,release}/ferry`, as `CARGO_BIN_EXE_ferry` names it for
/// the package's own targets).
pub fn ferry_binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test binary's path");
    // target/debug/deps/tests-0123abcd -> target/debug/ferry
    let dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps");
    let bin = dir.join("ferry");
    assert!(
        bin.exists(),
        "{} not built: run the tests with cargo test (it builds the binary)",
        bin.display()
    );
    bin
}

/// The repository's test data (`tests/data`).
pub fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/data")
}

pub const SECRET: &str = "test-webhook-secret";

pub fn fixture(name: &str) -> Value {
    let path = data_dir().join("github").join(name);
    serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap()
}

/// The octokit `deployment` example, with its id, repository and environment set.
pub fn deployment_event(id: i64, repo: &str, env: &str) -> Value {
    let mut v = fixture("deployment/payload.json");
    v["deployment"]["id"] = id.into();
    v["deployment"]["environment"] = env.into();
    v["repository"]["full_name"] = repo.into();
    v
}

/// Whether the tests run as root (as CI does).
pub fn is_root() -> bool {
    let out = Command::new("id").arg("-u").output().unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "0"
}

pub fn signature(secret: &str, body: &[u8]) -> String {
    format!(
        "sha256={}",
        hex::encode(ferry::sign::sign(secret.as_bytes(), body))
    )
}

/// Delivers deployment `id` (the octokit example) to the ferry at `base`,
/// signed, as delivery `delivery`; the answer's status code.
pub async fn deliver_to(http: &reqwest::Client, base: &str, event: &Value, delivery: &str) -> u16 {
    let body = serde_json::to_vec(event).unwrap();
    http.post(format!("{base}/webhook"))
        .header("content-type", "application/json")
        .header("x-github-event", "deployment")
        .header("x-github-delivery", delivery)
        .header("x-github-hook-id", "4242")
        .header("x-hub-signature-256", signature(SECRET, &body))
        .body(body)
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

/// Step lines that leave a shell and a background child running until
/// killed, their pids in `shell.pid` and `child.pid` in `scratch`: what a
/// timeout, a cancel or a lost host must end on the host.
pub fn hang(scratch: &Path) -> String {
    let s = scratch.display();
    format!("echo $$ > {s}/shell.pid\nsleep 300 &\necho $! > {s}/child.pid\necho waiting\nwait")
}

/// What a look of [`eventually`] gives: found (`Some`, `Ok`) or not yet,
/// with what was seen instead (`Err`) for the failure message.
pub trait Look {
    type Found;
    fn found(self) -> Result<Self::Found, Option<String>>;
}

impl<T> Look for Option<T> {
    type Found = T;
    fn found(self) -> Result<T, Option<String>> {
        self.ok_or(None)
    }
}

impl<T> Look for Result<T, String> {
    type Found = T;
    fn found(self) -> Result<T, Option<String>> {
        self.map_err(Some)
    }
}

/// Polls `check` every 20 ms until it gives `Some` (or `Ok`), and returns
/// that; panics naming `what`, and what the last look saw (an `Err`'s
/// text), after `within`. The one way tests wait for a signal.
pub async fn eventually<L, F, Fut>(what: &str, within: Duration, mut check: F) -> L::Found
where
    L: Look,
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = L>,
{
    let deadline = std::time::Instant::now() + within;
    loop {
        let seen = match check().await.found() {
            Ok(found) => return found,
            Err(seen) => seen,
        };
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: not within {within:?}{}",
            seen.map(|s| format!("; last seen: {s}"))
                .unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The text of `path` once something non-blank is written there (a pid a
/// step writes, say).
pub async fn written(path: &Path, within: Duration) -> String {
    eventually(&format!("{} written", path.display()), within, || async {
        std::fs::read_to_string(path)
            .ok()
            .filter(|s| !s.trim().is_empty())
    })
    .await
}

/// The shipped example config's placeholder files (`config/example/`),
/// copied into `dir/example`, and the example config's text: what the
/// config refers to relative to itself, for a copy of it written to `dir`.
pub fn example_config(dir: &Path) -> String {
    let config = Path::new(env!("CARGO_MANIFEST_DIR")).join("../config");
    std::fs::create_dir_all(dir.join("example")).unwrap();
    for f in ["webhook-secret", "github-token", "known_hosts"] {
        std::fs::copy(config.join("example").join(f), dir.join("example").join(f)).unwrap();
    }
    std::fs::read_to_string(config.join("ferry.example.toml")).unwrap()
}

/// Asserts that the shell and the child of a [`hang`] step were killed.
pub fn assert_hang_ended(scratch: &Path) {
    for (pid, what) in [("shell.pid", "shell"), ("child.pid", "child")] {
        assert!(!alive(&scratch.join(pid)), "the step's {what} survived");
    }
}

/// Whether process `pid` still runs. A zombie has ended: only its parent's
/// `wait` is missing, and a test asking whether a step was killed means the
/// step, not its exit status.
pub fn pid_alive(pid: &str) -> bool {
    std::fs::read_to_string(format!("/proc/{}/stat", pid.trim()))
        .ok()
        .and_then(|stat| {
            // `pid (comm) S ...`: the state follows the last `)`, since a
            // command's name may hold one.
            let state = stat.rsplit_once(')')?.1.split_whitespace().next()?;
            Some(state != "Z" && state != "X")
        })
        .unwrap_or(false)
}

/// Whether the process whose pid a step wrote to `pid_file` still runs;
/// `None` while no pid is written.
pub fn running(pid_file: &Path) -> Option<bool> {
    let pid = std::fs::read_to_string(pid_file).ok()?;
    let pid = pid.trim();
    (!pid.is_empty()).then(|| pid_alive(pid))
}

/// As [`running`], for a step known to have written its pid. Panics when
/// it has not: a process never seen cannot be shown to have ended, and an
/// assertion that it has would pass without proving anything.
pub fn alive(pid_file: &Path) -> bool {
    running(pid_file).unwrap_or_else(|| panic!("no pid written to {}", pid_file.display()))
}

/// A step line that waits until the test calls [`World::release`]: a shared
/// lock on a file the World holds exclusively until then. Blocking, not
/// polling, so held steps cost no CPU while benchmarks measure.
pub fn hold(scratch: &Path) -> String {
    format!("flock -s {} true", scratch.join(HOLD).display())
}

const HOLD: &str = "hold.lock";

/// A `[[target]]` with its steps, as TOML.
pub fn target(
    repo: &str,
    env: &str,
    hosts: &[String],
    steps: &[(&str, &str)],
    extra: &str,
) -> String {
    let hosts: Vec<String> = hosts.iter().map(|h| format!("{h:?}")).collect();
    let mut s = format!(
        "\n[[target]]\nrepository = {repo:?}\nenvironment = {env:?}\nhosts = [{}]\n{extra}\n",
        hosts.join(", ")
    );
    for (name, run) in steps {
        s.push_str(&format!(
            "[[target.steps]]\nname = {name:?}\nrun = '''\n{run}\n'''\n"
        ));
    }
    s
}
/// Fields drop in order: ferry first (it prints its log if the test
/// failed), the directory holding everything last.
pub struct World {
    pub ferry: Ferry,
    pub sshd: Sshd,
    /// The sshds after the first, when `Setup::sshds` asks for more.
    pub fleet: Vec<Sshd>,
    pub github: FakeGitHub,
    pub http: reqwest::Client,
    /// `server.listen`, held for the world's life (restarts included).
    port: ports::Port,
    /// `server.metrics_listen`, when `Setup::metrics_listen` asks for it.
    metrics_port: Option<ports::Port>,
    pub dir: tempfile::TempDir,
    /// Locked until [`World::release`]; see [`hold`].
    held: std::sync::Mutex<Option<std::fs::File>>,
}

static DELIVERY: AtomicU64 = AtomicU64::new(1);

/// GitHub App mode: ferry signs JWTs with a key made for the test.
#[derive(Clone)]
pub struct AppSetup {
    pub id: u64,
    /// repository → installation id
    pub installations: Vec<(String, i64)>,
    pub token_ttl: Duration,
}

/// How the world is set up beyond its targets.
#[derive(Clone)]
pub struct Setup {
    /// The body of `[runner]`.
    pub runner: String,
    /// A GitHub Enterprise style path before the API routes, e.g. `/api/v3`.
    pub api_prefix: String,
    pub app: Option<AppSetup>,
    /// One sshd per entry, listening on these loopback addresses; the first is `World::sshd`.
    pub sshds: Vec<Vec<String>>,
    /// sshd's LogLevel.
    pub sshd_log_level: String,
    /// Lines added to sshd_config, e.g. `MaxStartups 100`.
    pub sshd_config: String,
    /// Lines added to `[ssh]`.
    pub ssh: String,
    pub connect_timeout: String,
    /// Hash the known_hosts file (`ssh-keygen -H`).
    pub hashed_known_hosts: bool,
    /// Environment for the ferry process.
    pub env: Vec<(String, String)>,
    /// `storage.database_url`: PostgreSQL instead of SQLite.
    pub database_url: Option<String>,
    /// More lines for `[github]`.
    pub github: String,
    /// `github.api_url` instead of the fake's (one nothing answers at).
    pub api_url: Option<String>,
    /// More lines for `[server]`.
    pub server: String,
    /// `server.metrics_listen` on a port of its own ([`World::metrics_url`]).
    pub metrics_listen: bool,
}

/// `count` loopback addresses from 127.0.0.`first` on.
pub fn loopback(first: u8, count: u8) -> Vec<String> {
    (first..first + count)
        .map(|i| format!("127.0.0.{i}"))
        .collect()
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            runner: "shutdown_grace = \"5s\"".into(),
            api_prefix: String::new(),
            app: None,
            sshds: vec![loopback(1, 1)],
            sshd_log_level: "ERROR".into(),
            sshd_config: String::new(),
            ssh: String::new(),
            connect_timeout: "5s".into(),
            hashed_known_hosts: false,
            env: Vec::new(),
            database_url: None,
            github: String::new(),
            api_url: None,
            server: String::new(),
            metrics_listen: false,
        }
    }
}

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl (bash .ci/run installs it)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

impl World {
    /// Starts everything; `targets` writes the `[[target]]` tables given the
    /// sshd and a scratch directory the steps may write to.
    pub async fn start(targets: impl FnOnce(&Sshd, &Path) -> String) -> World {
        World::build(Setup::default(), targets).await
    }

    /// As [`World::start`], with `runner` as the body of `[runner]`.
    pub async fn start_with(runner: &str, targets: impl FnOnce(&Sshd, &Path) -> String) -> World {
        World::build(
            Setup {
                runner: runner.into(),
                ..Setup::default()
            },
            targets,
        )
        .await
    }

    pub async fn build(setup: Setup, targets: impl FnOnce(&Sshd, &Path) -> String) -> World {
        World::build_fleet(setup, |sshds, scratch| targets(sshds[0], scratch)).await
    }

    /// As [`World::build`], with every sshd of `Setup::sshds` given to `targets`.
    pub async fn build_fleet(
        setup: Setup,
        targets: impl FnOnce(&[&Sshd], &Path) -> String,
    ) -> World {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        sshd::keygen(&d.join("id_ed25519"));
        let mut sshds: Vec<Sshd> = setup
            .sshds
            .iter()
            .enumerate()
            .map(|(i, addresses)| {
                Sshd::start_on(
                    &d.join(format!("sshd{i}")),
                    &d.join("id_ed25519.pub"),
                    addresses,
                    &setup.sshd_log_level,
                    &setup.sshd_config,
                )
            })
            .collect();
        let known: Vec<&str> = sshds.iter().map(|s| s.known_hosts_line.as_str()).collect();
        std::fs::write(d.join("known_hosts"), format!("{}\n", known.join("\n"))).unwrap();
        if setup.hashed_known_hosts {
            let out = Command::new("ssh-keygen")
                .args(["-H", "-f"])
                .arg(d.join("known_hosts"))
                .output()
                .unwrap();
            assert!(out.status.success(), "{out:?}");
            let hashed = std::fs::read_to_string(d.join("known_hosts")).unwrap();
            assert!(!hashed.contains("127.0.0."), "not hashed: {hashed}");
        }
        std::fs::write(d.join("secret"), format!("{SECRET}\n")).unwrap();
        std::fs::write(d.join("token"), format!("{}\n", github::TOKEN)).unwrap();
        std::fs::create_dir_all(d.join("scratch")).unwrap();
        let held = std::fs::File::create(d.join("scratch").join(HOLD)).unwrap();
        held.lock().unwrap();
        let github = FakeGitHub::start(&setup.api_prefix).await;
        let auth = match &setup.app {
            None => "token_file = \"token\"".to_string(),
            Some(app) => {
                openssl(&["genrsa", "-traditional", "-out", "app.pem", "2048"], d);
                openssl(
                    &["rsa", "-in", "app.pem", "-pubout", "-out", "app.pub.pem"],
                    d,
                );
                github.set_app(github::App {
                    id: app.id,
                    public_key_pem: std::fs::read(d.join("app.pub.pem")).unwrap(),
                    token_ttl: app.token_ttl,
                    installations: app.installations.clone(),
                });
                format!("app_id = {}\napp_private_key_file = \"app.pem\"", app.id)
            }
        };
        let runner = &setup.runner;
        let database = setup
            .database_url
            .as_ref()
            .map(|u| format!("database_url = \"{u}\"\n"))
            .unwrap_or_default();
        let port = ports::Port::reserve();
        let metrics_port = setup.metrics_listen.then(ports::Port::reserve);
        let metrics_listen = metrics_port
            .as_ref()
            .map(|m| format!("metrics_listen = \"{}\"\n", m.addr()))
            .unwrap_or_default();
        let config = format!(
            "[server]\nlisten = \"{listen}\"\npublic_url = \"{url}\"\n{metrics_listen}{server}\n\
             [github]\napi_url = \"{api}\"\nwebhook_secret_file = \"secret\"\n{auth}\n{github}\n\
             [storage]\ndir = \"state\"\n{database}\
             [runner]\n{runner}\n\
                          [ssh]\nidentity_file = \"id_ed25519\"\nknown_hosts_file = \"known_hosts\"\nconnect_timeout = \"{timeout}\"\n{ssh}\n{targets}",
            timeout = setup.connect_timeout,
            listen = port.addr(),
            url = port.url(),
            server = setup.server,
            github = setup.github,
            ssh = setup.ssh,
            api = setup.api_url.as_deref().unwrap_or(&github.url),
            targets = targets(&sshds.iter().collect::<Vec<_>>(), &d.join("scratch")),
        );
        let path = d.join("ferry.toml");
        std::fs::write(&path, config).unwrap();
        let listening: Vec<_> = std::iter::once(&port).chain(&metrics_port).collect();
        let ferry = Ferry::start_with_env(path, &listening, d.join("ferry.log"), &setup.env).await;
        drop(listening);
        github.set_webhook(&format!("{}/webhook", ferry.url), SECRET);
        let sshd = sshds.remove(0);
        World {
            sshd,
            fleet: sshds,
            github,
            ferry,
            // ferry closes a kept connection idle for its header timeout
            // (10 s); a request sent on it in that instant was reset (a
            // test waiting 8 s for a soak met it). The client lets go at 5 s.
            http: reqwest::Client::builder()
                .pool_idle_timeout(Duration::from_secs(5))
                .build()
                .unwrap(),
            port,
            metrics_port,
            dir,
            held: std::sync::Mutex::new(Some(held)),
        }
    }

    pub fn scratch(&self) -> PathBuf {
        self.dir.path().join("scratch")
    }

    /// Sends `body` as event `event` with the given headers added; returns
    /// status and answer text.
    pub async fn post(&self, headers: &[(&str, String)], body: Vec<u8>) -> (u16, String) {
        let mut req = self
            .http
            .post(format!("{}/webhook", self.ferry.url))
            .body(body);
        for (k, v) in headers {
            req = req.header(*k, v);
        }
        let r = req.send().await.expect("ferry answers");
        (r.status().as_u16(), r.text().await.unwrap_or_default())
    }

    /// A correctly signed JSON delivery with a fresh delivery id.
    pub async fn deliver(&self, event: &str, body: &Value) -> (u16, String) {
        let id = format!("test-{}", DELIVERY.fetch_add(1, Ordering::Relaxed));
        self.deliver_as(event, body, &id).await
    }

    pub async fn deliver_as(&self, event: &str, body: &Value, delivery: &str) -> (u16, String) {
        let bytes = serde_json::to_vec(body).unwrap();
        self.post(
            &[
                ("content-type", "application/json".into()),
                ("x-github-event", event.into()),
                ("x-github-delivery", delivery.into()),
                ("x-github-hook-id", "4242".into()),
                ("x-hub-signature-256", signature(SECRET, &bytes)),
            ],
            bytes,
        )
        .await
    }

    /// Lets steps waiting in [`hold`] go on.
    pub fn release(&self) {
        drop(self.held.lock().unwrap().take());
    }

    /// Delivers a deployment event (the octokit example, with this id,
    /// repository and environment) and expects it accepted.
    pub async fn deploy(&self, id: i64, repo: &str, env: &str) {
        let (code, text) = self
            .deliver("deployment", &deployment_event(id, repo, env))
            .await;
        assert_eq!(code, 202, "deployment {id}: {text}");
    }

    /// The states GitHub got for deployment `id`, in order.
    pub fn states(&self, id: i64) -> Vec<String> {
        self.github
            .statuses_of(id)
            .iter()
            .map(|p| p.state().to_string())
            .collect()
    }

    /// Every request to the fake GitHub matched the fixtures.
    pub fn assert_no_violations(&self) {
        let v = self.github.violations();
        assert!(v.is_empty(), "requests GitHub would refuse: {v:?}");
    }

    /// One series of `GET /metrics`, e.g. `ferry_status_posts_total{result="sent"}`;
    /// 0 while it does not exist yet.
    pub async fn metric(&self, series: &str) -> f64 {
        self.metric_of(&self.ferry, series).await
    }

    /// As [`World::metric`], of another ferry (a replica).
    pub async fn metric_of(&self, ferry: &Ferry, series: &str) -> f64 {
        let text = self.metrics_text(&ferry.url).await;
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
            .map_or(0.0, |v| v.parse().unwrap())
    }

    /// `GET /metrics` of the ferry at `base`, as text.
    /// Where `/metrics` is served when `Setup::metrics_listen` asked for
    /// a port of its own (`http://127.0.0.1:PORT`).
    pub fn metrics_url(&self) -> String {
        self.metrics_port
            .as_ref()
            .expect("Setup::metrics_listen")
            .url()
    }

    pub async fn metrics_text(&self, base: &str) -> String {
        self.http
            .get(format!("{base}/metrics"))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Waits until the runner has looked for work twice since now: what it
    /// could start by then, it has. The signal a "nothing ran" assertion
    /// waits for, instead of a fixed time.
    pub async fn settled(&self) {
        self.settled_on(&self.ferry).await
    }

    /// As [`World::settled`], for another ferry (a replica).
    pub async fn settled_on(&self, ferry: &Ferry) {
        let series = "ferry_runner_rounds_total";
        let from = self.metric_of(ferry, series).await;
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self.metric_of(ferry, series).await < from + 2.0 {
            assert!(
                std::time::Instant::now() < deadline,
                "the runner stopped looking for work"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// Waits until ferry has recorded `n` statuses as posted, so that a
    /// crash now does not send them again.
    pub async fn wait_posts_recorded(&self, n: f64) {
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        while self
            .metric("ferry_status_posts_total{result=\"sent\"}")
            .await
            < n
        {
            assert!(
                std::time::Instant::now() < deadline,
                "statuses not recorded as sent"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    /// `GET /healthz`: its status code and text.
    pub async fn health(&self) -> (u16, String) {
        let r = self
            .http
            .get(format!("{}/healthz", self.ferry.url))
            .send()
            .await
            .unwrap();
        (r.status().as_u16(), r.text().await.unwrap())
    }

    /// Waits until `/healthz` answers 200 again.
    pub async fn wait_healthy(&self, within: Duration) {
        let deadline = std::time::Instant::now() + within;
        loop {
            let (code, text) = self.health().await;
            if code == 200 {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "/healthz stays {code}: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// The states GitHub got for deployment `id`, once it has a final one.
    pub async fn final_states(&self, id: i64, within: Duration) -> Vec<String> {
        self.github
            .wait_final(id, within)
            .await
            .iter()
            .map(|s| s.state().to_string())
            .collect()
    }

    /// The plain-text log behind a `log_url`.
    pub async fn log_text(&self, log_url: &str) -> String {
        let r = self
            .http
            .get(log_url)
            .header("accept", "text/plain")
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200, "{log_url}");
        r.text().await.unwrap()
    }

    /// Runs a ferry subcommand against this world's config.
    pub fn cli(&self, args: &[&str]) -> std::process::Output {
        Command::new(ferry_binary())
            .args(args)
            .arg("--config")
            .arg(&self.ferry.config)
            .output()
            .unwrap()
    }

    /// Another `ferry serve` on the same config but its own port and
    /// state directory: a replica on another box, sharing the database.
    pub async fn replica(&self, n: usize) -> Ferry {
        let port = ports::Port::reserve();
        let config = std::fs::read_to_string(&self.ferry.config)
            .unwrap()
            .replacen(
                &format!("listen = \"{}\"", self.port.addr()),
                &format!("listen = \"{}\"", port.addr()),
                1,
            )
            .replacen("dir = \"state\"", &format!("dir = \"state-{n}\""), 1);
        let path = self.dir.path().join(format!("ferry-{n}.toml"));
        std::fs::write(&path, config).unwrap();
        let log = self.dir.path().join(format!("ferry-{n}.log"));
        Ferry::start(path, &[&port], log).await.keeping(port)
    }

    /// Starts ferry again on the same config and state (after it stopped).
    pub async fn restart(&mut self) {
        self.ferry.kill9();
        let config = self.ferry.config.clone();
        let log = self.dir.path().join("ferry.log");
        let listening: Vec<_> = std::iter::once(&self.port)
            .chain(&self.metrics_port)
            .collect();
        self.ferry = Ferry::start(config, &listening, log).await;
    }
}
