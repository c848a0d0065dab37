//! A real PostgreSQL for the tests: Debian's server binaries, a cluster of
//! our own made by `initdb` in a temp dir and started by `pg_ctl` on a free
//! loopback port. PostgreSQL refuses to run as root, so as root the cluster
//! belongs to the `postgres` user that Debian's package creates.
//!
//! One cluster per test binary; each test gets a database of its own. A
//! small shell loop stops the cluster when the test binary exits.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Instant;

pub struct Cluster {
    pub port: u16,
    pub dir: PathBuf,
    bin: PathBuf,
    /// Who runs the server: None as ourselves, else a user for `runuser`.
    user: Option<String>,
}

/// Debian installs the server under /usr/lib/postgresql/VERSION/bin.
fn server_bin() -> PathBuf {
    let mut versions: Vec<PathBuf> = std::fs::read_dir("/usr/lib/postgresql")
        .into_iter()
        .flatten()
        .filter_map(|e| e.ok().map(|e| e.path().join("bin")))
        .filter(|p| p.join("pg_ctl").exists())
        .collect();
    versions.sort();
    versions
        .pop()
        .expect("no PostgreSQL server: install Debian's postgresql (bash .ci/run does)")
}

impl Cluster {
    fn command(&self, program: &str) -> Command {
        let path = self.bin.join(program);
        match &self.user {
            None => Command::new(path),
            Some(user) => {
                let mut c = Command::new("runuser");
                c.args(["-u", user, "--"]).arg(path);
                c
            }
        }
    }

    /// A cluster of its own, for a test that stops and starts it; it stops
    /// when dropped.
    pub fn start() -> Cluster {
        let bin = server_bin();
        let user = super::is_root().then(|| "postgres".to_string());
        // Not under the test's own temp dir: that goes when a test ends.
        static N: AtomicU32 = AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "ferry-pg-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let port = super::sshd::free_port();
        let mut cluster = Cluster {
            port,
            dir: dir.clone(),
            bin,
            user,
        };
        if let Some(user) = &cluster.user {
            let ok = Command::new("chown")
                .args([&format!("{user}:"), dir.to_str().unwrap()])
                .status()
                .unwrap();
            assert!(ok.success());
        }
        let data = dir.join("data");
        run(cluster
            .command("initdb")
            .args([
                "-A",
                "trust",
                "-U",
                "ferry",
                "-E",
                "UTF8",
                "--no-sync",
                "-D",
            ])
            .arg(&data));
        // PostgreSQL binds its port itself, so it cannot be handed one held
        // from before (see `ports`): another process may take the free port
        // first, and then the start fails saying so; another port is tried.
        let mut tries = 0;
        while let Err(e) = cluster.start_on_port(&data) {
            tries += 1;
            let taken = std::fs::read_to_string(dir.join("server.log"))
                .unwrap_or_default()
                .contains("could not bind");
            assert!(taken && tries < 5, "{e}");
            cluster.port = super::sshd::free_port();
        }
        cluster.stop_when_we_exit(&data);
        cluster
    }

    /// The cluster outlives no test binary, however that ends.
    fn stop_when_we_exit(&self, data: &Path) {
        let mut stop = self.command("pg_ctl");
        stop.args(["-D"])
            .arg(data)
            .args(["-m", "immediate", "stop"]);
        let stop = format!("{stop:?}").replace('"', "");
        let script = format!(
            "while kill -0 {me} 2>/dev/null; do sleep 1; done; {stop} >/dev/null 2>&1; rm -rf {dir}",
            me = std::process::id(),
            dir = self.dir.display()
        );
        // Left to run past us on purpose: it is what cleans up after us.
        let watcher = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        std::mem::forget(watcher);
    }

    pub fn url(&self, database: &str) -> String {
        format!("postgres://ferry@127.0.0.1:{}/{database}", self.port)
    }

    /// A new, empty database.
    pub fn database(&self) -> String {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!("t{}", N.fetch_add(1, Ordering::Relaxed));
        run(self
            .command("psql")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-U",
                "ferry",
            ])
            .args(["-d", "postgres", "-qc", &format!("CREATE DATABASE {name}")]));
        self.url(&name)
    }

    /// `pg_ctl stop` / `start`: the database going away under ferry.
    pub fn stop(&self) {
        run(self
            .command("pg_ctl")
            .args(["-w", "-D"])
            .arg(self.dir.join("data"))
            .args(["-m", "fast", "stop"]));
    }

    /// Starts the cluster again on its port. While it was stopped the port
    /// was free: the stop is the test's own outage, a few seconds at most.
    pub fn start_again(&self) {
        let data = self.dir.join("data");
        self.start_on_port(&data).unwrap_or_else(|e| panic!("{e}"));
    }

    fn start_on_port(&self, data: &Path) -> Result<(), String> {
        // fsync stays on: the tests check what survives kill -9.
        let options = format!(
            "-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={d} \
             -c max_connections=200 {extra}",
            port = self.port,
            d = self.dir.display(),
            // For profiling runs: `FERRY_PG_OPTIONS="-c shared_preload_libraries=pg_stat_statements"`.
            extra = std::env::var("FERRY_PG_OPTIONS").unwrap_or_default()
        );
        try_run(
            self.command("pg_ctl")
                .args(["-w", "-t", "30", "-D"])
                .arg(data)
                .args(["-l"])
                .arg(self.dir.join("server.log"))
                .args(["-o", &options, "start"]),
        )
    }
}

fn run(cmd: &mut Command) {
    try_run(cmd).unwrap_or_else(|e| panic!("{e}"));
}

fn try_run(cmd: &mut Command) -> Result<(), String> {
    let started = Instant::now();
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    if out.status.success() {
        return Ok(());
    }
    Err(format!(
        "{cmd:?} failed after {:?}: {}{}",
        started.elapsed(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    ))
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = self
            .command("pg_ctl")
            .args(["-D"])
            .arg(self.dir.join("data"))
            .args(["-m", "immediate", "stop"])
            .output();
    }
}

/// This test binary's cluster, started on first use.
pub fn cluster() -> &'static Cluster {
    static CLUSTER: OnceLock<Cluster> = OnceLock::new();
    CLUSTER.get_or_init(Cluster::start)
}

/// Which replica holds deployment `id` now, by its process id.
pub async fn holder(url: &str, id: i64) -> Option<u32> {
    use ferry::store::{Deployments, Store};
    let store = ferry::store::postgres::PgStore::connect(url).await.unwrap();
    let owner = store
        .get(ferry::store::DeploymentId(id))
        .await
        .unwrap()?
        .owner?;
    store.close().await;
    owner
        .rsplit("pid ")
        .next()?
        .trim_end_matches(')')
        .parse()
        .ok()
}
