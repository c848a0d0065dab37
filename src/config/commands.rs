//! `[commands]`: deploy and lock from pull request comments (`.deploy`).

use super::*;

/// A repository role, as GitHub's `role_name` names it, least first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Role {
    Read,
    Triage,
    Write,
    Maintain,
    Admin,
}

impl Role {
    pub const NAMES: [&'static str; 5] = ["read", "triage", "write", "maintain", "admin"];

    pub fn parse(s: &str) -> Option<Role> {
        Some(match s {
            "read" => Role::Read,
            "triage" => Role::Triage,
            "write" => Role::Write,
            "maintain" => Role::Maintain,
            "admin" => Role::Admin,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        Role::NAMES[self as usize]
    }
}

/// `[commands]` as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Commands {
    /// What starts a command word: `.` for `.deploy`.
    pub prefix: String,
    /// The least role allowed to run a command.
    pub permission: Role,
    /// What `.deploy` alone deploys to.
    pub default_environment: String,
    /// Deploy a pull request whose head is in a fork.
    pub allow_forks: bool,
}

pub const DEFAULT_PREFIX: &str = ".";
pub const DEFAULT_PERMISSION: Role = Role::Write;

impl<'a> Checker<'a> {
    pub(super) fn commands(
        &mut self,
        raw: Option<RawCommands>,
        targets: Option<&[Target]>,
    ) -> Option<Option<Commands>> {
        let Some(raw) = raw else {
            return Some(None);
        };
        let at = |k| [Seg::Key("commands"), Seg::Key(k)];
        let mut ok = true;
        let prefix = raw.prefix.unwrap_or_else(|| DEFAULT_PREFIX.into());
        if prefix.is_empty() || prefix.chars().any(char::is_whitespace) || prefix.len() > 8 {
            self.problem(
                &at("prefix"),
                format!("{prefix:?} cannot start a command: give a few characters without spaces, such as \".\" or \"/\""),
            );
            ok = false;
        }
        let permission = match raw.permission.as_deref() {
            None => DEFAULT_PERMISSION,
            Some(p) => match Role::parse(p).filter(|r| *r != Role::Read) {
                Some(r) => r,
                None => {
                    let hint = checker::suggest(p, &Role::NAMES[1..])
                        .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
                    self.problem(
                        &at("permission"),
                        format!("{p:?} is not a role that may run commands{hint}: triage, write, maintain or admin"),
                    );
                    ok = false;
                    DEFAULT_PERMISSION
                }
            },
        };
        let default_environment = match raw.default_environment {
            Some(e) if !e.trim().is_empty() => {
                let owned = targets.is_none_or(|ts| {
                    ts.iter()
                        .any(|t| !glob::is_glob(&t.environment) && t.environment == e)
                });
                if !owned {
                    self.problem(
                        &at("default_environment"),
                        format!("no target deploys to {e:?}: `.deploy` alone would deploy nowhere"),
                    );
                    ok = false;
                }
                e
            }
            _ => {
                self.problem(
                    &at("default_environment"),
                    "missing: the environment `.deploy` alone deploys to, e.g. \"staging\"",
                );
                return None;
            }
        };
        ok.then_some(Some(Commands {
            prefix,
            permission,
            default_environment,
            allow_forks: raw.allow_forks.unwrap_or(false),
        }))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::tests::{BASE, parse};

    #[test]
    fn commands_are_read_with_their_defaults_and_checked_by_key() {
        let c = parse(&format!(
            "{BASE}\n[commands]\ndefault_environment = \"production\"\n"
        ))
        .unwrap();
        let commands = c.commands.unwrap();
        assert_eq!(commands.prefix, ".");
        assert_eq!(commands.permission, Role::Write);
        assert!(!commands.allow_forks);
        assert!(parse(BASE).unwrap().commands.is_none());
        let err = parse(&format!(
            "{BASE}\n[commands]\nprefix = \" \"\npermission = \"writer\"\ndefault_environment = \"staging\"\n"
        ))
        .unwrap_err();
        let keys: Vec<&str> = err.problems.iter().map(|p| p.key.as_str()).collect();
        assert_eq!(
            keys,
            [
                "commands.prefix",
                "commands.permission",
                "commands.default_environment"
            ],
            "{err}"
        );
        assert!(err.to_string().contains("did you mean \"write\""), "{err}");
        let missing = parse(&format!("{BASE}\n[commands]\n")).unwrap_err();
        assert_eq!(missing.problems[0].key, "commands.default_environment");
    }

    #[test]
    fn roles_are_ordered_as_github_grants_them() {
        assert!(
            Role::Read < Role::Triage
                && Role::Write < Role::Maintain
                && Role::Maintain < Role::Admin
        );
        assert_eq!(Role::parse("maintain").map(Role::as_str), Some("maintain"));
    }
}
