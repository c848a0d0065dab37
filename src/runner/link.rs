//! What a step runs over: an SSH connection, or `local` (ferry's own host,
//! as ferry's user: what adnanh/webhook does, for a ferry that lives on
//! the server it deploys). Both run the same wrapper ([`super::remote`])
//! with the same stdin, so variables, logs, the process group and its
//! kill, and the rescue of a step left by a crash are the same code.
//!
//! A local step gets a clean environment (the few variables sshd would
//! set, then the step's own): ferry's own environment may hold its GitHub
//! token or webhook secret, and a step must not see them.

use std::path::PathBuf;
use std::pin::Pin;
use std::process::{ExitStatus, Stdio};

use openssh::Session;
use tokio::io::{AsyncRead, AsyncWrite};

/// The name that means ferry's own host in `hosts`.
pub const LOCAL: &str = "local";

/// The PATH a local step starts with: a login shell's, not ferry's.
const LOCAL_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

pub enum Link {
    Ssh(Session),
    Local,
}

type Reader = Pin<Box<dyn AsyncRead + Send>>;
type Writer = Pin<Box<dyn AsyncWrite + Send>>;

/// A started command, its streams taken.
pub struct Spawned<'a> {
    pub stdin: Writer,
    pub stdout: Reader,
    pub stderr: Reader,
    pub child: Process<'a>,
}

/// The started command itself, to wait for.
pub enum Process<'a> {
    Ssh(openssh::Child<&'a Session>),
    Local(tokio::process::Child),
}

impl Process<'_> {
    /// Waits for the command to end.
    pub async fn wait(self) -> Result<ExitStatus, String> {
        match self {
            Process::Ssh(c) => c.wait().await.map_err(|e| e.to_string()),
            Process::Local(mut c) => c.wait().await.map_err(|e| e.to_string()),
        }
    }
}

/// ferry's user: its name, home and shell, as sshd would set them.
fn me() -> crate::user::Entry {
    // SAFETY: geteuid has no preconditions and cannot fail.
    crate::user::entry(unsafe { libc::geteuid() }).unwrap_or_else(|| crate::user::Entry {
        name: std::env::var("USER").unwrap_or_default(),
        home: std::env::var_os("HOME").map_or_else(|| PathBuf::from("/"), PathBuf::from),
        shell: "/bin/sh".into(),
    })
}

fn local_command(command: &str) -> tokio::process::Command {
    let me = me();
    let home = if me.home.is_dir() {
        me.home.clone()
    } else {
        PathBuf::from("/")
    };
    let mut c = tokio::process::Command::new("/bin/sh");
    c.arg("-c")
        .arg(command)
        .env_clear()
        .env("HOME", &me.home)
        .env("USER", &me.name)
        .env("LOGNAME", &me.name)
        .env("SHELL", &me.shell)
        .env("PATH", LOCAL_PATH)
        .current_dir(home)
        // A group of its own, as sshd gives each session: the step and
        // everything it starts are killed together.
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    if let Some(lang) = std::env::var_os("LANG") {
        c.env("LANG", lang);
    }
    c
}

impl Link {
    /// Starts `command` with its three streams piped.
    pub async fn spawn(&self, command: &str) -> Result<Spawned<'_>, String> {
        match self {
            Link::Ssh(session) => {
                let mut child = session
                    .raw_command(command)
                    .stdin(openssh::Stdio::piped())
                    .stdout(openssh::Stdio::piped())
                    .stderr(openssh::Stdio::piped())
                    .spawn()
                    .await
                    .map_err(|e| e.to_string())?;
                let (Some(stdin), Some(stdout), Some(stderr)) = (
                    child.stdin().take(),
                    child.stdout().take(),
                    child.stderr().take(),
                ) else {
                    return Err("ssh gave no stdio for the step".into());
                };
                Ok(Spawned {
                    stdin: Box::pin(stdin),
                    stdout: Box::pin(stdout),
                    stderr: Box::pin(stderr),
                    child: Process::Ssh(child),
                })
            }
            Link::Local => {
                let mut child = local_command(command)
                    .stdin(Stdio::piped())
                    .stdout(Stdio::piped())
                    .stderr(Stdio::piped())
                    .spawn()
                    .map_err(|e| format!("cannot start /bin/sh: {e}"))?;
                let (Some(stdin), Some(stdout), Some(stderr)) =
                    (child.stdin.take(), child.stdout.take(), child.stderr.take())
                else {
                    return Err("no stdio for the step".into());
                };
                Ok(Spawned {
                    stdin: Box::pin(stdin),
                    stdout: Box::pin(stdout),
                    stderr: Box::pin(stderr),
                    child: Process::Local(child),
                })
            }
        }
    }

    /// Runs `command` (a constant: a kill, `true`) to its end.
    pub async fn status(&self, command: &str) -> Result<ExitStatus, String> {
        match self {
            Link::Ssh(session) => session
                .raw_command(command)
                .status()
                .await
                .map_err(|e| e.to_string()),
            Link::Local => local_command(command)
                .status()
                .await
                .map_err(|e| e.to_string()),
        }
    }

    /// Whether the link still carries commands (the SSH master answers).
    pub async fn alive(&self) -> bool {
        match self {
            Link::Ssh(session) => matches!(
                tokio::time::timeout(std::time::Duration::from_secs(2), session.check()).await,
                Ok(Ok(()))
            ),
            Link::Local => true,
        }
    }

    pub async fn close(self) {
        if let Link::Ssh(session) = self
            && let Err(e) = session.close().await
        {
            tracing::debug!(error = %e, "closing an SSH connection");
        }
    }
}
