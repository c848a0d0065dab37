//! `[[freeze]]`: windows in which the environments a freeze matches wait,
//! as if locked (docs/configuration.md, "Freeze windows"). Each window is read here, once, so
//! that one that cannot be read is refused with its key and line before
//! ferry starts, not found out on a Friday.

use super::*;
use crate::admission::freeze::{Dated, Freeze, Weekly};

impl<'a> Checker<'a> {
    /// A freeze whose globs match no target's repository or environment
    /// holds nothing back: most likely a typo ("prodution"), found out
    /// only when a deployment goes out during the window.
    pub(super) fn freezes_match_targets(&mut self, freezes: &[Freeze], targets: &[Target]) {
        let overlap = |a: &str, b: &str| crate::glob::matches(a, b) || crate::glob::matches(b, a);
        for (i, f) in freezes.iter().enumerate() {
            let at = |key, j| {
                [
                    Seg::Key("freeze"),
                    Seg::Index(i),
                    Seg::Key(key),
                    Seg::Index(j),
                ]
            };
            let repo_ok = |t: &&Target| {
                f.repositories
                    .iter()
                    .any(|r| crate::glob::matches(r, &t.repository))
                    || f.repositories.is_empty()
            };
            for (j, r) in f.repositories.iter().enumerate() {
                if !targets
                    .iter()
                    .any(|t| crate::glob::matches(r, &t.repository))
                {
                    let names: Vec<&str> = targets.iter().map(|t| t.repository.as_str()).collect();
                    self.warning(
                        &at("repositories", j),
                        format!(
                            "{r:?} matches no target's repository, so it freezes nothing; the targets' are: {}",
                            names.join(", ")
                        ),
                    );
                }
            }
            for (j, e) in f.environments.iter().enumerate() {
                if !targets
                    .iter()
                    .filter(repo_ok)
                    .any(|t| overlap(e, &t.environment))
                {
                    let mut names: Vec<&str> = targets
                        .iter()
                        .filter(repo_ok)
                        .map(|t| t.environment.as_str())
                        .collect();
                    names.dedup();
                    self.warning(
                        &at("environments", j),
                        format!(
                            "{e:?} matches no target's environment, so it freezes nothing; the targets' are: {}",
                            names.join(", ")
                        ),
                    );
                }
            }
        }
    }

    /// Every `[[freeze]]`; None after reporting each bad key.
    pub(super) fn freezes(&mut self) -> Option<Vec<Freeze>> {
        self.named_tables::<RawFreeze, _>("freeze", "a freeze", Self::freeze, |f| &f.name)
    }

    /// Each of `items` parsed, a problem said (and `ok` false) for each
    /// that does not parse.
    fn each<T, E: Into<String>>(
        &mut self,
        items: &[String],
        at: impl Fn(usize) -> [Seg<'static>; 4],
        parse: impl Fn(&str) -> Result<T, E>,
        ok: &mut bool,
    ) -> Vec<T> {
        let mut parsed = Vec::new();
        for (j, s) in items.iter().enumerate() {
            match parse(s) {
                Ok(v) => parsed.push(v),
                Err(e) => {
                    self.problem(&at(j), e);
                    *ok = false;
                }
            }
        }
        parsed
    }

    fn freeze(&mut self, i: usize, raw: RawFreeze) -> Option<Freeze> {
        let at = |k| [Seg::Key("freeze"), Seg::Index(i), Seg::Key(k)];
        let item = |k, j| {
            [
                Seg::Key("freeze"),
                Seg::Index(i),
                Seg::Key(k),
                Seg::Index(j),
            ]
        };
        let mut ok = true;
        let name = match raw.name {
            Some(n) if !n.trim().is_empty() => n,
            _ => {
                self.problem(&at("name"), "missing, e.g. \"weekend\"");
                ok = false;
                String::new()
            }
        };
        let timezone_name = raw
            .timezone
            .unwrap_or_else(|| DEFAULT_FREEZE_TIMEZONE.into());
        let timezone = match jiff::tz::TimeZone::get(&timezone_name) {
            Ok(tz) => Some(tz),
            Err(_) => {
                self.problem(
                    &at("timezone"),
                    format!(
                        "{timezone_name:?} is not a time zone of the IANA database (such as \"Europe/Berlin\"; is tzdata installed?)"
                    ),
                );
                ok = false;
                None
            }
        };
        let weekly = self.each(&raw.weekly, |j| item("weekly", j), Weekly::parse, &mut ok);
        let dates = self.each(&raw.dates, |j| item("dates", j), Dated::parse, &mut ok);
        if raw.weekly.is_empty() && raw.dates.is_empty() {
            self.problem(
                &[Seg::Key("freeze"), Seg::Index(i)],
                "no window: give it weekly = [\"Fri 16:00 - Mon 08:00\"] or dates = [...]",
            );
            ok = false;
        }
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
        if !ok {
            return None;
        }
        Some(Freeze {
            name,
            repositories: raw.repositories,
            environments: raw.environments,
            weekly,
            dates,
            timezone: timezone?,
            timezone_name,
        })
    }
}
