//! A repository's name as a target gives it ("owner/name"). GitHub
//! compares repository names without regard to ASCII case: a webhook for
//! `Octo-Org/Web` is for the target of `octo-org/web`. The comparison
//! lives here, so no `==` on the name can forget it.

use std::fmt;
use std::hash::{Hash, Hasher};

#[derive(Debug, Clone)]
pub struct RepoName(String);

impl RepoName {
    pub fn new(name: impl Into<String>) -> RepoName {
        RepoName(name.into())
    }

    /// As the config spells it.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl PartialEq for RepoName {
    fn eq(&self, other: &RepoName) -> bool {
        self.0.eq_ignore_ascii_case(&other.0)
    }
}

impl Eq for RepoName {}

impl Hash for RepoName {
    fn hash<H: Hasher>(&self, state: &mut H) {
        // Alike for names that compare equal.
        for b in self.0.bytes() {
            state.write_u8(b.to_ascii_lowercase());
        }
    }
}

impl PartialEq<str> for RepoName {
    fn eq(&self, other: &str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl PartialEq<&str> for RepoName {
    fn eq(&self, other: &&str) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl PartialEq<String> for RepoName {
    fn eq(&self, other: &String) -> bool {
        self.0.eq_ignore_ascii_case(other)
    }
}

impl std::ops::Deref for RepoName {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RepoName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl From<&RepoName> for String {
    fn from(name: &RepoName) -> String {
        name.0.clone()
    }
}

impl From<RepoName> for String {
    fn from(name: RepoName) -> String {
        name.0
    }
}

#[cfg(test)]
mod tests {
    use super::RepoName;

    #[test]
    fn names_compare_as_github_compares_them() {
        let name = RepoName::new("octo-org/web");
        assert_eq!(name, "Octo-Org/Web");
        assert_eq!(name, RepoName::new("OCTO-ORG/WEB"));
        assert_ne!(name, "octo-org/web2");
        assert_eq!(name.to_string(), "octo-org/web", "spelt as configured");
        use std::collections::HashSet;
        let set: HashSet<RepoName> = [RepoName::new("a/B"), RepoName::new("A/b")].into();
        assert_eq!(set.len(), 1);
    }
}
