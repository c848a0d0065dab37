//! One `ferry serve` process of the test world: started on a config,
//! waited for until it serves, signalled, killed, and its output kept for
//! the failure message.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::ferry_binary;
use crate::ports::{Port, hand_over};

pub struct Ferry {
    child: Option<Child>,
    pub url: String,
    pub config: PathBuf,
    stderr: PathBuf,
    /// Ports held as long as this process is (a replica's own).
    ports: Vec<Port>,
}

impl Ferry {
    pub fn output(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// `ferry serve` on `config`, listening on `ports` (`server.listen`
    /// first, then `server.metrics_listen` if the config has it), handed
    /// over as systemd hands sockets over: see [`crate::ports`].
    pub async fn start(config: PathBuf, ports: &[&Port], stderr: PathBuf) -> Ferry {
        Ferry::start_with_env(config, ports, stderr, &[]).await
    }

    pub async fn start_with_env(
        config: PathBuf,
        ports: &[&Port],
        stderr: PathBuf,
        env: &[(String, String)],
    ) -> Ferry {
        let sockets: Vec<_> = ports.iter().map(|p| p.listen()).collect();
        // Debug lines for the failure message, unless the caller asks for
        // another level (a benchmark runs ferry as it runs in production).
        let fds: Vec<&dyn std::os::fd::AsRawFd> = sockets.iter().map(|s| s as _).collect();
        let child = hand_over(&ferry_binary(), &fds)
            .env("RUST_LOG", "info,ferry=debug")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .args(["serve", "--config"])
            .arg(&config)
            .env_remove("FERRY_WEBHOOK_SECRET")
            .env_remove("FERRY_GITHUB_TOKEN")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&stderr)
                    .unwrap(),
            )
            .spawn()
            .expect("start ferry");
        // ferry holds them now: when it dies, they close.
        drop(fds);
        drop(sockets);
        let mut ferry = Ferry {
            child: Some(child),
            url: ports[0].url(),
            config,
            stderr,
            ports: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Ok(r) = reqwest::get(format!("{}/healthz", ferry.url)).await
                && r.status() == 200
            {
                return ferry;
            }
            if let Some(status) = ferry.child.as_mut().unwrap().try_wait().unwrap() {
                panic!("ferry exited with {status}:\n{}", ferry.output());
            }
            assert!(
                Instant::now() < deadline,
                "ferry did not serve:\n{}",
                ferry.output()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Holds `port` as long as this is held: a port only this process
    /// listens on.
    pub fn keeping(mut self, port: Port) -> Ferry {
        self.ports.push(port);
        self
    }

    pub fn signal(&self, sig: &str) {
        if let Some(c) = &self.child {
            Command::new("kill")
                .args([&format!("-{sig}"), &c.id().to_string()])
                .status()
                .unwrap();
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.as_ref().expect("running").id()
    }

    /// `kill -9`: no chance to clean up.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Waits for ferry to exit; its status.
    pub fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        let child = self.child.as_mut().expect("running");
        loop {
            if let Some(s) = child.try_wait().unwrap() {
                self.child = None;
                return s;
            }
            assert!(
                Instant::now() < deadline,
                "ferry did not exit:\n{}",
                self.output()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Ferry {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        if std::thread::panicking() {
            eprintln!("---- ferry's output ----\n{}", self.output());
        }
    }
}
