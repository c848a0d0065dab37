//! `[[notify]]`: the sinks ferry tells of deployments and locks, a generic
//! webhook or a Slack channel each (docs/configuration.md, "Notifications").
//! Every problem is named by its key, so that a typo in an event name is
//! found by `check-config`, not by a quiet channel on the day it mattered.

use super::*;

/// An event a sink may hear: a deployment's status, or an environment's
/// lock being taken or lifted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum NotifyEvent {
    Queued,
    InProgress,
    Success,
    Failure,
    Error,
    Inactive,
    Locked,
    Unlocked,
}

impl NotifyEvent {
    pub const ALL: [NotifyEvent; 8] = [
        NotifyEvent::Queued,
        NotifyEvent::InProgress,
        NotifyEvent::Success,
        NotifyEvent::Failure,
        NotifyEvent::Error,
        NotifyEvent::Inactive,
        NotifyEvent::Locked,
        NotifyEvent::Unlocked,
    ];
    /// What a sink hears when it names no `events`.
    pub const DEFAULT: [NotifyEvent; 6] = [
        NotifyEvent::InProgress,
        NotifyEvent::Success,
        NotifyEvent::Failure,
        NotifyEvent::Error,
        NotifyEvent::Locked,
        NotifyEvent::Unlocked,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            NotifyEvent::Queued => "queued",
            NotifyEvent::InProgress => "in_progress",
            NotifyEvent::Success => "success",
            NotifyEvent::Failure => "failure",
            NotifyEvent::Error => "error",
            NotifyEvent::Inactive => "inactive",
            NotifyEvent::Locked => "locked",
            NotifyEvent::Unlocked => "unlocked",
        }
    }

    pub fn parse(s: &str) -> Option<NotifyEvent> {
        NotifyEvent::ALL.into_iter().find(|e| e.as_str() == s)
    }

    /// Whether it is about one deployment (rather than an environment).
    pub fn of_deployment(self) -> bool {
        !matches!(self, NotifyEvent::Locked | NotifyEvent::Unlocked)
    }
}

/// One `[[notify]]` table.
#[derive(Debug, Clone)]
pub struct Sink {
    pub name: String,
    pub kind: SinkKind,
    /// Globs; empty: every repository.
    pub repositories: Vec<String>,
    /// Globs; empty: every environment.
    pub environments: Vec<String>,
    pub events: Vec<NotifyEvent>,
}

#[derive(Debug, Clone)]
pub enum SinkKind {
    /// A generic webhook; `secret` (the file's first line) signs each body.
    Webhook { url: String, secret: Option<Secret> },
    /// A Slack channel, through the Web API with a bot token.
    Slack {
        token: Secret,
        channel: String,
        /// Without a trailing slash.
        api_url: String,
    },
}

impl Sink {
    /// Whether this sink hears `event` in this repository and environment.
    pub fn hears(&self, event: NotifyEvent, repository: &str, environment: &str) -> bool {
        let any = |globs: &[String], name: &str| {
            globs.is_empty() || globs.iter().any(|g| glob::matches(g, name))
        };
        self.events.contains(&event)
            && any(&self.repositories, repository)
            && any(&self.environments, environment)
    }
}

/// The keys that decide a sink's kind.
struct SinkKeys {
    url: Option<String>,
    secret_file: Option<PathBuf>,
    slack_token_file: Option<PathBuf>,
    channel: Option<String>,
    slack_api_url: Option<String>,
}

pub const DEFAULT_SLACK_API_URL: &str = "https://slack.com/api";

impl<'a> Checker<'a> {
    /// Every `[[notify]]`; None after reporting each bad key.
    pub(super) fn sinks(&mut self) -> Option<Vec<Sink>> {
        self.named_tables::<RawNotify, _>("notify", "a sink", Self::sink, |s| &s.name)
    }

