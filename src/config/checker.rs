//! The checker's machinery: the parsed document with its spans, so that every
//! problem names its key and line; unknown keys with a "did you mean"; and
//! `check`, which runs a checker per section (the files beside this one)
//! so that one run reports every problem.

use super::*;

pub(super) fn line_of(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

pub(super) fn key_name(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                s.push_str(k);
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

pub(super) fn keep_only(table: &mut DeTable, known: &[&str]) {
    let unknown: Vec<String> = table
        .iter()
        .map(|(k, _)| k.get_ref().to_string())
        .filter(|k| !known.contains(&k.as_str()))
        .collect();
    for k in unknown {
        table.remove(k.as_str());
    }
}

pub(super) fn lookup<'v>(table: &'v DeTable<'v>, key: &str) -> Option<&'v Spanned<DeValue<'v>>> {
    table
        .iter()
        .find(|(k, _)| k.get_ref().as_ref() == key)
        .map(|(_, v)| v)
}

/// The closest edit-distance match among `known`, for "did you mean" hints.
pub(super) fn suggest<'k>(word: &str, known: &[&'k str]) -> Option<&'k str> {
    known
        .iter()
        .map(|k| (strsim::levenshtein(word, k), *k))
        .filter(|(d, k)| *d <= 2.max(k.len() / 3))
        .min_by_key(|(d, _)| *d)
        .map(|(_, k)| k)
}

#[derive(Clone, Copy)]
pub(super) enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

pub(super) struct Checker<'a> {
    pub(super) text: &'a str,
    pub(super) doc: &'a DeTable<'a>,
    pub(super) base: &'a Path,
    pub(super) problems: Vec<Problem>,
    pub(super) warnings: Vec<Problem>,
    /// Keys offered as "did you mean": their absence is not reported again.
    pub(super) suggested: HashSet<String>,
    /// Where systemd put the LoadCredential= files, if it did.
    pub(super) credentials: Option<String>,
}

/// The config file's text, or the one problem that it cannot be read.
pub(super) fn read_text(path: &Path) -> Result<String, ConfigError> {
    std::fs::read_to_string(path).map_err(|e| ConfigError {
        path: path.to_path_buf(),
        problems: vec![Problem {
            key: "(file)".into(),
            line: None,
            message: format!("cannot read config: {e}"),
        }],
    })
}

impl<'a> Checker<'a> {
    pub(super) fn span_of(&self, path: &[Seg]) -> Option<Range<usize>> {
        let mut span = None;
        let mut table: Option<&DeTable> = Some(self.doc);
        let mut value: Option<&Spanned<DeValue>> = None;
        for seg in path {
            let next = match (seg, table, value) {
                (Seg::Key(k), Some(t), _) => lookup(t, k),
                (Seg::Index(i), _, Some(v)) => match v.get_ref() {
                    DeValue::Array(a) => a.get(*i),
                    _ => None,
                },
                _ => None,
            };
            let Some(v) = next else { break };
            span = Some(v.span());
            value = Some(v);
            table = match v.get_ref() {
                DeValue::Table(t) => Some(t),
                _ => None,
            };
        }
        span
    }

    pub(super) fn problem(&mut self, path: &[Seg], message: impl Into<String>) {
        let message = message.into();
        if message.starts_with("missing") && self.suggested.contains(&key_name(path)) {
            return;
        }
        let line = self.span_of(path).map(|s| line_of(self.text, s.start));
        self.problems.push(Problem {
            key: key_name(path),
            line,
            message,
        });
    }

    /// A duration key's value; a problem at the key (and None) when it
    /// cannot be read.
    pub(super) fn duration(&mut self, path: &[Seg], raw: Option<RawDuration>) -> Option<Duration> {
        match raw?.0 {
            Ok(d) => Some(d),
            Err(message) => {
                self.problem(path, message);
                None
            }
        }
    }

    pub(super) fn warning(&mut self, path: &[Seg], message: impl Into<String>) {
        let line = self.span_of(path).map(|s| line_of(self.text, s.start));
        self.warnings.push(Problem {
            key: key_name(path),
            line,
            message: message.into(),
        });
    }

