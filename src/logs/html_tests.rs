use super::*;

#[test]
fn everything_from_the_host_is_escaped() {
    assert_eq!(
        ansi_to_html("<script>alert('x')</script> & \"q\""),
        "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
    );
    assert_eq!(
        ansi_to_html("\x1b[31m<b>\x1b[0m"),
        "<span class=\"f1\">&lt;b&gt;</span>"
    );
}

#[test]
fn ansi_colours_become_classes() {
    assert_eq!(
        ansi_to_html("\x1b[1;32mok\x1b[0m done"),
        "<span class=\"f2 b\">ok</span> done"
    );
    assert_eq!(
        ansi_to_html("\x1b[91mred\x1b[39m plain"),
        "<span class=\"f9\">red</span> plain"
    );
    assert_eq!(
        ansi_to_html("\x1b[38;5;4mblue\x1b[m"),
        "<span class=\"f4\">blue</span>"
    );
    assert_eq!(ansi_to_html("\x1b[38;2;1;2;3mrgb\x1b[0m"), "rgb");
    // Cursor movement and other sequences are dropped, not shown.
    assert_eq!(ansi_to_html("a\x1b[2Kb\x1b[1Ac\rd"), "abcd");
    assert_eq!(ansi_to_html("unterminated \x1b[31"), "unterminated ");
}

#[test]
fn osc_sequences_are_dropped_whole() {
    // A terminal hyperlink (OSC 8) and a window title (OSC 0), ended by
    // ST or BEL: only the link's visible text shows.
    assert_eq!(
        ansi_to_html("see \x1b]8;;https://example.com\x1b\\docs\x1b]8;;\x1b\\ now"),
        "see docs now"
    );
    assert_eq!(ansi_to_html("\x1b]0;my title\x07after"), "after");
    assert_eq!(ansi_to_html("tab\there\r"), "tab\there");
    assert_eq!(
        ansi_to_html("é\x1b[1mü\x1b[0m"),
        "é<span class=\"b\">ü</span>"
    );
}

fn line(host: Option<&str>, step: Option<&str>, text: &str, exit: Option<i32>) -> LogLine {
    LogLine {
        t: crate::store::Timestamp::from_millis(1_700_000_000_000),
        host: host.map(Into::into),
        step: step.map(Into::into),
        stream: Stream::Out,
        text: text.into(),
        exit,
    }
}

#[test]
fn lines_are_grouped_by_host_and_step_with_global_numbers() {
    let lines = vec![
        line(None, None, "deploying", None),
        line(Some("web1"), Some("build"), "a", None),
        line(Some("web2"), Some("build"), "b", None),
        line(Some("web1"), Some("build"), "done", Some(0)),
        line(Some("web2"), Some("build"), "failed", Some(3)),
    ];
    let g = groups(&lines);
    assert_eq!(g.len(), 3);
    assert_eq!(
        g[1].lines.iter().map(|(n, _)| *n).collect::<Vec<_>>(),
        [2, 4]
    );
    assert_eq!(g[2].exit, Some(3));
    let html = line_html(4, &lines[3]);
    assert!(
        html.contains("id=\"L4\"") && html.contains("href=\"#L4\""),
        "{html}"
    );
}
