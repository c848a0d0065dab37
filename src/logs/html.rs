//! The HTML log page, from maud templates: every value put into a
//! template is escaped unless it is marked otherwise, so forgetting to
//! escape a line of remote output cannot happen. Complete without
//! JavaScript: the whole log is in the page as served; `assets/log.js`
//! only appends what comes after.

use std::fmt::Write;

use maud::{DOCTYPE, Markup, Render, html};

use super::{LogLine, Stream};
pub use crate::format::duration;
use crate::format::short_sha;
use crate::store::Timestamp;
use crate::store::{Deployment, State};

/// Text as the page has always escaped it (`'` too, as `&#39;`), for
/// templates: `(Esc(text))`. A value put in without it is still escaped,
/// by maud.
pub struct Esc<'a>(pub &'a str);

impl Render for Esc<'_> {
    fn render_to(&self, buffer: &mut String) {
        buffer.push_str(&escape(self.0));
    }
}

/// Remote output with its ANSI colours, as spans; see [`ansi_to_html`].
struct Ansi<'a>(&'a str);

impl Render for Ansi<'_> {
    fn render_to(&self, buffer: &mut String) {
        buffer.push_str(&ansi_to_html(self.0));
    }
}

pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A style as ANSI SGR codes set it.
#[derive(Default, Clone, Copy, PartialEq)]
struct Style {
    fg: Option<u8>,
    bg: Option<u8>,
    bold: bool,
    italic: bool,
    underline: bool,
}

impl Style {
    fn classes(&self) -> String {
        let mut c = Vec::new();
        if let Some(f) = self.fg {
            c.push(format!("f{f}"));
        }
        if let Some(b) = self.bg {
            c.push(format!("g{b}"));
        }
        if self.bold {
            c.push("b".into());
        }
        if self.italic {
            c.push("i".into());
        }
        if self.underline {
            c.push("u".into());
        }
        c.join(" ")
    }

    /// This style with one SGR sequence's codes applied.
    fn apply(mut self, codes: &[u16]) -> Style {
        // `ESC [ m` alone resets.
        if codes.is_empty() {
            return Style::default();
        }
        let mut codes = codes.iter().copied();
        while let Some(code) = codes.next() {
            match code {
                0 => self = Style::default(),
                1 => self.bold = true,
                3 => self.italic = true,
                4 => self.underline = true,
                22 => self.bold = false,
                23 => self.italic = false,
                24 => self.underline = false,
                30..=37 => self.fg = Some((code - 30) as u8),
                39 => self.fg = None,
                40..=47 => self.bg = Some((code - 40) as u8),
                49 => self.bg = None,
                90..=97 => self.fg = Some((code - 90 + 8) as u8),
                100..=107 => self.bg = Some((code - 100 + 8) as u8),
                38 | 48 => {
                    // 256-colour: the 16 basic ones map; others and 24-bit are skipped.
                    let colour = match codes.next() {
                        Some(5) => codes.next().filter(|n| *n < 16).map(|n| n as u8),
                        Some(2) => {
                            codes.next();
                            codes.next();
                            codes.next();
                            None
                        }
                        _ => None,
                    };
                    if code == 38 {
                        self.fg = colour;
                    } else {
                        self.bg = colour;
                    }
                }
                _ => {}
            }
        }
        self
    }
}

/// What the terminal parser hands over, written out as HTML.
#[derive(Default)]
struct Html {
    out: String,
    run: String,
    style: Style,
    open: bool,
}

impl Html {
    fn flush(&mut self) {
        if self.run.is_empty() {
            return;
        }
        if !self.open && self.style != Style::default() {
            let _ = write!(self.out, "<span class=\"{}\">", self.style.classes());
            self.open = true;
        }
        self.out.push_str(&escape(&self.run));
        self.run.clear();
    }

    fn finish(mut self) -> String {
        self.flush();
        if self.open {
            self.out.push_str("</span>");
        }
        self.out
    }
}

impl anstyle_parse::Perform for Html {
    fn print(&mut self, c: char) {
        self.run.push(c);
    }

    /// Control characters: a tab stays, the rest (carriage returns,
    /// bells, backspaces) are dropped.
    fn execute(&mut self, byte: u8) {
        if byte == b'\t' {
            self.run.push('\t');
        }
    }

    fn csi_dispatch(
        &mut self,
        params: &anstyle_parse::Params,
        _intermediates: &[u8],
        ignore: bool,
        action: u8,
    ) {
        // Only colours (SGR) show; cursor moves and erases do not.
        if action != b'm' || ignore {
            return;
        }
        let codes: Vec<u16> = params.iter().flatten().copied().collect();
        let next = self.style.apply(&codes);
        self.flush();
        if next != self.style && self.open {
            self.out.push_str("</span>");
            self.open = false;
        }
        self.style = next;
    }
}

/// Text with ANSI SGR colours as `<span class="…">`, escaped. Every other
/// escape sequence (cursor moves, OSC hyperlinks and titles, DCS) is
/// dropped whole, as a terminal's parser (anstyle-parse, the VT500 state
/// machine) delimits it: none of its bytes reach the page.
pub fn ansi_to_html(text: &str) -> String {
    let mut parser = anstyle_parse::Parser::<anstyle_parse::DefaultCharAccumulator>::new();
    let mut html = Html::default();
    for byte in text.bytes() {
        parser.advance(&mut html, byte);
    }
    html.finish()
}

fn clock(at: Timestamp) -> (String, String) {
    let full = at.rfc3339_millis();
    let short = full.get(11..23).unwrap_or(&full).to_string();
    (full, short)
}

/// One log line as HTML; `n` is its 1-based number in the whole log.
pub fn line_html(n: usize, l: &LogLine) -> String {
    line(n, l).into_string()
}

