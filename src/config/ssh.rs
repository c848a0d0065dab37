//! `[ssh]`: keys, known hosts, timeouts and keepalives.

use super::*;

impl<'a> Checker<'a> {
    /// An empty known_hosts file is legal, and no host can be reached
    /// with it: said at once rather than as a host key error per host
    /// later.
    fn warn_if_no_host_key(&mut self, f: &std::path::Path) {
        if let Ok(text) = std::fs::read_to_string(f)
            && !text
                .lines()
                .any(|l| !l.trim().is_empty() && !l.trim_start().starts_with('#'))
        {
            self.warning(
                &[Seg::Key("ssh"), Seg::Key("known_hosts_file")],
                format!(
                    "{} holds no host key: every connection will be refused; add each host's key (`ssh-keyscan -H HOST >> {}`) and compare its fingerprint with the host's owner",
                    f.display(),
                    f.display()
                ),
            );
        }
    }

    pub(super) fn ssh(&mut self, raw: RawSsh) -> Option<Ssh> {
        let at = |k| [Seg::Key("ssh"), Seg::Key(k)];
        let mut ok = true;
        let mut existing = |cx: &mut Self, key: &'static str, p: Option<PathBuf>| {
            let p = p.map(|p| cx.path(p));
            if let Some(f) = &p
                && let Err(e) = std::fs::metadata(f)
            {
                let m = cx.unreadable(f, &e);
                cx.problem(&at(key), m);
                ok = false;
            }
            p
        };
        let identity_file = existing(self, "identity_file", raw.identity_file);
        let config_file = existing(self, "config_file", raw.config_file);
        let known_hosts_file = match raw.known_hosts_file {
            Some(p) => existing(self, "known_hosts_file", Some(p)),
            None => {
                self.problem(
                    &at("known_hosts_file"),
                    "missing: ferry checks host keys strictly; collect them with `ssh-keyscan -H HOST >> known_hosts` and verify the fingerprints",
                );
                ok = false;
                None
            }
        };
        if let Some(f) = &known_hosts_file {
            self.warn_if_no_host_key(f);
        }
        let max = raw
            .max_connections
            .unwrap_or(DEFAULT_MAX_CONNECTIONS as i64);
        let max_connections = usize::try_from(max).ok().and_then(NonZeroUsize::new);
        if max_connections.is_none() {
            self.problem(
                &at("max_connections"),
                format!("{max} is not a positive number"),
            );
            ok = false;
        }
        let connect_timeout = self
            .duration(&at("connect_timeout"), raw.connect_timeout)
            .unwrap_or(DEFAULT_CONNECT_TIMEOUT);
        if connect_timeout < Duration::from_secs(1) {
            self.problem(&at("connect_timeout"), "must be at least 1s");
            ok = false;
        }
        // ssh counts ServerAliveInterval in whole seconds; 0 turns it off.
        let keepalive = self
            .duration(&at("keepalive"), raw.keepalive)
            .unwrap_or(DEFAULT_KEEPALIVE);
        let idle_timeout = self
            .duration(&at("idle_timeout"), raw.idle_timeout)
            .unwrap_or(DEFAULT_IDLE_TIMEOUT);
        if keepalive < Duration::from_secs(1) || keepalive.subsec_nanos() != 0 {
            self.problem(
                &at("keepalive"),
                "must be a whole number of seconds, at least 1s (ssh's ServerAliveInterval)",
            );
            ok = false;
        }
        if !ok {
            return None;
        }
        Some(Ssh {
            identity_file,
            known_hosts_file: known_hosts_file?,
            connect_timeout,
            config_file,
            max_connections: max_connections?,
            idle_timeout,
            keepalive,
        })
    }
}
