//! `ferry locks`: locked, frozen and held environments.

use super::ConfigArg;
use super::output::clock;
use super::steering::open_store;
use super::steering::warn_freeze_problems;
use crate::config::Steering;
use crate::store::SharedStore;
use crate::store::Timestamp;

/// List locked environments: who, since when, why, until when.
#[derive(clap::Args)]
pub struct Locks {
    #[command(flatten)]
    config: ConfigArg,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

impl Locks {
    pub async fn run(self) -> anyhow::Result<()> {
        locks(&self.config.load_for_store()?, self.json).await
    }
}

/// The environments a freeze holds now, among those a target names
/// exactly and those with a deployment waiting: (environment, freeze,
/// window).
async fn frozen_now(
    c: &Steering,
    store: &SharedStore,
) -> anyhow::Result<Vec<(String, String, crate::admission::freeze::Window, String)>> {
    if c.freezes.is_empty() {
        return Ok(Vec::new());
    }
    let now = jiff::Timestamp::now();
    let lifts = store
        .freeze_lifts(crate::admission::freeze::stored(now))
        .await?;
    let mut candidates: Vec<crate::store::EnvKey> = c
        .targets
        .iter()
        .filter(|t| !t.environment.contains(['*', '?', '[']))
        .map(|t| crate::store::EnvKey::new(&t.repository, &t.environment))
        .collect();
    candidates.extend(store.waiting_environments().await?);
    candidates.sort();
    candidates.dedup();
    Ok(candidates
        .into_iter()
        .filter_map(|k| {
            let (f, w) = crate::admission::freeze::frozen(
                &c.freezes,
                &lifts,
                &k.repository,
                &k.environment,
                now,
            )?;
            let until = f.local(w.end, now);
            Some((k.to_string(), f.name.clone(), w, until))
        })
        .collect())
}

/// What holds environments now, as read once for the command.
struct Held {
    locks: Vec<crate::store::EnvLock>,
    holds: Vec<crate::store::Hold>,
    frozen: Vec<(String, String, crate::admission::freeze::Window, String)>,
    runs: Vec<crate::store::WaitingRun>,
}

impl Held {
    /// The GitHub Actions runs waiting on an environment, oldest first.
    fn runs_of(&self, r: &str, e: &str) -> Vec<&crate::store::WaitingRun> {
        self.runs
            .iter()
            .filter(|w| w.run.repository == r && w.run.environment == e)
            .collect()
    }

    fn runs_json(&self, r: &str, e: &str) -> serde_json::Value {
        self.runs_of(r, e)
            .iter()
            .map(|w| serde_json::json!({"run_id": w.run.run_id, "repository": w.run.repository, "since": clock(w.since)}))
            .collect::<Vec<_>>()
            .into()
    }

    fn print_runs(&self, r: &str, e: &str) {
        for w in self.runs_of(r, e) {
            println!(
                "    waiting: GitHub Actions run {} of {} since {}",
                w.run.run_id,
                w.run.repository,
                clock(w.since)
            );
        }
    }

    /// JSON Lines: one environment held per line, whatever holds it.
    fn print_json(&self) {
        let line =
            |r: &str, e: &str, kind: &str, by: &str, since: Option<Timestamp>, reason: &str| {
                serde_json::json!({
                    "repository": r,
                    "environment": e,
                    "kind": kind,
                    "by": by,
                    "since": since.map(clock),
                    "reason": reason,
                    "until": null,
                    "waiting_runs": self.runs_json(r, e),
                })
            };
        for l in &self.locks {
            let mut v = line(
                &l.repository,
                &l.environment,
                "lock",
                &l.holder,
                Some(l.since),
                &l.reason,
            );
            v["until"] = l.until.map(clock).into();
            println!("{v}");
        }
        for h in &self.holds {
            let v = line(
                &h.repository,
                &h.environment,
                "hold",
                "ferry",
                None,
                &h.describe(),
            );
            println!("{v}");
        }
        for (env, freeze, window, until) in &self.frozen {
            let (r, e) = env.split_once(':').unwrap_or((env.as_str(), ""));
            let by = crate::wording::freeze_holder(freeze);
            let since = Some(crate::admission::freeze::stored(window.start));
            let mut v = line(r, e, "freeze", &by, since, &format!("frozen until {until}"));
            v["until"] = clock(crate::admission::freeze::stored(window.end)).into();
            println!("{v}");
        }
    }

    fn print_table(&self) {
        if self.locks.is_empty() && self.holds.is_empty() && self.frozen.is_empty() {
            println!("no environment is locked");
            return;
        }
        println!(
            "{:<40}  {:<16}  {:<20}  REASON",
            "ENVIRONMENT", "LOCKED BY", "SINCE"
        );
        for l in &self.locks {
            let until = l.until.map_or(String::new(), |u| {
                format!(" (lifts by itself at {})", clock(u))
            });
            println!(
                "{:<40}  {:<16}  {:<20}  {}{until}",
                format!("{}:{}", l.repository, l.environment),
                l.holder,
                clock(l.since),
                l.reason
            );
            self.print_runs(&l.repository, &l.environment);
        }
        for h in &self.holds {
            println!(
                "{:<40}  {:<16}  {:<20}  held: {}",
                format!("{}:{}", h.repository, h.environment),
                "ferry",
                "-",
                h.describe()
            );
            self.print_runs(&h.repository, &h.environment);
        }
        for (env, freeze, window, until) in &self.frozen {
            println!(
                "{:<40}  {:<16}  {:<20}  frozen until {until}",
                env,
                crate::wording::freeze_holder(freeze),
                clock(crate::admission::freeze::stored(window.start)),
            );
            let (r, e) = env.split_once(':').unwrap_or((env.as_str(), ""));
            self.print_runs(r, e);
        }
    }
}

pub async fn locks(c: &Steering, json: bool) -> anyhow::Result<()> {
    warn_freeze_problems(c);
    let store = open_store(c).await?.store;
    let held = Held {
        locks: store.locks().await?,
        holds: store.holds().await?,
        frozen: frozen_now(c, &store).await?,
        runs: store.waiting_runs().await?,
    };
    if json {
        held.print_json();
    } else {
        held.print_table();
    }
    Ok(())
}