    /// Reports every key of `table` not in `known`; true when all were known.
    pub(super) fn known_keys(&mut self, table: &DeTable, known: &[&str], path: &[Seg]) -> bool {
        let mut ok = true;
        for (k, _) in table.iter() {
            let k = k.get_ref().as_ref();
            if known.contains(&k) {
                continue;
            }
            ok = false;
            let mut p = path.to_vec();
            p.push(Seg::Key(k));
            let hint = match suggest(k, known) {
                Some(s) => {
                    let mut p = path.to_vec();
                    p.push(Seg::Key(s));
                    self.suggested.insert(key_name(&p));
                    format!("unknown key '{k}' (did you mean '{s}'?)")
                }
                None => format!("unknown key '{k}' (known keys: {})", known.join(", ")),
            };
            self.problem(&p, hint);
        }
        ok
    }

    /// Deserializes the table at `path` into `T`, or reports why it cannot.
    pub(super) fn section<T: DeserializeOwned + Default>(&mut self, path: &[Seg]) -> Option<T> {
        let Some(span) = self.span_of(path) else {
            return Some(T::default());
        };
        // Any problem at all, here or elsewhere, and parse() returns none.
        self.table_at(path, span)
    }

    pub(super) fn table_at<T: DeserializeOwned>(
        &mut self,
        path: &[Seg],
        span: Range<usize>,
    ) -> Option<T> {
        let known = keys::<T>();
        let value = self.value_at(path)?;
        let DeValue::Table(table) = value.get_ref() else {
            self.problem(
                path,
                format!("expected a table, found {}", value.get_ref().type_str()),
            );
            return None;
        };
        // Unknown keys are reported, then set aside so that the rest of the
        // table is still checked in the same run.
        self.known_keys(table, known, path);
        let mut owned = table.clone();
        owned.make_owned();
        keep_only(&mut owned, known);
        for (table, table_keys) in raw::sub_tables() {
            if let Some(t) = owned.get_mut(table)
                && let DeValue::Table(t) = t.get_mut()
            {
                keep_only(t, table_keys);
            }
        }
        for (list, item_keys) in raw::item_lists() {
            if let Some(steps) = owned.get_mut(list)
                && let DeValue::Array(steps) = steps.get_mut()
            {
                for step in steps.iter_mut() {
                    if let DeValue::Table(t) = step.get_mut() {
                        keep_only(t, item_keys);
                    }
                }
            }
        }
        let de = toml::Deserializer::from(Spanned::new(span, owned));
        match T::deserialize(de) {
            Ok(v) => Some(v),
            Err(e) => {
                let line = e.span().map(|s| line_of(self.text, s.start));
                self.problems.push(Problem {
                    key: key_name(path),
                    line,
                    message: e.message().trim().to_string(),
                });
                None
            }
        }
    }

    /// Every `[[key]]` table, each read as `R` and checked by `check(i,
    /// raw)`; names (by `name`) must be unique, `what` saying what one is
    /// ("a freeze"). None after reporting each bad key.
    pub(super) fn named_tables<R: DeserializeOwned, T>(
        &mut self,
        key: &'static str,
        what: &str,
        mut check: impl FnMut(&mut Self, usize, R) -> Option<T>,
        name: impl Fn(&T) -> &str,
    ) -> Option<Vec<T>> {
        let Some(value) = self.value_at(&[Seg::Key(key)]) else {
            return Some(Vec::new());
        };
        let DeValue::Array(items) = value.get_ref() else {
            self.problem(&[Seg::Key(key)], format!("expected [[{key}]] tables"));
            return None;
        };
        let mut all = Vec::new();
        let mut ok = true;
        let mut names = HashSet::new();
        for (i, item) in items.iter().enumerate() {
            let path = [Seg::Key(key), Seg::Index(i)];
            let raw: Option<R> = self.table_at(&path, item.span());
            match raw.and_then(|r| check(self, i, r)) {
                Some(t) => {
                    if !names.insert(name(&t).to_string()) {
                        self.problem(
                            &[Seg::Key(key), Seg::Index(i), Seg::Key("name")],
                            format!("{what} named {:?} comes before this one", name(&t)),
                        );
                        ok = false;
                    }
                    all.push(t);
                }
                None => ok = false,
            }
        }
        ok.then_some(all)
    }

