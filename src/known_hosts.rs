//! What `known_hosts` says about a host, for `check-config` and
//! `check-hosts`: the fingerprints of the keys ferry will accept for it,
//! as `ssh-keygen -F` finds them (hashed entries and `[name]:port` alike).

use std::path::Path;
use std::process::Command;

use crate::config::Host;

/// The name `known_hosts` files a host under: `name`, or `[name]:port`
/// for another port than 22.
pub fn lookup_name(host: &Host) -> String {
    match host.port {
        Some(port) if port != 22 => format!("[{}]:{port}", host.name),
        _ => host.name.clone(),
    }
}

/// The `SHA256:` fingerprints of `host`'s keys in `file`; empty when it
/// has none there (or `ssh-keygen` cannot say).
pub fn fingerprints(file: &Path, host: &Host) -> Vec<String> {
    let Ok(out) = Command::new("ssh-keygen")
        .arg("-l")
        .arg("-F")
        .arg(lookup_name(host))
        .arg("-f")
        .arg(file)
        .output()
    else {
        return Vec::new();
    };
    let mut found: Vec<String> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter(|l| !l.starts_with('#'))
        .flat_map(|l| l.split_whitespace().map(str::to_string).collect::<Vec<_>>())
        .filter(|w| w.starts_with("SHA256:"))
        .collect();
    found.dedup();
    found
}

/// The exact command that adds `host`'s keys to `file`.
pub fn keyscan_command(host: &Host, file: &Path) -> String {
    format!(
        "ssh-keyscan -H{} {} >> {}",
        host.port
            .filter(|p| *p != 22)
            .map_or(String::new(), |p| format!(" -p {p}")),
        host.name,
        file.display()
    )
}

/// The `SHA256:` fingerprints (with their key types) of the keys `host`
/// offers now, as `ssh-keyscan` reads them; empty when it cannot say.
/// Bounded: the scan's own timeout, and ferry's on top.
pub async fn offered(host: &Host) -> Vec<String> {
    let mut scan = tokio::process::Command::new("ssh-keyscan");
    scan.args(["-T", "5"]);
    if let Some(p) = host.port {
        scan.arg("-p").arg(p.to_string());
    }
    scan.arg(&host.name).kill_on_drop(true);
    let Ok(Ok(keys)) = tokio::time::timeout(std::time::Duration::from_secs(8), scan.output()).await
    else {
        return Vec::new();
    };
    let Ok(mut keygen) = tokio::process::Command::new("ssh-keygen")
        .args(["-l", "-f", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true)
        .spawn()
    else {
        return Vec::new();
    };
    if let Some(mut stdin) = keygen.stdin.take() {
        use tokio::io::AsyncWriteExt;
        let _ = stdin.write_all(&keys.stdout).await;
    }
    let Ok(out) = keygen.wait_with_output().await else {
        return Vec::new();
    };
    // "256 SHA256:abc... [127.0.0.1]:2222 (ED25519)"
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            let fp = words.iter().find(|w| w.starts_with("SHA256:"))?;
            let kind = words.last().filter(|w| w.starts_with('('))?;
            Some(format!("{fp} {kind}"))
        })
        .collect()
}

/// The cause for a host whose key `known_hosts` does not list: what it
/// offered, and the command that trusts it (once the fingerprint is
/// checked against the host's own, `ssh-keygen -lf /etc/ssh/ssh_host_*.pub`
/// run there).
pub async fn unknown_key(host: &Host, file: &Path) -> String {
    let offered = offered(host).await;
    let what = if offered.is_empty() {
        String::new()
    } else {
        format!(" (the host offered {})", offered.join(", "))
    };
    format!(
        "unknown host key: {} has no key for {}{what}; check the fingerprint on the host, then run: {}",
        file.display(),
        lookup_name(host),
        keyscan_command(host, file)
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_are_looked_up_as_known_hosts_files_them() {
        let h = |s: &str| Host::parse(s).unwrap();
        assert_eq!(lookup_name(&h("deploy@web1.internal")), "web1.internal");
        assert_eq!(lookup_name(&h("web1.internal:22")), "web1.internal");
        assert_eq!(lookup_name(&h("web2:2222")), "[web2]:2222");
        assert_eq!(lookup_name(&h("[::1]:2200")), "[::1]:2200");
        let file = Path::new("/etc/ferry/known_hosts");
        assert_eq!(
            keyscan_command(&h("deploy@web2:2222"), file),
            "ssh-keyscan -H -p 2222 web2 >> /etc/ferry/known_hosts"
        );
        assert_eq!(
            keyscan_command(&h("web1"), file),
            "ssh-keyscan -H web1 >> /etc/ferry/known_hosts"
        );
    }
}
