//! The config as written: one struct per table, every field optional so
//! that the checker can report each missing or bad key rather than stop at
//! the first. A key is declared once, as a field here: the unknown-key
//! check reads the known keys from these structs ([`keys`]), and the
//! checker in `mod.rs` turns each field into the typed config.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{DeserializeOwned, Visitor};

/// The top-level tables. Read only for their names: each table is
/// deserialized on its own, so that a problem in one leaves the others
/// checked.
#[derive(Deserialize)]
#[allow(dead_code)]
pub struct RawConfig {
    server: Option<toml::Value>,
    github: Option<toml::Value>,
    storage: Option<toml::Value>,
    runner: Option<toml::Value>,
    ssh: Option<toml::Value>,
    target: Option<toml::Value>,
    freeze: Option<toml::Value>,
    notify: Option<toml::Value>,
    commands: Option<toml::Value>,
    protection: Option<toml::Value>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawServer {
    pub listen: Option<String>,
    pub public_url: Option<String>,
    pub metrics_listen: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawGitHub {
    pub api_url: Option<String>,
    pub webhook_secret_file: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub app_id: Option<u64>,
    pub app_private_key_file: Option<PathBuf>,
    pub reconcile_every: Option<RawDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawProtection {
    #[serde(default)]
    pub repositories: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawCommands {
    pub prefix: Option<String>,
    pub permission: Option<String>,
    pub default_environment: Option<String>,
    pub allow_forks: Option<bool>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawStorage {
    pub dir: Option<PathBuf>,
    pub log_retention: Option<RawDuration>,
    pub database_url: Option<String>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawRunner {
    pub max_concurrent: Option<i64>,
    pub shutdown_grace: Option<RawDuration>,
}

#[derive(Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub identity_file: Option<PathBuf>,
    pub known_hosts_file: Option<PathBuf>,
    pub connect_timeout: Option<RawDuration>,
    pub config_file: Option<PathBuf>,
    pub max_connections: Option<i64>,
    pub idle_timeout: Option<RawDuration>,
    pub keepalive: Option<RawDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawTarget {
    pub repository: Option<String>,
    pub environment: Option<String>,
    pub task: Option<String>,
    pub hosts: Option<Vec<String>>,
    pub parallel: Option<i64>,
    pub timeout: Option<RawDuration>,
    pub environment_url: Option<String>,
    pub supersede: Option<bool>,
    pub auto_inactive: Option<bool>,
    pub teardown_after: Option<RawDuration>,
    #[serde(default)]
    pub steps: Vec<RawStep>,
    #[serde(default)]
    pub teardown: Vec<RawStep>,
    #[serde(default)]
    pub checks: Vec<RawHostCheck>,
    pub rollback: Option<RawRollback>,
    pub require_checks: Option<Vec<String>>,
    pub checks_timeout: Option<RawDuration>,
    pub auto_deploy: Option<RawAutoDeploy>,
}

/// `[target.auto_deploy]`: ferry starts the target's deployments itself.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawAutoDeploy {
    pub branch: Option<String>,
    pub after: Option<String>,
    pub soak: Option<RawDuration>,
}

/// The tables in a target, each with the keys it accepts.
pub fn sub_tables() -> [(&'static str, &'static [&'static str]); 1] {
    [("auto_deploy", keys::<RawAutoDeploy>())]
}

/// `rollback = true` (the target's steps put a host back), or
/// `[[target.rollback]]` steps of its own (which turn rollback on): TOML
/// gives one key one meaning, so the key is either.
#[derive(Deserialize)]
#[serde(untagged)]
pub enum RawRollback {
    On(bool),
    Steps(Vec<RawStep>),
}

/// The arrays of tables in a target, each with the keys its entries
/// accept.
pub fn item_lists() -> [(&'static str, &'static [&'static str]); 4] {
    [
        ("steps", keys::<RawStep>()),
        ("teardown", keys::<RawStep>()),
        ("checks", keys::<RawHostCheck>()),
        ("rollback", keys::<RawStep>()),
    ]
}

/// `[[freeze]]`: windows in which the environments it matches wait.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawFreeze {
    pub name: Option<String>,
    #[serde(default)]
    pub repositories: Vec<String>,
    #[serde(default)]
    pub environments: Vec<String>,
    #[serde(default)]
    pub weekly: Vec<String>,
    #[serde(default)]
    pub dates: Vec<String>,
    pub timezone: Option<String>,
}

/// `[[notify]]`: a sink for notifications, a webhook or Slack.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawNotify {
    pub name: Option<String>,
    pub url: Option<String>,
    pub secret_file: Option<PathBuf>,
    pub slack_token_file: Option<PathBuf>,
    pub channel: Option<String>,
    pub slack_api_url: Option<String>,
    #[serde(default)]
    pub repositories: Vec<String>,
    #[serde(default)]
    pub environments: Vec<String>,
    pub events: Option<Vec<String>>,
}

/// `[[target.checks]]`: a step that must pass, tried until it does.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawHostCheck {
    pub name: Option<String>,
    pub run: Option<String>,
    pub within: Option<RawDuration>,
    pub interval: Option<RawDuration>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawStep {
    pub name: Option<String>,
    pub run: Option<String>,
}

/// A duration as written (`"90s"`, `"15m"`, `"7d"`), read without failing
/// its table: one that cannot be read is a problem at its own key, and the
/// other keys of the table are still checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawDuration(pub Result<Duration, String>);

impl<'de> Deserialize<'de> for RawDuration {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let value = toml::Value::deserialize(d)?;
        Ok(RawDuration(match value {
            toml::Value::String(s) => humantime::parse_duration(s.trim()).map_err(|e| {
                format!("{s:?} is not a duration ({e}); write it as \"90s\", \"15m\" or \"7d\"")
            }),
            other => Err(format!(
                "expected a duration in quotes, such as \"90s\" or \"15m\", not {other}"
            )),
        }))
    }
}

/// The keys a table accepts: the field names serde gives `T`'s derived
/// `Deserialize`, which hands them to `deserialize_struct`. A probe
/// deserializer catches them there and stops.
pub fn keys<T: DeserializeOwned>() -> &'static [&'static str] {
    struct Probe<'a>(&'a mut &'static [&'static str]);
    impl<'de> serde::Deserializer<'de> for Probe<'_> {
        type Error = serde::de::value::Error;
        fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, Self::Error> {
            Err(serde::de::Error::custom("not a struct"))
        }
        fn deserialize_struct<V: Visitor<'de>>(
            self,
            _: &'static str,
            fields: &'static [&'static str],
            _: V,
        ) -> Result<V::Value, Self::Error> {
            *self.0 = fields;
            Err(serde::de::Error::custom("probed"))
        }
        serde::forward_to_deserialize_any! {
            bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
            bytes byte_buf option unit unit_struct newtype_struct seq tuple
            tuple_struct map enum identifier ignored_any
        }
    }
    let mut fields: &'static [&'static str] = &[];
    let _ = T::deserialize(Probe(&mut fields));
    fields
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_the_fields() {
        assert_eq!(keys::<RawStep>(), ["name", "run"]);
        assert!(keys::<RawTarget>().contains(&"teardown_after"));
        assert_eq!(
            keys::<RawConfig>(),
            [
                "server",
                "github",
                "storage",
                "runner",
                "ssh",
                "target",
                "freeze",
                "notify",
                "commands",
                "protection"
            ]
        );
    }
}
