//! Freeze windows (`[[freeze]]`, docs/configuration.md, "Freeze windows"): times in which the
//! environments a freeze matches act as locked by "freeze NAME".
//!
//! Windows are written in the freeze's IANA time zone and computed on the
//! timeline with its rules (jiff, the system's tz database): "Fri 16:00 -
//! Mon 08:00" in Europe/Berlin is 64 hours long on most weekends and 65 on
//! the one whose Sunday ends summer time. A local time that a change skips
//! (02:30 on the last Sunday of March) is moved past the gap by its length
//! (03:30), one that happens twice is its first occurrence (jiff's
//! "compatible", as RFC 5545 reads such times).

use jiff::civil::{DateTime, Time, Weekday};
use jiff::tz::TimeZone;
use jiff::{Timestamp, ToSpan};

use crate::glob;
use crate::store::{FreezeLift, SharedStore};

/// One freeze as configured.
#[derive(Debug, Clone)]
pub struct Freeze {
    pub name: String,
    /// Globs; empty: every repository.
    pub repositories: Vec<String>,
    /// Globs; empty: every environment.
    pub environments: Vec<String>,
    pub weekly: Vec<Weekly>,
    pub dates: Vec<Dated>,
    pub timezone: TimeZone,
    /// As written (`Europe/Berlin`), for messages.
    pub timezone_name: String,
}

/// `DAY HH:MM - DAY HH:MM`, every week.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Weekly {
    pub from: (Weekday, Time),
    pub to: (Weekday, Time),
}

/// `YYYY-MM-DD HH:MM - YYYY-MM-DD HH:MM`, once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Dated {
    pub from: DateTime,
    pub to: DateTime,
}

/// A stretch of time a freeze holds, on the timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub start: Timestamp,
    pub end: Timestamp,
}

const DAYS: [(&str, Weekday); 7] = [
    ("Mon", Weekday::Monday),
    ("Tue", Weekday::Tuesday),
    ("Wed", Weekday::Wednesday),
    ("Thu", Weekday::Thursday),
    ("Fri", Weekday::Friday),
    ("Sat", Weekday::Saturday),
    ("Sun", Weekday::Sunday),
];

/// `a - b`, split at the one " - " (dates have dashes of their own).
fn halves(s: &str) -> Option<(&str, &str)> {
    let (a, b) = s.split_once(" - ")?;
    Some((a.trim(), b.trim()))
}

fn time_of(s: &str) -> Option<Time> {
    let (h, m) = s.split_once(':')?;
    if h.len() != 2 || m.len() != 2 {
        return None;
    }
    Time::new(h.parse().ok()?, m.parse().ok()?, 0, 0).ok()
}

fn day_time(s: &str) -> Option<(Weekday, Time)> {
    let (day, time) = s.split_once(' ')?;
    let day = DAYS.iter().find(|(n, _)| *n == day.trim())?.1;
    Some((day, time_of(time.trim())?))
}

fn date_time(s: &str) -> Option<DateTime> {
    let (date, time) = s.split_once(' ')?;
    let date: jiff::civil::Date = date.trim().parse().ok()?;
    Some(date.to_datetime(time_of(time.trim())?))
}

impl Weekly {
    pub fn parse(s: &str) -> Result<Weekly, String> {
        let bad = || {
            format!(
                "cannot read {s:?}: expected DAY HH:MM - DAY HH:MM, such as \"Fri 16:00 - Mon 08:00\" (days Mon ... Sun)"
            )
        };
        let (a, b) = halves(s).ok_or_else(bad)?;
        let w = Weekly {
            from: day_time(a).ok_or_else(bad)?,
            to: day_time(b).ok_or_else(bad)?,
        };
        if w.from == w.to {
            return Err(format!("{s:?} starts where it ends: it would be empty"));
        }
        Ok(w)
    }

    /// Days from the start's day to the end's, in 1..=7.
    fn length_in_days(&self) -> i64 {
        let (from, to) = (
            i64::from(self.from.0.to_monday_zero_offset()),
            i64::from(self.to.0.to_monday_zero_offset()),
        );
        let days = (to - from).rem_euclid(7);
        if days == 0 && self.to.1 <= self.from.1 {
            7
        } else {
            days
        }
    }
}

impl Dated {
    pub fn parse(s: &str) -> Result<Dated, String> {
        let bad = || {
            format!(
                "cannot read {s:?}: expected YYYY-MM-DD HH:MM - YYYY-MM-DD HH:MM, such as \"2026-12-23 00:00 - 2027-01-04 08:00\""
            )
        };
        let (a, b) = halves(s).ok_or_else(bad)?;
        let d = Dated {
            from: date_time(a).ok_or_else(bad)?,
            to: date_time(b).ok_or_else(bad)?,
        };
        if d.to <= d.from {
            return Err(format!("{s:?} ends before it starts"));
        }
        Ok(d)
    }
}

impl Freeze {
    pub fn matches(&self, repository: &str, environment: &str) -> bool {
        let any = |globs: &[String], name: &str| {
            globs.is_empty() || globs.iter().any(|g| glob::matches(g, name))
        };
        any(&self.repositories, repository) && any(&self.environments, environment)
    }

    /// A local time in this freeze's zone, on the timeline.
    fn instant(&self, at: DateTime) -> Timestamp {
        self.timezone
            .to_ambiguous_timestamp(at)
            .compatible()
            .unwrap_or(Timestamp::MAX)
    }

