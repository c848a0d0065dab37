//! `ferry stats`: DORA's figures per repository and environment over a
//! window, as a table or JSON Lines (`src/delivery/figures.rs` computes
//! them; docs/reference.md defines each).

use std::time::Duration;

use super::ConfigArg;
use super::steering::{EnvName, open_store};
use crate::delivery::figures::{Figures, compute};
use crate::format::duration;
use crate::store::Timestamp;

/// Delivery metrics per repository and environment.
#[derive(clap::Args)]
pub struct Stats {
    #[command(flatten)]
    config: ConfigArg,
    /// Over the deployments that ended within this long ("30d", "12h").
    #[arg(long, value_name = "DURATION", default_value = "30d", value_parser = window)]
    since: Duration,
    /// Only this environment's.
    #[arg(long, value_name = "REPO:ENV")]
    environment: Option<EnvName>,
    /// One JSON object per line.
    #[arg(long)]
    json: bool,
}

/// `--since`: the window, longer than zero.
fn window(s: &str) -> Result<Duration, String> {
    super::positive_duration(s, "\"30d\", \"12h\" or \"90m\"")
}

impl Stats {
    pub async fn run(self) -> anyhow::Result<()> {
        let c = self.config.load_for_store()?;
        let store = open_store(&c).await?.store;
        let since = Timestamp::now() - self.since;
        let filter = self
            .environment
            .as_ref()
            .map(|k| (k.repository.as_str(), k.environment.as_str()));
        let ended = store.ended_since(since, filter).await?;
        let figures = compute(&ended, self.since);
        if self.json {
            for f in &figures {
                println!("{}", serde_json::to_string(f)?);
            }
            return Ok(());
        }
        if figures.is_empty() {
            println!(
                "No deployment ended in the last {}{}.",
                duration(self.since),
                self.environment
                    .as_ref()
                    .map(|k| format!(" in {k}"))
                    .unwrap_or_default()
            );
            return Ok(());
        }
        table(&figures, self.since);
        Ok(())
    }
}

fn table(figures: &[Figures], since: Duration) {
    println!("Over the last {}:", duration(since));
    println!(
        "{:<28}  {:<14}  {:>7}  {:>9}  {:>8}  {:>7}  {:>9}  {:>12}  {:>9}  {:>9}",
        "REPOSITORY",
        "ENVIRONMENT",
        "DEPLOYS",
        "SUCCESSES",
        "FAILURES",
        "PER DAY",
        "LEAD TIME",
        "FAILURE RATE",
        "RECOVERY",
        "ROLLBACKS"
    );
    for f in figures {
        println!(
            "{:<28}  {:<14}  {:>7}  {:>9}  {:>8}  {:>7}  {:>9}  {:>12}  {:>9}  {:>9}",
            f.repository,
            f.environment,
            f.deployments,
            f.successes,
            f.failures,
            per_day(f.per_day),
            rough(f.lead_time_median_s),
            f.change_failure_rate
                .map_or("-".into(), |r| format!("{:.0}%", r * 100.0)),
            rough(f.recovery_median_s),
            f.rollbacks
        );
    }
    println!("LEAD TIME and RECOVERY are medians; - where there is nothing to measure.");
}

/// Two significant figures where they matter: "12", "1.5", "0.03".
fn per_day(n: f64) -> String {
    match n {
        n if n >= 10.0 => format!("{n:.0}"),
        n if n >= 1.0 || n == 0.0 => format!("{n:.1}"),
        n => format!("{n:.2}"),
    }
}

/// A median in seconds as people read a span, `-` when undefined.
fn rough(seconds: Option<f64>) -> String {
    seconds.map_or("-".into(), |s| {
        crate::format::rough_duration(Duration::from_secs_f64(s.max(0.0)))
    })
}

#[cfg(test)]
mod tests {
    use super::rough;

    #[test]
    fn spans_read_as_their_two_largest_units() {
        assert_eq!(rough(None), "-");
        assert_eq!(rough(Some(0.2)), "0s");
        assert_eq!(rough(Some(45.0)), "45s");
        assert_eq!(rough(Some(7_530.0)), "2h 5m");
        assert_eq!(rough(Some(7_200.0)), "2h");
        assert_eq!(rough(Some(3.0 * 86_400.0 + 4.0 * 3_600.0 + 59.0)), "3d 4h");
        assert_eq!(rough(Some(86_400.0 + 30.0)), "1d");
    }

    #[test]
    fn rates_keep_what_matters() {
        assert_eq!(super::per_day(0.0), "0.0");
        assert_eq!(super::per_day(1.0 / 30.0), "0.03");
        assert_eq!(super::per_day(1.5), "1.5");
        assert_eq!(super::per_day(42.4), "42");
    }

    #[test]
    fn windows_are_durations() {
        assert_eq!(super::window("30d").unwrap().as_secs(), 30 * 86_400);
        assert!(super::window("0s").is_err());
        assert!(super::window("soon").unwrap_err().contains("\"30d\""));
    }
}
