//! What ferry sends to a host to run one step.
//!
//! The command line is a constant: no configured or webhook value is ever
//! part of it. The step's variables and script travel on stdin; the wrapper
//! reads all of stdin before running anything, so a step that reads stdin
//! gets end-of-file instead of eating its own script. Variable values are
//! single-quoted, which POSIX sh takes literally: `$(…)`, backticks, `;` and
//! `${IFS}` in a ref are just characters.
//!
//! The wrapper first reports its process group and the host's boot on
//! stderr, both read by the shell itself (`read`, not `cat`: a step
//! should cost its host as few processes as can be). sshd starts every
//! session in a new session (`setsid`), so that group holds the step and
//! everything it started; killing it on timeout or cancel leaves nothing
//! behind (short of a process that calls `setsid` itself).
//!
//! Then the step's stderr is pointed at its stdout (`exec 2>&1`), so the
//! log holds its output in the order it was written, as a terminal would
//! show it. Two streams cannot keep their order: sshd, the connection's
//! multiplexer and ferry each read stdout and stderr apart, and a line
//! written to stderr after one on stdout could land first. Only what the
//! wrapper itself says before that (the marker; `cat` failing) is stderr.

/// First stderr line of every step, before any output of the step.
pub const PGID_MARKER: &str = "ferry-pgid:";

pub const WRAPPER: &str = concat!(
    "exec sh -c '",
    "read -r _ _ _ _ __ferry_g _ 2>/dev/null </proc/$$/stat || __ferry_g=$(ps -o pgid= -p $$ 2>/dev/null); ",
    "read -r __ferry_b 2>/dev/null </proc/sys/kernel/random/boot_id || __ferry_b=; ",
    "echo \"ferry-pgid:$__ferry_g $__ferry_b\" >&2; ",
    "__ferry_s=$(cat) || exit 125; unset __ferry_g __ferry_b; ",
    "exec 2>&1; set -e; eval \"$__ferry_s\"'"
);

/// Ends every process of the step's group: TERM, a moment to clean up, KILL.
/// No `--` before the group: dash, the login shell of many deploy users
/// (`/bin/sh`), takes it for a pid ("Illegal number"), and the kill,
/// its error hidden, left the step running.
pub fn kill_command(pgid: u32) -> String {
    format!("kill -TERM -{pgid} 2>/dev/null; sleep 2; kill -KILL -{pgid} 2>/dev/null; exit 0")
}

/// The process group a step runs in, and the boot of the host it runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteGroup {
    pub pgid: u32,
    pub boot_id: String,
}

impl RemoteGroup {
    /// Reads the wrapper's first line: `<pgid> [<boot id>]`.
    pub fn parse(marker: &str) -> Option<RemoteGroup> {
        let mut words = marker.split_whitespace();
        let pgid = words.next()?.parse().ok().filter(|&g: &u32| g > 1)?;
        let boot_id = words
            .next()
            .filter(|b| b.len() <= 64 && b.bytes().all(|c| c.is_ascii_hexdigit() || c == b'-'))
            .unwrap_or_default()
            .to_string();
        Some(RemoteGroup { pgid, boot_id })
    }
}

/// Ends a group left by a dead ferry, but only if the host has not rebooted
/// since: after a reboot the number may belong to anything.
pub fn kill_leftover_command(group: &RemoteGroup) -> Option<String> {
    if group.boot_id.is_empty() {
        return None;
    }
    Some(format!(
        "[ \"$(cat /proc/sys/kernel/random/boot_id 2>/dev/null)\" = {boot} ] || exit 0; {kill}",
        boot = quote(&group.boot_id),
        kill = kill_command(group.pgid)
    ))
}

/// A value as a single-quoted sh word.
pub fn quote(value: &str) -> String {
    // sh strings end at NUL; a payload escaping one is mangled, not truncated.
    let value = value.replace('\0', "\u{FFFD}");
    format!("'{}'", value.replace('\'', r"'\''"))
}

/// stdin for the wrapper: `export NAME='value'` lines, then the script.
pub fn stdin_for(vars: &[(&str, String)], script: &str) -> Vec<u8> {
    let mut s = String::new();
    for (name, value) in vars {
        debug_assert!(name.bytes().all(|b| b.is_ascii_uppercase() || b == b'_'));
        s.push_str("export ");
        s.push_str(name);
        s.push('=');
        s.push_str(&quote(value));
        s.push('\n');
    }
    s.push_str(script);
    s.push('\n');
    s.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::{Command, Stdio};

    /// The wrapper run by the local sh exactly as sshd's shell would run it.
    fn run_locally(vars: &[(&str, String)], script: &str) -> (String, String, i32) {
        use std::io::Write;
        let mut child = Command::new("sh")
            .arg("-c")
            .arg(WRAPPER)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(&stdin_for(vars, script))
            .unwrap();
        let out = child.wait_with_output().unwrap();
        (
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
            out.status.code().unwrap_or(-1),
        )
    }

    #[test]
    fn hostile_values_arrive_verbatim_and_run_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let marker = dir.path().join("pwned");
        let evil = [
            format!("x;touch${{IFS}}{}", marker.display()),
            format!("$(touch {})", marker.display()),
            format!("`touch {}`", marker.display()),
            format!("'; touch {} ; '", marker.display()),
            "\"double\" and \\ backslash\nnew line".to_string(),
        ];
        for value in evil {
            let (out, _, code) = run_locally(
                &[("FERRY_REF", value.clone())],
                "printf '%s' \"$FERRY_REF\"",
            );
            assert_eq!(code, 0);
            assert_eq!(out, value);
            assert!(!marker.exists(), "{value:?} ran a command");
        }
    }

    #[test]
    fn reports_its_process_group_first_and_fails_like_sh_e() {
        let (out, err, code) = run_locally(&[], "echo one\nfalse\necho never");
        assert_eq!(out, "one\n");
        assert_eq!(code, 1);
        let first = err.lines().next().unwrap();
        let group = RemoteGroup::parse(first.strip_prefix(PGID_MARKER).unwrap()).unwrap();
        assert!(group.pgid > 1);
        let boot = std::fs::read_to_string("/proc/sys/kernel/random/boot_id").unwrap();
        assert_eq!(group.boot_id, boot.trim());
        assert!(RemoteGroup::parse("1 abc").is_none(), "never group 1");
        assert_eq!(
            RemoteGroup::parse("77 $(reboot)").unwrap().boot_id,
            "",
            "only hex and dashes"
        );
        let (_, _, code) = run_locally(&[], "exit 3");
        assert_eq!(code, 3);
    }

    #[test]
    fn stdout_and_stderr_arrive_as_one_stream_in_the_order_written() {
        let script = "i=0\nwhile [ $i -lt 200 ]; do echo out$i; echo err$i >&2; i=$((i+1)); done\nls /no/such/file";
        let (out, err, code) = run_locally(&[], script);
        assert_eq!(code, 2);
        let expected: Vec<String> = (0..200)
            .flat_map(|i| [format!("out{i}"), format!("err{i}")])
            .collect();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(
            lines[..400],
            expected.iter().map(String::as_str).collect::<Vec<_>>()[..]
        );
        assert!(lines[400].contains("/no/such/file"), "{out}");
        assert_eq!(err.lines().count(), 1, "only the marker: {err}");
    }

    #[test]
    fn a_step_reading_stdin_gets_eof_not_its_script() {
        let (out, _, code) = run_locally(&[], "cat\necho after");
        assert_eq!(code, 0);
        assert_eq!(out, "after\n");
    }
}
