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
    }
}