fn line(n: usize, l: &LogLine) -> Markup {
    let (full, short) = clock(l.t);
    let class = match l.stream {
        Stream::Out => "out",
        Stream::Err => "err",
        Stream::Ferry => "fy",
    };
    html! {
        div class={ "l " (class) } id={ "L" (n) } {
            a.n href={ "#L" (n) } { (n) }
            time datetime=(full) { (short) }
            span.t { (Ansi(&l.text)) }
        }
    }
}

/// A run of lines from one host and step (or from ferry itself).
struct Group<'a> {
    host: Option<&'a str>,
    step: Option<&'a str>,
    first: Timestamp,
    last: Timestamp,
    exit: Option<i32>,
    lines: Vec<(usize, &'a LogLine)>,
}

pub fn group_title(host: Option<&str>, step: Option<&str>) -> String {
    match (host, step) {
        (Some(h), Some(s)) => format!("{h} · {s}"),
        (Some(h), None) => format!("{h} · connect"),
        _ => "ferry".to_string(),
    }
}

fn groups(lines: &[LogLine]) -> Vec<Group<'_>> {
    let mut groups: Vec<Group> = Vec::new();
    for (i, l) in lines.iter().enumerate() {
        let key = (l.host.as_deref(), l.step.as_deref());
        let g = match groups.iter_mut().position(|g| (g.host, g.step) == key) {
            Some(p) => &mut groups[p],
            None => {
                groups.push(Group {
                    host: key.0,
                    step: key.1,
                    first: l.t,
                    last: l.t,
                    exit: None,
                    lines: Vec::new(),
                });
                groups.last_mut().expect("just pushed")
            }
        };
        g.last = l.t;
        if l.exit.is_some() {
            g.exit = l.exit;
        }
        g.lines.push((i + 1, l));
    }
    groups
}

/// The badge's class for a state.
pub fn state_class(s: State) -> &'static str {
    match s {
        State::Queued | State::Running => "running",
        State::Success => "success",
        State::Failure | State::Error => "failure",
        State::Inactive => "inactive",
    }
}

/// The page. `next_offset` is where the event stream picks up.
pub fn page(
    d: &Deployment,
    lines: Option<&[LogLine]>,
    next_offset: u64,
    token: &str,
    hosts: &[String],
) -> String {
    let live = !d.state.is_final();
    let n_lines = lines.map_or(0, <[LogLine]>::len);
    let started = d.started_at.map(|t| clock(t).0);
    let took = match (d.started_at, d.finished_at) {
        (Some(s), Some(f)) => duration(f - s),
        (Some(s), None) => format!("{} so far", duration(crate::store::Timestamp::now() - s)),
        _ => "not started".into(),
    };
    let events = format!("events?token={token}&from={next_offset}&line={n_lines}");
    let title = format!(
        "{} · {} → {} · {}",
        d.state,
        d.repository,
        d.environment,
        d.name()
    );
    let page = html! {
        (DOCTYPE)
        html lang="en" {
            head {
                meta charset="utf-8";
                meta name="viewport" content="width=device-width, initial-scale=1";
                title { (Esc(&title)) }
                link rel="stylesheet" href="../../assets/log.css";
            }
            body data-events=(Esc(&events)) data-live=(live) {
                header {
                    h1 {
                        span.repo { (Esc(&d.repository)) }
                        " → "
                        span.env { (Esc(&d.environment)) }
                        " "
                        span #state class={ "badge " (state_class(d.state)) } { (d.state) }
                    }
                    p #description { (Esc(&d.description)) }
                    // Each label with its value in one box, so that a long
                    // value wraps beside its label, never away from it.
                    dl {
                        div { dt { "deployment" } dd { (d.id) } }
                        div { dt { "task" } dd { (Esc(d.task_run())) } }
                        div { dt { "ref" } dd { (Esc(&d.git_ref)) } }
                        div { dt { "sha" } dd title=(Esc(&d.sha)) { (Esc(short_sha(&d.sha))) } }
                        @if !d.creator.is_empty() {
                            div { dt { "by" } dd { (Esc(&d.creator)) } }
                        }
                        div { dt { "started" } dd { (Esc(started.as_deref().unwrap_or("-"))) } }
                        div { dt { "duration" } dd #duration { (took) } }
                        div.hosts { dt { "hosts" } dd { (Esc(&hosts.join(", "))) } }
                    }
                }
                main #log { (log(d, lines, live)) }
                script src="../../assets/log.js" {}
            }
        }
    };
    page.into_string()
}

/// The log's groups, or why there is nothing to show.
fn log(d: &Deployment, lines: Option<&[LogLine]>, live: bool) -> Markup {
    match lines {
        None if d.state.is_final() && d.started_at.is_some() => html! {
            p.gone { "The log of this deployment is gone: it was removed after storage.log_retention." }
        },
        None | Some([]) => html! { p.empty { "No output yet." } },
        Some(lines) => html! {
            @for g in groups(lines) {
                @let failed = g.exit.is_some_and(|c| c != 0);
                @let exit = match g.exit {
                    Some(c) => format!("exit {c}"),
                    None if live && g.step.is_some() => "running".into(),
                    None => String::new(),
                };
                details class={ "group" @if failed { " failed" } }
                    data-host=(Esc(g.host.unwrap_or_default()))
                    data-step=(Esc(g.step.unwrap_or_default()))
                    open[failed || live || g.host.is_none()] {
                    summary {
                        span.title { (Esc(&group_title(g.host, g.step))) }
                        span.took { (duration(g.last - g.first)) }
                        span.exit { (exit) }
                    }
                    @for (n, l) in &g.lines { (line(*n, l)) }
                }
            }
        },
    }
}

#[cfg(test)]
#[path = "html_tests.rs"]
mod tests;
