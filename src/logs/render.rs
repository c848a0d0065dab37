//! Plain-text rendering of a log, for `Accept: text/plain` and `ferry logs`.

use super::{LogLine, Stream};

/// One line of text per log line:
/// `2026-11-21T05:31:02.511Z web1 checkout stderr: fatal: ...`.
pub fn text(lines: &[LogLine]) -> String {
    let mut out = String::new();
    for l in lines {
        out.push_str(&l.t.rfc3339_millis());
        if l.stream == Stream::Ferry {
            out.push_str(" ferry");
        }
        for part in [&l.host, &l.step].into_iter().flatten() {
            out.push(' ');
            out.push_str(part);
        }
        if l.stream == Stream::Err {
            out.push_str(" stderr");
        }
        out.push_str(": ");
        out.push_str(&l.text);
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_host_step_and_stream() {
        let line = |host: Option<&str>, step: Option<&str>, stream, text: &str| LogLine {
            t: crate::store::Timestamp::from_millis(1_700_000_000_123),
            host: host.map(Into::into),
            step: step.map(Into::into),
            stream,
            text: text.into(),
            exit: None,
        };
        let t = text(&[
            line(None, None, Stream::Ferry, "starting"),
            line(Some("web1"), Some("build"), Stream::Out, "ok"),
            line(Some("web1"), Some("build"), Stream::Err, "oops"),
        ]);
        assert_eq!(
            t,
            "2023-11-14T22:13:20.123Z ferry: starting\n\
             2023-11-14T22:13:20.123Z web1 build: ok\n\
             2023-11-14T22:13:20.123Z web1 build stderr: oops\n"
        );
    }
}
