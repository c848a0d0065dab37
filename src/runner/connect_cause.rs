//! Why an SSH connection could not be opened, in an operator's words:
//! ssh's diagnostics read for the cases people can act on (a changed or
//! unknown host key, a refused login, nothing listening, a timeout).

use std::time::Duration;

/// How a cause for a key `known_hosts` does not list begins.
pub(super) const UNKNOWN_HOST_KEY: &str = "unknown host key";

/// Turns ssh's diagnostics into a cause in an operator's words.
pub(super) fn connect_cause(e: &openssh::Error, timeout: Duration) -> String {
    let text = crate::error::error_chain(e);
    let t = text.to_ascii_lowercase();
    if t.contains("remote host identification has changed")
        || t.contains("host key for") && t.contains("has changed")
    {
        host_key_mismatch(&text)
    } else if t.contains("host key is known")
        || t.contains("no matching host key")
        || (t.contains("host key verification failed") && !t.contains("changed"))
    {
        format!(
            "{UNKNOWN_HOST_KEY}: add the host to ssh.known_hosts_file (ssh-keyscan, then check the fingerprint)"
        )
    } else if t.contains("permission denied") {
        "authentication refused: check ssh.identity_file and the user's authorized_keys".to_string()
    } else if t.contains("connection refused") {
        "connection refused: nothing listens on the SSH port".to_string()
    } else if t.contains("timed out") {
        format!(
            "connection timed out after {}",
            crate::format::duration(timeout)
        )
    } else if t.contains("could not resolve") || t.contains("name or service not known") {
        "cannot resolve the host name".to_string()
    } else if t.contains("no route to host") || t.contains("network is unreachable") {
        "host unreachable".to_string()
    } else if t.contains("connection closed")
        || t.contains("connection reset")
        || t.contains("kex_exchange_identification")
    {
        "the host closed the connection during the handshake (sshd MaxStartups or a firewall?)"
            .to_string()
    } else {
        // The last line of ssh's output is usually the one that matters.
        text.lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or(&text)
            .trim()
            .to_string()
    }
}

/// A changed host key in words an operator can check against the host:
/// the fingerprint of the key it offered and the `known_hosts` line it
/// contradicts, both read from ssh's warning.
pub(super) fn host_key_mismatch(ssh_said: &str) -> String {
    let fingerprint = ssh_said
        .split_whitespace()
        .find(|w| w.starts_with("SHA256:"))
        .map(|w| w.trim_end_matches('.'));
    // "Offending ED25519 key in /etc/ferry/known_hosts:3"
    let offending = ssh_said.lines().find_map(|l| {
        let l = l.trim();
        let rest = l.strip_prefix("Offending ")?;
        let (_, place) = rest.split_once(" key in ")?;
        Some(place.trim().to_string())
    });
    let mut m = String::from("host key mismatch (possible man-in-the-middle): the host offered ");
    match fingerprint {
        Some(f) => m.push_str(&format!("key {f}")),
        None => m.push_str("a different key"),
    }
    match offending {
        Some(place) => m.push_str(&format!(", which contradicts {place}")),
        None => m.push_str(", which contradicts ssh.known_hosts_file"),
    }
    m.push_str(
        "; if the host was rebuilt, check the new fingerprint with its owner and replace that line",
    );
    m
}
