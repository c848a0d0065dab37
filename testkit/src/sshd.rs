//! A real OpenSSH server on a random loopback port, with keys made for the test.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Sshd {
    pub port: u16,
    pub dir: PathBuf,
    /// The loopback addresses it listens on.
    pub addresses: Vec<String>,
    /// `[127.0.0.1]:port key`, one line per address: what `known_hosts_file` must hold.
    pub known_hosts_line: String,
    pub user: String,
    child: Child,
}

/// A port nothing listens on now, never handed out twice in this process:
/// the kernel may give a port just dropped to the next `bind(0)`, and with
/// tests running side by side two of them got the same one, so the second
/// server failed to start.
///
/// Only for a server that binds its port itself (sshd, PostgreSQL,
/// Prometheus, a peer in a benchmark, ferry inside a container) and that
/// tries another port when this one was taken in between; ferry on this
/// machine is handed a port it cannot lose ([`crate::ports`]), and a port
/// that must refuse is one held ([`crate::ports::Port::reserve`]).
pub fn free_port() -> u16 {
    static GIVEN: std::sync::Mutex<Vec<u16>> = std::sync::Mutex::new(Vec::new());
    loop {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut given = GIVEN.lock().unwrap_or_else(|p| p.into_inner());
        if !given.contains(&port) {
            given.push(port);
            return port;
        }
    }
}

fn run(cmd: &mut Command) {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

pub fn keygen(path: &Path) {
    run(Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "ferry-test", "-f"])
        .arg(path));
}

/// `SHA256:…`, the fingerprint of the public key in `pub_file`, as ssh
/// prints it.
pub fn fingerprint(pub_file: &Path) -> String {
    let out = Command::new("ssh-keygen")
        .arg("-lf")
        .arg(pub_file)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .unwrap_or_else(|| panic!("no fingerprint in {text}"))
        .to_string()
}

fn sshd_binary() -> PathBuf {
    for p in ["/usr/sbin/sshd", "/usr/local/sbin/sshd"] {
        if Path::new(p).exists() {
            return p.into();
        }
    }
    panic!("sshd not found: install openssh-server (bash .ci/run does)");
}

impl Sshd {
    /// Starts sshd on 127.0.0.1 in `dir`, trusting the client key `client_pub`.
    pub fn start(dir: &Path, client_pub: &Path) -> Sshd {
        Sshd::start_on(dir, client_pub, &["127.0.0.1".to_string()], "ERROR", "")
    }

    /// Starts one sshd listening on each of `addresses` (sshd takes 16 at most).
    pub fn start_on(
        dir: &Path,
        client_pub: &Path,
        addresses: &[String],
        log_level: &str,
        extra_config: &str,
    ) -> Sshd {
        assert!(!addresses.is_empty() && addresses.len() <= 16);
        std::fs::create_dir_all(dir).unwrap();
        // sshd refuses to start without its privilege separation directory.
        let _ = std::fs::create_dir_all("/run/sshd");
        let host_key = dir.join("host_key");
        keygen(&host_key);
        std::fs::copy(client_pub, dir.join("authorized_keys")).unwrap();
        let user = String::from_utf8(Command::new("id").arg("-un").output().unwrap().stdout)
            .unwrap()
            .trim()
            .to_string();
        // Another test may take the free port between our look and sshd's
        // bind: sshd then exits, and a connect would reach the other one
        // (a "host key mismatch"). sshd writes its PidFile once it
        // listens, so that file names our process or we try another port.
        let mut attempt = 0;
        loop {
            attempt += 1;
            let port = free_port();
            let config = dir.join("sshd_config");
            let _ = std::fs::remove_file(dir.join("sshd.pid"));
            std::fs::write(
                &config,
                format!(
                    "Port {port}\n{listen}HostKey {hk}\nPidFile {d}/sshd.pid\n\
                     AuthorizedKeysFile {d}/authorized_keys\nUsePAM no\nStrictModes no\n\
                     PasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                     PermitRootLogin prohibit-password\nLogLevel {log_level}\n{extra_config}\n",
                    listen = addresses.iter().map(|a| format!("ListenAddress {a}\n")).collect::<String>(),
                    hk = host_key.display(),
                    d = dir.display()
                ),
            )
            .unwrap();
            let mut child = Command::new(sshd_binary())
                .args(["-D", "-e", "-f"])
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(dir.join("sshd.log")).unwrap())
                .spawn()
                .expect("start sshd");
            let deadline = Instant::now() + Duration::from_secs(10);
            let listening = loop {
                let ours = std::fs::read_to_string(dir.join("sshd.pid"))
                    .is_ok_and(|p| p.trim() == child.id().to_string());
                if ours && std::net::TcpStream::connect((addresses[0].as_str(), port)).is_ok() {
                    break true;
                }
                if child.try_wait().unwrap().is_some() {
                    break false;
                }
                assert!(
                    Instant::now() < deadline,
                    "sshd did not listen: {}",
                    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
                );
                std::thread::sleep(Duration::from_millis(20));
            };
            if !listening {
                assert!(
                    attempt < 5,
                    "sshd could not listen: {}",
                    std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default()
                );
                continue;
            }
            let pub_key = std::fs::read_to_string(host_key.with_extension("pub")).unwrap();
            let known_hosts_line = addresses
                .iter()
                .map(|a| format!("[{a}]:{port} {}", pub_key.trim()))
                .collect::<Vec<_>>()
                .join("\n");
            return Sshd {
                port,
                dir: dir.to_path_buf(),
                addresses: addresses.to_vec(),
                known_hosts_line,
                user,
                child,
            };
        }
    }

    /// Connections open to this sshd: its per-connection processes.
    pub fn connections(&self) -> usize {
        let out = Command::new("pgrep")
            .args(["-P", &self.child.id().to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).lines().count()
    }

    /// The listening sshd's pid: SIGSTOP on it is a host whose new
    /// connections go unanswered.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The per-connection sshd processes (each serves one client
    /// connection): SIGSTOP on one is a host that stops answering it.
    pub fn session_pids(&self) -> Vec<u32> {
        let out = Command::new("pgrep")
            .args(["-P", &self.child.id().to_string()])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().parse().ok())
            .collect()
    }

    /// Ends every connection from the server's side, as a reboot would.
    pub fn drop_connections(&self) {
        let _ = Command::new("pkill")
            .args(["-P", &self.child.id().to_string()])
            .status();
    }

    /// The (first) host as a target lists it.
    pub fn host(&self) -> String {
        self.hosts()[0].clone()
    }

    /// Every address as a target lists it.
    pub fn hosts(&self) -> Vec<String> {
        self.addresses
            .iter()
            .map(|a| format!("{}@{a}:{}", self.user, self.port))
            .collect()
    }

    /// How ferry names every address in descriptions and logs.
    pub fn displays(&self) -> Vec<String> {
        self.addresses
            .iter()
            .map(|a| format!("{a}:{}", self.port))
            .collect()
    }

    /// How ferry names the (first) host in descriptions and logs.
    pub fn display(&self) -> String {
        format!("{}:{}", self.addresses[0], self.port)
    }
}

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
