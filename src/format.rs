//! How ferry writes durations, shas and counts, the same in statuses, logs,
//! pages and the CLI.

use std::time::Duration;

/// `148ms`, `14s`, `2m 5s`, `7d`: precise when short, rounded to the
/// second when long, in the units the config is written in.
pub fn duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        return format!("{}ms", d.as_millis());
    }
    units(d.as_secs_f64().round() as u64, 4)
}

/// A span as people read it at a glance: its two largest units ("2h 5m",
/// "3d 4h", "45s"; "0s" under half a second).
pub fn rough_duration(d: Duration) -> String {
    match units(d.as_secs_f64().round() as u64, 2) {
        s if s.is_empty() => "0s".into(),
        s => s,
    }
}

/// `seconds` in days, hours, minutes and seconds, from the largest unit
/// that is not zero, at most `most` of them, the zero ones left out.
fn units(seconds: u64, most: usize) -> String {
    let parts: Vec<String> = [(86_400, "d"), (3_600, "h"), (60, "m"), (1, "s")]
        .iter()
        .scan(seconds, |left, &(unit, name)| {
            let n = *left / unit;
            *left %= unit;
            Some((n, name))
        })
        .skip_while(|(n, _)| *n == 0)
        .take(most)
        .filter(|(n, _)| *n > 0)
        .map(|(n, name)| format!("{n}{name}"))
        .collect();
    parts.join(" ")
}

/// The first seven characters, as GitHub shows a commit.
pub fn short_sha(sha: &str) -> &str {
    sha.get(..7).unwrap_or(sha)
}

/// `1 host`, `3 hosts`.
pub fn plural(n: usize, one: &str) -> String {
    if n == 1 {
        format!("1 {one}")
    } else {
        format!("{n} {one}s")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_shas_and_counts() {
        assert_eq!(duration(Duration::from_millis(148)), "148ms");
        assert_eq!(duration(Duration::from_millis(14_400)), "14s");
        assert_eq!(duration(Duration::from_secs(125)), "2m 5s");
        assert_eq!(duration(Duration::from_secs(7 * 86400)), "7d");
        assert_eq!(duration(Duration::from_secs(30 * 86400)), "30d");
        assert_eq!(duration(Duration::from_secs(93_784)), "1d 2h 3m 4s");
        assert_eq!(duration(Duration::from_secs(3600)), "1h");
        assert_eq!(
            short_sha("f95f852bd8fca8fcc58a9a2d6c842781e32a215e"),
            "f95f852"
        );
        assert_eq!(short_sha("abc"), "abc");
        assert_eq!(plural(1, "host"), "1 host");
        assert_eq!(plural(3, "host"), "3 hosts");
    }
}
