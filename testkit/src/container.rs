//! A Debian 12 with systemd as PID 1, booted by systemd-nspawn: the host a
//! new operator installs the package on.
//!
//! The root filesystem comes from debootstrap (minbase, systemd, dbus) and is
//! cached (see `cache_dir`); each boot lays a tmpfs over it
//! (`--volatile=overlay`), so the cache stays as debootstrap left it and no
//! run sees another's files. The container shares the machine's network:
//! ferry inside reaches the test's sshd and fake GitHub on 127.0.0.1, and
//! the test reaches ferry there.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

/// Bump when the package list changes: the cache is rebuilt.
const ROOT_RECIPE: &str = "bookworm minbase systemd,systemd-sysv,dbus v1";
const MIRROR: &str = "http://deb.debian.org/debian";

fn run(cmd: &mut Command) -> Output {
    let out = cmd.output().unwrap_or_else(|e| panic!("{cmd:?}: {e}"));
    assert!(
        out.status.success(),
        "{cmd:?}: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Where the root filesystem is kept: `$FERRY_TEST_CACHE`, else (as root,
/// as CI runs) a machine-wide cache that outlives the fresh clone each CI
/// run starts from, else the build tree.
fn cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("FERRY_TEST_CACHE") {
        return PathBuf::from(dir).join("nspawn");
    }
    if crate::is_root() {
        return PathBuf::from("/var/cache/ferry-tests/nspawn");
    }
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/nspawn")
}

/// The cached root filesystem, made on first use (under a minute).
pub fn root_filesystem() -> PathBuf {
    let cache = cache_dir();
    let root = cache.join("bookworm");
    let stamp = cache.join("bookworm.recipe");
    if std::fs::read_to_string(&stamp).ok().as_deref() == Some(ROOT_RECIPE) && root.is_dir() {
        return root;
    }
    std::fs::create_dir_all(&cache).unwrap();
    let fresh = cache.join("bookworm.tmp");
    let _ = std::fs::remove_dir_all(&fresh);
    let _ = std::fs::remove_dir_all(&root);
    run(Command::new("debootstrap")
        .args([
            "--variant=minbase",
            "--include=systemd,systemd-sysv,dbus",
            "bookworm",
        ])
        .arg(&fresh)
        .arg(MIRROR));
    // apt inside needs package lists to resolve the .deb's dependencies.
    run(Command::new("chroot")
        .arg(&fresh)
        .args(["apt-get", "update", "-qq"]));
    std::fs::rename(&fresh, &root).unwrap();
    std::fs::write(&stamp, ROOT_RECIPE).unwrap();
    root
}

pub struct Container {
    nspawn: Child,
    /// The container's systemd, as the machine sees it.
    pub pid1: u32,
    console: PathBuf,
}

impl Container {
    /// Boots `root` with `share` mounted read-only at /mnt/share, and waits
    /// until systemd says the system is up.
    pub fn boot(root: &Path, share: &Path, console: PathBuf) -> Container {
        let nspawn = Command::new("systemd-nspawn")
            .arg("-D")
            .arg(root)
            .args(["-b", "--register=no", "--keep-unit", "--volatile=overlay"])
            .arg(format!("--bind-ro={}:/mnt/share", share.display()))
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&console).unwrap())
            .stderr(Stdio::from(
                std::fs::OpenOptions::new()
                    .append(true)
                    .open(&console)
                    .unwrap(),
            ))
            .spawn()
            .expect("start systemd-nspawn (bash .ci/run installs systemd-container)");
        let mut c = Container {
            pid1: 0,
            nspawn,
            console,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        c.pid1 = loop {
            if let Some(pid) = c.find_pid1() {
                break pid;
            }
            if let Some(status) = c.nspawn.try_wait().unwrap() {
                panic!("systemd-nspawn exited with {status}:\n{}", c.console());
            }
            assert!(Instant::now() < deadline, "no systemd in the container");
            std::thread::sleep(Duration::from_millis(100));
        };
        // systemctl cannot connect until systemd has made its socket.
        let state = loop {
            let up = c.sh("systemctl is-system-running --wait");
            let state = String::from_utf8_lossy(&up.stdout).trim().to_string();
            // "offline": systemctl reached no bus yet (a warm root
            // filesystem boots fast enough to ask that early); ask again.
            if (!state.is_empty() && state != "offline") || Instant::now() > deadline {
                break state;
            }
            std::thread::sleep(Duration::from_millis(100));
        };
        assert!(
            state == "running",
            "the container booted {state:?}:\n{}\n{}",
            c.sh("systemctl --failed --no-pager").text(),
            c.console()
        );
        c
    }

    fn find_pid1(&self) -> Option<u32> {
        let out = Command::new("pgrep")
            .args(["-P", &self.nspawn.id().to_string(), "-x", "systemd"])
            .output()
            .ok()?;
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .next()?
            .trim()
            .parse()
            .ok()
    }

    pub fn console(&self) -> String {
        std::fs::read_to_string(&self.console).unwrap_or_default()
    }

    /// Runs a shell script as root inside the container, whatever its outcome.
    pub fn sh(&self, script: &str) -> Output {
        Command::new("nsenter")
            .args(["-t", &self.pid1.to_string(), "-a", "--"])
            .args([
                "env",
                "-i",
                "PATH=/usr/sbin:/usr/bin:/sbin:/bin",
                "HOME=/root",
            ])
            .args(["LANG=C.UTF-8", "DEBIAN_FRONTEND=noninteractive"])
            .args(["sh", "-ec", script])
            .stdin(Stdio::null())
            .output()
            .expect("nsenter")
    }

    /// Runs a script that must succeed; its standard output.
    pub fn ok(&self, script: &str) -> String {
        let out = self.sh(script);
        assert!(
            out.status.success(),
            "in the container: {script}\n{}",
            out.text()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// A property of a unit, as `systemctl show -P` prints it.
    pub fn property(&self, unit: &str, name: &str) -> String {
        self.ok(&format!("systemctl show -P {name} {unit}"))
            .trim()
            .to_string()
    }
}

pub trait Text {
    fn text(&self) -> String;
}

impl Text for Output {
    fn text(&self) -> String {
        format!(
            "exit {:?}\n--- stdout\n{}--- stderr\n{}",
            self.status.code(),
            String::from_utf8_lossy(&self.stdout),
            String::from_utf8_lossy(&self.stderr)
        )
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        // SIGRTMIN+4 asks systemd to power off; nspawn then exits.
        let _ = Command::new("kill")
            .args(["-s", "SIGRTMIN+4", &self.pid1.to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.nspawn.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.nspawn.kill();
        let _ = self.nspawn.wait();
    }
}
