//! A real Prometheus (Debian's `prometheus` package) scraping one ferry
//! every second with ferry's alerting rules loaded: the dashboard's
//! queries and the rules are evaluated by the program that will run them.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

pub struct Prometheus {
    child: Child,
    pub url: String,
    http: reqwest::Client,
    _dir: tempfile::TempDir,
}

/// `prometheus` and `promtool`, from Debian's package.
pub fn binary(name: &str) -> PathBuf {
    let path = PathBuf::from("/usr/bin").join(name);
    assert!(
        path.exists(),
        "{name} not found: install Debian's prometheus package (bash .ci/run does)"
    );
    path
}

impl Prometheus {
    /// Scrapes `target` (host:port) as job `ferry` every second and
    /// evaluates `rules` every second.
    pub async fn start(target: &str, rules: &Path) -> Prometheus {
        let dir = tempfile::tempdir().unwrap();
        let config = format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n\
             rule_files:\n  - {rules:?}\n\
             scrape_configs:\n  - job_name: ferry\n    static_configs:\n      - targets: [{target:?}]\n"
        );
        let config_path = dir.path().join("prometheus.yml");
        std::fs::write(&config_path, config).unwrap();
        // Prometheus binds its port itself: another process may take the
        // free port first; Prometheus then exits saying so, and another
        // port is tried.
        let log = dir.path().join("prometheus.log");
        let mut tries = 0;
        let (child, url) = loop {
            tries += 1;
            let port = crate::sshd::free_port();
            let child = Command::new(binary("prometheus"))
                .arg(format!("--config.file={}", config_path.display()))
                .arg(format!(
                    "--storage.tsdb.path={}",
                    dir.path().join("data").display()
                ))
                .arg(format!("--web.listen-address=127.0.0.1:{port}"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::from(std::fs::File::create(&log).unwrap()))
                .spawn()
                .expect("start prometheus");
            let url = format!("http://127.0.0.1:{port}");
            let ready = format!("{url}/-/ready");
            let child = std::sync::Mutex::new(child);
            // Ready, or exited (its status); not yet: what it logged so far.
            let ended = crate::eventually("Prometheus ready", Duration::from_secs(60), || async {
                let exited = child.lock().unwrap().try_wait().unwrap();
                if let Some(status) = exited {
                    return Ok(Err(status));
                }
                match reqwest::get(&ready).await {
                    Ok(r) if r.status().is_success() => Ok(Ok(())),
                    _ => Err(std::fs::read_to_string(&log).unwrap_or_default()),
                }
            })
            .await;
            let child = child.into_inner().unwrap();
            let Err(exited) = ended else {
                break (child, url);
            };
            let said = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(
                said.contains("address already in use") && tries < 5,
                "Prometheus exited with {exited}:\n{said}"
            );
        };
        Prometheus {
            child,
            url,
            http: reqwest::Client::new(),
            _dir: dir,
        }
    }

    /// `GET /api/v1/query`: Prometheus' whole answer (status, data or
    /// error).
    pub async fn query(&self, expr: &str) -> Value {
        self.http
            .get(format!("{}/api/v1/query?query={}", self.url, encode(expr)))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /api/v1/query_range` over the last `seconds`, a point a second.
    pub async fn query_range(&self, expr: &str, seconds: u64) -> Value {
        let end = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs();
        self.http
            .get(format!(
                "{}/api/v1/query_range?query={}&start={}&end={end}&step=1",
                self.url,
                encode(expr),
                end - seconds
            ))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }

    /// `GET /api/v1/rules`: the rule groups with each rule's health.
    pub async fn rules(&self) -> Value {
        self.http
            .get(format!("{}/api/v1/rules", self.url))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    }
}

/// `s` as one URL query value.
fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
