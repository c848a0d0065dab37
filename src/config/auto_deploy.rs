//! `[target.auto_deploy]`: ferry starts the target's deployments itself,
//! from a branch's green head or by promoting what succeeded elsewhere.

use super::*;
use raw::RawAutoDeploy;

/// What starts a target's deployments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AutoDeploy {
    /// Each new head of this branch, once its `require_checks` passed.
    Branch(String),
    /// The sha that succeeded in this environment of the same repository,
    /// once it stayed there for `soak`.
    After { environment: String, soak: Duration },
}

impl AutoDeploy {
    pub fn branch(&self) -> Option<&str> {
        match self {
            AutoDeploy::Branch(b) => Some(b),
            AutoDeploy::After { .. } => None,
        }
    }

    /// In words, for check-config: "main's green head", "after staging (30m)".
    pub fn describe(&self) -> String {
        match self {
            AutoDeploy::Branch(b) => format!("auto-deploys {b}'s green head"),
            AutoDeploy::After { environment, soak } if soak.is_zero() => {
                format!("promotes what succeeded in {environment}")
            }
            AutoDeploy::After { environment, soak } => format!(
                "promotes what stayed {} in {environment}",
                crate::format::duration(*soak)
            ),
        }
    }
}

impl<'a> Checker<'a> {
    /// One target's `[target.auto_deploy]`; None after reporting each
    /// problem. `environment` is the target's; whether `after` names an
    /// environment some target deploys is checked once every target is
    /// read ([`Checker::promotions_follow_targets`]).
    pub(super) fn auto_deploy(
        &mut self,
        i: usize,
        environment: &str,
        has_checks: bool,
        raw: RawAutoDeploy,
    ) -> Option<AutoDeploy> {
        let at = |k| {
            [
                Seg::Key("target"),
                Seg::Index(i),
                Seg::Key("auto_deploy"),
                Seg::Key(k),
            ]
        };
        let table = [Seg::Key("target"), Seg::Index(i), Seg::Key("auto_deploy")];
        if glob::is_glob(environment) {
            self.problem(
                &table,
                format!(
                    "the target's environment {environment:?} is a pattern: ferry can only \
                     start deployments to one named environment"
                ),
            );
            return None;
        }
        let soak = self.duration(&at("soak"), raw.soak.clone());
        if raw.soak.is_some() && soak.is_none() {
            return None;
        }
        match (raw.branch, raw.after) {
            (Some(_), Some(_)) => {
                self.problem(
                    &at("after"),
                    "give `branch` or `after`, not both: a target follows a branch or promotes from another environment",
                );
                None
            }
            (None, None) => {
                self.problem(
                    &table,
                    "missing `branch` (deploy a branch's green head) or `after` (promote from another environment)",
                );
                None
            }
            (Some(branch), None) => {
                if raw.soak.is_some() {
                    self.problem(
                        &at("soak"),
                        "only with `after`: a branch's head is deployed once its checks passed",
                    );
                    return None;
                }
                self.followed_branch(i, branch, has_checks)
            }
            (None, Some(after)) => {
                if after == environment {
                    self.problem(
                        &at("after"),
                        format!("{after:?} is this target's own environment: name the one to promote from"),
                    );
                    return None;
                }
                Some(AutoDeploy::After {
                    environment: after,
                    soak: soak.unwrap_or(Duration::ZERO),
                })
            }
        }
    }

    /// `branch`: a branch's name as GitHub gives it in a push, without
    /// `refs/heads/`.
    fn followed_branch(
        &mut self,
        i: usize,
        branch: String,
        has_checks: bool,
    ) -> Option<AutoDeploy> {
        let at = [
            Seg::Key("target"),
            Seg::Index(i),
            Seg::Key("auto_deploy"),
            Seg::Key("branch"),
        ];
        let bad = branch.trim().is_empty()
            || branch.starts_with("refs/")
            || branch.chars().any(|c| c.is_whitespace() || c == '*');
        if bad {
            self.problem(
                &at,
                format!(
                    "{branch:?} is not a branch name; give it as \"main\", without refs/heads/"
                ),
            );
            return None;
        }
        if !has_checks {
            self.warning(
                &at,
                "no require_checks on this target: every push deploys at once",
            );
        }
        Some(AutoDeploy::Branch(branch))
    }

    /// Every `after` names an environment some target of the same
    /// repository deploys: otherwise nothing would ever be promoted.
    pub(super) fn promotions_follow_targets(&mut self, targets: &[Target]) {
        for (i, t) in targets.iter().enumerate() {
            let Some(AutoDeploy::After { environment, .. }) = &t.auto_deploy else {
                continue;
            };
            let deployed = targets.iter().any(|o| {
                o.repository == t.repository && glob::matches(&o.environment, environment)
            });
            if !deployed {
                let known: Vec<&str> = targets
                    .iter()
                    .filter(|o| o.repository == t.repository && !glob::is_glob(&o.environment))
                    .map(|o| o.environment.as_str())
                    .collect();
                let hint = checker::suggest(environment, &known)
                    .map_or(String::new(), |s| format!(" (did you mean {s:?}?)"));
                self.problem(
                    &[
                        Seg::Key("target"),
                        Seg::Index(i),
                        Seg::Key("auto_deploy"),
                        Seg::Key("after"),
                    ],
                    format!(
                        "no target deploys {} to {environment:?}{hint}: nothing would ever be promoted from there",
                        t.repository
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
#[path = "auto_deploy_tests.rs"]
mod tests;