    pub(super) fn value_at(&self, path: &[Seg]) -> Option<&'a Spanned<DeValue<'a>>> {
        let mut value: Option<&'a Spanned<DeValue<'a>>> = None;
        for seg in path {
            value = match (seg, value) {
                (Seg::Key(k), None) => lookup(self.doc, k),
                (Seg::Key(k), Some(v)) => match v.get_ref() {
                    DeValue::Table(t) => lookup(t, k),
                    _ => None,
                },
                (Seg::Index(i), Some(v)) => match v.get_ref() {
                    DeValue::Array(a) => a.get(*i),
                    _ => None,
                },
                (Seg::Index(_), None) => None,
            };
            value?;
        }
        value
    }

    /// A path from the config: `$CREDENTIALS_DIRECTORY` (or `${…}`) at its
    /// start expanded, relative paths taken from the config file's directory.
    pub(super) fn path(&self, p: PathBuf) -> PathBuf {
        let s = p.to_string_lossy();
        let rest = s
            .strip_prefix("${CREDENTIALS_DIRECTORY}")
            .or_else(|| s.strip_prefix("$CREDENTIALS_DIRECTORY"));
        let p = match (rest, &self.credentials) {
            (Some(rest), Some(dir)) => PathBuf::from(format!("{dir}{rest}")),
            _ => p,
        };
        if p.is_absolute() {
            p
        } else {
            self.base.join(p)
        }
    }

    /// "cannot read", with a hint when a credential path was not expanded.
    pub(super) fn unreadable(&self, file: &Path, e: &std::io::Error) -> String {
        let mut m = format!("cannot read {}: {e}", file.display());
        if file.to_string_lossy().contains("CREDENTIALS_DIRECTORY") && self.credentials.is_none() {
            m.push_str(" ($CREDENTIALS_DIRECTORY is only set under systemd with LoadCredential=)");
        }
        m
    }

    pub(super) fn check(
        &mut self,
        path: &Path,
        env: &dyn Fn(&str) -> Option<String>,
    ) -> Option<Config> {
        self.known_keys(self.doc, keys::<RawConfig>(), &[]);
        let server: Option<RawServer> = self.section(&[Seg::Key("server")]);
        let github: Option<RawGitHub> = self.section(&[Seg::Key("github")]);
        let storage: Option<RawStorage> = self.section(&[Seg::Key("storage")]);
        let runner: Option<RawRunner> = self.section(&[Seg::Key("runner")]);
        let ssh: Option<RawSsh> = self.section(&[Seg::Key("ssh")]);

        let server = server.and_then(|s| self.server(s));
        let github = github.and_then(|g| self.github(g, env));
        let storage = storage.and_then(|s| self.storage(s, env));
        let runner = runner.and_then(|r| self.runner(r));
        let ssh = ssh.and_then(|s| self.ssh(s));
        let targets = self.targets();
        let freezes = self.freezes();
        let sinks = self.sinks();
        let protection = if self.value_at(&[Seg::Key("protection")]).is_some() {
            let app = github
                .as_ref()
                .map(|g| matches!(g.auth, GitHubAuth::App { .. }));
            let raw: Option<RawProtection> = self.section(&[Seg::Key("protection")]);
            raw.map(|r| self.protection(r, app))
        } else {
            Some(None)
        };
        let commands = if self.value_at(&[Seg::Key("commands")]).is_some() {
            let raw: Option<RawCommands> = self.section(&[Seg::Key("commands")]);
            raw.and_then(|r| self.commands(Some(r), targets.as_deref()))
        } else {
            Some(None)
        };
        if let (Some(t), Some(f)) = (&targets, &freezes) {
            self.freezes_match_targets(f, t);
        }

        Some(Config {
            path: path.to_path_buf(),
            server: server?,
            github: github?,
            storage: storage?,
            runner: runner?,
            ssh: ssh?,
            targets: targets?,
            freezes: freezes?,
            sinks: sinks?,
            commands: commands?,
            protection: protection?,
            warnings: Vec::new(),
        })
    }
}
