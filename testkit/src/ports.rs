//! Ports a test owns from start to end, with no moment at which another
//! process could take them.
//!
//! Looking for a free port by binding port 0 and closing it leaves a gap:
//! before the server binds it (or while ferry is down between a kill and
//! a restart), an outgoing connection may get it as its source port, or
//! another server may bind it. A [`Port`] instead keeps a socket bound
//! (`SO_REUSEPORT`, never listening) for as long as the test holds it:
//! connections to it are refused, nothing else can bind it, and only a
//! listener of ours (also `SO_REUSEPORT`, same user) joins it. ferry gets
//! that listener as systemd hands one over (`LISTEN_FDS`), so it never
//! binds the port itself; when ferry dies its listener closes and the port
//! refuses again, still ours.

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, RawFd};
use std::os::unix::process::CommandExt;
use std::process::Command;

use socket2::{Domain, Socket, Type};

pub struct Port {
    _reserved: Socket,
    pub port: u16,
}

impl Port {
    /// A loopback port held until this is dropped; it refuses connections
    /// until [`Port::listen`].
    pub fn reserve() -> Port {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_reuse_port(true).unwrap();
        s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, 0)).into())
            .unwrap();
        let port = s.local_addr().unwrap().as_socket().unwrap().port();
        Port { _reserved: s, port }
    }

    /// A listening socket on this port. While it (or a process it was
    /// handed to) is open, connections reach it; after, they are refused.
    pub fn listen(&self) -> TcpListener {
        let s = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
        s.set_reuse_port(true).unwrap();
        s.set_reuse_address(true).unwrap();
        s.bind(&SocketAddr::from((Ipv4Addr::LOCALHOST, self.port)).into())
            .unwrap();
        s.listen(1024).unwrap();
        s.into()
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
}

/// Makes `command` start with `sockets` as systemd's socket activation
/// passes them: descriptors 3, 4, … with `LISTEN_FDS` and `LISTEN_PID`
/// naming the process. Each must stay open until the command is
/// spawned. The process is started through `sh`, which learns
/// its own pid (`$$`) and `exec`s the program under it.
pub fn hand_over(program: &std::path::Path, sockets: &[&dyn AsRawFd]) -> Command {
    const MAX: usize = 4;
    assert!(sockets.len() <= MAX, "at most {MAX} sockets");
    let mut fds: [RawFd; MAX] = [-1; MAX];
    for (i, s) in sockets.iter().enumerate() {
        fds[i] = s.as_raw_fd();
    }
    let count = sockets.len();
    let mut c = Command::new("sh");
    c.args(["-c", "export LISTEN_PID=$$; exec \"$0\" \"$@\""])
        .arg(program)
        .env("LISTEN_FDS", count.to_string())
        .env_remove("LISTEN_PID")
        .env_remove("LISTEN_FDNAMES");
    // SAFETY: only async-signal-safe calls (fcntl, dup2) on descriptors
    // this process owns, no allocation. Each is first copied above 63 so
    // that placing one on 3.. cannot overwrite another not yet placed;
    // dup2 clears close-on-exec on its copy, the high copies keep it.
    unsafe {
        c.pre_exec(move || {
            let mut high: [RawFd; MAX] = [-1; MAX];
            for i in 0..count {
                high[i] = libc::fcntl(fds[i], libc::F_DUPFD_CLOEXEC, 64);
                if high[i] < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            for (i, fd) in high.iter().enumerate().take(count) {
                if libc::dup2(*fd, 3 + i as RawFd) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
            }
            Ok(())
        });
    }
    c
}