    /// Every window that starts within a week before or after `now`, and
    /// the dated ones: what `in_force` and `next` choose from.
    fn windows_near(&self, now: Timestamp) -> Vec<Window> {
        let today = now.to_zoned(self.timezone.clone()).date();
        let mut out = Vec::new();
        for w in &self.weekly {
            for offset in -7..=7i64 {
                let Ok(day) = today.checked_add(offset.days()) else {
                    continue;
                };
                if day.weekday() != w.from.0 {
                    continue;
                }
                let Ok(end_day) = day.checked_add(w.length_in_days().days()) else {
                    continue;
                };
                out.push(Window {
                    start: self.instant(day.to_datetime(w.from.1)),
                    end: self.instant(end_day.to_datetime(w.to.1)),
                });
            }
        }
        for d in &self.dates {
            out.push(Window {
                start: self.instant(d.from),
                end: self.instant(d.to),
            });
        }
        out
    }

    /// The window holding `now`, if any; of overlapping ones, the one that
    /// ends last.
    pub fn in_force(&self, now: Timestamp) -> Option<Window> {
        self.windows_near(now)
            .into_iter()
            .filter(|w| w.start <= now && now < w.end)
            .max_by_key(|w| w.end)
    }

    /// The window in force at `now`, else the next one to start.
    pub fn next(&self, now: Timestamp) -> Option<Window> {
        self.in_force(now).or_else(|| {
            self.windows_near(now)
                .into_iter()
                .filter(|w| w.start > now)
                .min_by_key(|w| w.start)
        })
    }

    /// `at` as the freeze's zone shows it: "Mon 08:00 CET", with the date
    /// when it is not within the coming week.
    pub fn local(&self, at: Timestamp, now: Timestamp) -> String {
        let zoned = at.to_zoned(self.timezone.clone());
        let within_week = at.as_second() - now.as_second() < 6 * 86400;
        if within_week {
            zoned.strftime("%a %H:%M %Z").to_string()
        } else {
            zoned.strftime("%a %Y-%m-%d %H:%M %Z").to_string()
        }
    }
}

/// What freezes hold an environment at `now`: the freeze, and its window.
pub fn holding<'a>(
    freezes: &'a [Freeze],
    repository: &str,
    environment: &str,
    now: Timestamp,
) -> Vec<(&'a Freeze, Window)> {
    freezes
        .iter()
        .filter(|f| f.matches(repository, environment))
        .filter_map(|f| f.in_force(now).map(|w| (f, w)))
        .collect()
}

/// The freeze holding an environment at `now` that no lift lets it
/// through, with its window: of several, the one that ends last.
pub fn frozen<'a>(
    freezes: &'a [Freeze],
    lifts: &[FreezeLift],
    repository: &str,
    environment: &str,
    now: Timestamp,
) -> Option<(&'a Freeze, Window)> {
    holding(freezes, repository, environment, now)
        .into_iter()
        .filter(|(f, w)| {
            !lifts
                .iter()
                .any(|l| l.covers(repository, environment, &f.name, stored(w.end)))
        })
        .max_by_key(|(_, w)| w.end)
}

/// The moment as the store keeps times.
pub fn stored(t: Timestamp) -> crate::store::Timestamp {
    crate::store::Timestamp::from_jiff(t)
}

/// A freeze window lifted for one environment.
pub struct Lifted {
    pub freeze: String,
    /// The window's end as its zone shows it ("Mon 08:00 CET").
    pub until: String,
    /// This call lifted it (false: it was lifted already).
    pub new: bool,
}

/// Lifts, for `by`, every freeze window holding the environment now, each
/// until it ends.
pub async fn lift(
    store: &SharedStore,
    freezes: &[Freeze],
    repository: &str,
    environment: &str,
    by: &str,
) -> crate::store::Result<Vec<Lifted>> {
    let now = Timestamp::now();
    let mut lifted = Vec::new();
    for (f, w) in holding(freezes, repository, environment, now) {
        let lift = FreezeLift {
            repository: repository.to_string(),
            environment: environment.to_string(),
            freeze: f.name.clone(),
            until: stored(w.end),
            by: by.to_string(),
            at: stored(now),
        };
        let new = store.lift_freeze(&lift).await?;
        lifted.push(Lifted {
            freeze: f.name.clone(),
            until: f.local(w.end, now),
            new,
        });
    }
    Ok(lifted)
}

/// What the runner may claim while freezes are configured.
#[derive(Debug, Default)]
pub struct Held {
    /// The waiting environments a freeze holds now.
    pub frozen: Vec<crate::store::EnvKey>,
    /// Every environment that was looked at (None: no freeze, no look):
    /// a deployment to another arrived after the look and waits for the
    /// next one, or a frozen environment's first deployment could be
    /// claimed before anything knew it was waiting.
    pub looked_at: Option<Vec<crate::store::EnvKey>>,
}

/// The environments with a deployment waiting that a freeze holds now,
/// and those looked at. Nothing is read when no freeze is configured.
pub async fn held_now(store: &SharedStore, freezes: &[Freeze]) -> crate::store::Result<Held> {
    if freezes.is_empty() {
        return Ok(Held::default());
    }
    let now = Timestamp::now();
    let waiting = store.waiting_environments().await?;
    let lifts = store.freeze_lifts(stored(now)).await?;
    let frozen = waiting
        .iter()
        .filter(|k| frozen(freezes, &lifts, &k.repository, &k.environment, now).is_some())
        .cloned()
        .collect();
    Ok(Held {
        frozen,
        looked_at: Some(waiting),
    })
}

#[cfg(test)]
#[path = "freeze_tests.rs"]
mod tests;
