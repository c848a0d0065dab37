use super::*;

#[test]
fn ferrys_strict_options_come_before_the_operators_config() {
    let dir = tempfile::tempdir().unwrap();
    let extra = dir.path().join("extra.conf");
    std::fs::write(&extra, "Host *\n    StrictHostKeyChecking no\n").unwrap();
    let ssh = Ssh {
        identity_file: Some(dir.path().join("id")),
        known_hosts_file: dir.path().join("known hosts"),
        connect_timeout: Duration::from_secs(7),
        config_file: Some(extra.clone()),
        max_connections: NonZeroUsize::new(8).unwrap(),
        idle_timeout: Duration::ZERO,
        keepalive: Duration::from_secs(4),
    };
    let c = ssh_config(&ssh).unwrap();
    let strict = c.find("StrictHostKeyChecking yes").unwrap();
    let include = c.find("Include ").unwrap();
    assert!(strict < include, "{c}");
    assert!(
        c.contains(&format!(
            "UserKnownHostsFile \"{}\"",
            dir.path().join("known hosts").display()
        )),
        "{c}"
    );
    assert!(c.contains("ConnectTimeout 7"), "{c}");
    assert!(c.contains("ServerAliveInterval 4\n"), "{c}");
    assert!(c.contains("ServerAliveCountMax 3\n"), "{c}");
    assert!(c.contains("IdentitiesOnly yes"), "{c}");
    assert!(
        c.trim_end().ends_with(&format!(
            "Include \"{}\"",
            extra.canonicalize().unwrap().display()
        )),
        "{c}"
    );
    let bad = Ssh {
        known_hosts_file: dir.path().join("a\"b"),
        ..ssh
    };
    assert!(ssh_config(&bad).is_err());
}

#[test]
fn a_changed_host_key_names_the_fingerprint_and_the_line() {
    let said = "@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
@    WARNING: REMOTE HOST IDENTIFICATION HAS CHANGED!     @
@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@@
IT IS POSSIBLE THAT SOMEONE IS DOING SOMETHING NASTY!
The fingerprint for the ED25519 key sent by the remote host is
SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU.
Please contact your system administrator.
Add correct host key in /etc/ferry/known_hosts to get rid of this message.
Offending ED25519 key in /etc/ferry/known_hosts:3
Host key for [127.0.0.1]:2222 has changed and you have requested strict checking.
Host key verification failed.";
    let cause = host_key_mismatch(said);
    assert!(
        cause.contains("key SHA256:47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU,"),
        "{cause}"
    );
    assert!(
        cause.contains("contradicts /etc/ferry/known_hosts:3"),
        "{cause}"
    );
}
