//! `[protection]`: answer GitHub's custom deployment protection rules, so
//! that GitHub Actions jobs deploying to an environment obey ferry's locks
//! and freezes too. A GitHub App only: GitHub sends the rule's event to an
//! App.

use super::*;
use raw::RawProtection;

/// `[protection]` as read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Protection {
    /// Globs; empty: every repository a target names.
    pub repositories: Vec<String>,
}

impl Protection {
    /// Whether runs of `repository` are answered.
    pub fn covers(&self, config_targets: &[Target], repository: &str) -> bool {
        if self.repositories.is_empty() {
            config_targets.iter().any(|t| t.repository == repository)
        } else {
            self.repositories
                .iter()
                .any(|g| glob::matches(g, repository))
        }
    }
}

impl<'a> Checker<'a> {
    pub(super) fn protection(
        &mut self,
        raw: RawProtection,
        app: Option<bool>,
    ) -> Option<Protection> {
        if app == Some(false) {
            self.problem(
                &[Seg::Key("protection")],
                "needs a GitHub App (github.app_id): GitHub sends deployment protection rules only to Apps, never to a token",
            );
            return None;
        }
        let mut ok = true;
        for (i, g) in raw.repositories.iter().enumerate() {
            if g.trim().is_empty() || g.contains(char::is_whitespace) {
                self.problem(
                    &[
                        Seg::Key("protection"),
                        Seg::Key("repositories"),
                        Seg::Index(i),
                    ],
                    format!("{g:?} is not a repository or pattern, e.g. \"octo-org/*\""),
                );
                ok = false;
            }
        }
        ok.then_some(Protection {
            repositories: raw.repositories,
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::config::tests::{BASE, parse};

    #[test]
    fn protection_needs_an_app() {
        let err = parse(&format!("{BASE}\n[protection]\n")).unwrap_err();
        assert_eq!(err.problems[0].key, "protection", "{err}");
        assert!(err.to_string().contains("needs a GitHub App"), "{err}");
    }
}