    fn sink(&mut self, i: usize, raw: RawNotify) -> Option<Sink> {
        let at = |k| [Seg::Key("notify"), Seg::Index(i), Seg::Key(k)];
        let item = |k, j| {
            [
                Seg::Key("notify"),
                Seg::Index(i),
                Seg::Key(k),
                Seg::Index(j),
            ]
        };
        let mut ok = true;
        let name = match raw.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => {
                self.problem(&at("name"), "missing, e.g. \"ops-slack\"");
                ok = false;
                String::new()
            }
        };
        let events = self.sink_events(i, raw.events, &mut ok);
        for (key, globs) in [
            ("repositories", &raw.repositories),
            ("environments", &raw.environments),
        ] {
            for (j, g) in globs.iter().enumerate() {
                if g.trim().is_empty() {
                    self.problem(&item(key, j), "an empty name matches nothing");
                    ok = false;
                }
            }
        }
        let kind = self.sink_kind(
            i,
            SinkKeys {
                url: raw.url,
                secret_file: raw.secret_file,
                slack_token_file: raw.slack_token_file,
                channel: raw.channel,
                slack_api_url: raw.slack_api_url,
            },
            &mut ok,
        );
        if !ok {
            return None;
        }
        Some(Sink {
            name,
            kind: kind?,
            repositories: raw.repositories,
            environments: raw.environments,
            events,
        })
    }

    /// `events`, the default when it is left out; a problem for each name
    /// that is not an event (with the closest one), and for none at all.
    fn sink_events(
        &mut self,
        i: usize,
        raw: Option<Vec<String>>,
        ok: &mut bool,
    ) -> Vec<NotifyEvent> {
        let at = |k| [Seg::Key("notify"), Seg::Index(i), Seg::Key(k)];
        let item = |k, j| {
            [
                Seg::Key("notify"),
                Seg::Index(i),
                Seg::Key(k),
                Seg::Index(j),
            ]
        };
        let mut events = Vec::new();
        match raw {
            None => events.extend(NotifyEvent::DEFAULT),
            Some(names) if names.is_empty() => {
                self.problem(
                    &at("events"),
                    "empty: this sink would hear nothing; leave the key out for the default",
                );
                *ok = false;
            }
            Some(names) => {
                for (j, e) in names.iter().enumerate() {
                    match NotifyEvent::parse(e) {
                        Some(e) if !events.contains(&e) => events.push(e),
                        Some(_) => {}
                        None => {
                            let known: Vec<&str> =
                                NotifyEvent::ALL.iter().map(|e| e.as_str()).collect();
                            let hint = match checker::suggest(e, &known) {
                                Some(s) => format!("did you mean {s:?}?"),
                                None => format!("the events are: {}", known.join(", ")),
                            };
                            self.problem(
                                &item("events", j),
                                format!("{e:?} is not an event; {hint}"),
                            );
                            *ok = false;
                        }
                    }
                }
            }
        }
        events
    }

    /// The sink's kind from its keys: a webhook (`url`) or Slack
    /// (`slack_token_file` and `channel`), exactly one; a problem for each
    /// key of the other kind.
    fn sink_kind(&mut self, i: usize, keys: SinkKeys, ok: &mut bool) -> Option<SinkKind> {
        let at = |k| [Seg::Key("notify"), Seg::Index(i), Seg::Key(k)];
        match (keys.url, keys.slack_token_file) {
            (Some(_), Some(_)) => {
                self.problem(
                    &at("url"),
                    "a sink is a webhook (url) or Slack (slack_token_file), not both: make two [[notify]] tables",
                );
                None
            }
            (None, None) => {
                self.problem(
                    &[Seg::Key("notify"), Seg::Index(i)],
                    "no kind: give it url = \"https://...\" (a webhook) or slack_token_file and channel (Slack)",
                );
                None
            }
            (Some(url), None) => {
                for (key, set) in [
                    ("channel", keys.channel.is_some()),
                    ("slack_api_url", keys.slack_api_url.is_some()),
                ] {
                    if set {
                        self.problem(&at(key), "only for Slack (slack_token_file), not with url");
                        *ok = false;
                    }
                }
                let url = self.notify_url(&at("url"), &url);
                let secret = match keys.secret_file {
                    None => Some(None),
                    Some(file) => self.first_line(&at("secret_file"), file).map(Some),
                };
                match (url, secret) {
                    (Some(url), Some(secret)) => Some(SinkKind::Webhook { url, secret }),
                    _ => None,
                }
            }
            (None, Some(token_file)) => {
                if keys.secret_file.is_some() {
                    self.problem(
                        &at("secret_file"),
                        "signs a webhook's bodies: only with url (Slack is reached with the token)",
                    );
                    *ok = false;
                }
                let token = self.first_line(&at("slack_token_file"), token_file);
                let channel = match keys.channel {
                    Some(c) if !c.trim().is_empty() => Some(c.trim().to_string()),
                    _ => {
                        self.problem(
                            &at("channel"),
                            "missing: the channel's id, e.g. \"C0123456789\" (in Slack: the channel's details, at the bottom)",
                        );
                        None
                    }
                };
                let api_url = match keys.slack_api_url {
                    Some(u) => self.notify_url(&at("slack_api_url"), &u),
                    None => Some(DEFAULT_SLACK_API_URL.to_string()),
                };
                match (token, channel, api_url) {
                    (Some(token), Some(channel), Some(api_url)) => Some(SinkKind::Slack {
                        token,
                        channel,
                        api_url,
                    }),
                    _ => None,
                }
            }
        }
    }

    /// An http(s) URL with a host; a query is fine (some receivers take
    /// their key there).
    fn notify_url(&mut self, path: &[Seg], url: &str) -> Option<String> {
        match reqwest::Url::parse(url) {
            Ok(u) if matches!(u.scheme(), "http" | "https") && u.host_str().is_some() => {
                Some(url.trim_end_matches('/').to_string())
            }
            _ => {
                self.problem(
                    path,
                    format!("{url:?} is not an http(s) URL, e.g. \"https://host/path\""),
                );
                None
            }
        }
    }

    /// A secret file's first line; a problem at `path` when it cannot be
    /// read or is empty.
    fn first_line(&mut self, path: &[Seg], file: PathBuf) -> Option<Secret> {
        let file = self.path(file);
        let bytes = self.read_file(path, &file)?;
        let text = String::from_utf8_lossy(&bytes);
        match text.lines().map(str::trim).next().filter(|l| !l.is_empty()) {
            Some(line) => Some(Secret::new(line.as_bytes())),
            None => {
                self.problem(
                    path,
                    format!("{} is empty: its first line is the secret", file.display()),
                );
                None
            }
        }
    }
}

#[cfg(test)]
#[path = "notify_tests.rs"]
mod tests;
