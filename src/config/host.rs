//! A host as a config writes it, `[user@]name[:port]`, and as ferry names it.

use super::*;

/// A host as written in the config: `[user@]name[:port]`, IPv6 as `[::1]:22`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Host {
    pub user: Option<String>,
    pub name: String,
    pub port: Option<u16>,
}

impl Host {
    pub fn parse(s: &str) -> Result<Host, String> {
        if s.is_empty() {
            return Err("empty host".into());
        }
        if s.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(format!("{s:?} contains white space"));
        }
        let (user, rest) = match s.rsplit_once('@') {
            Some((u, r)) if !u.is_empty() => (Some(u.to_string()), r),
            Some(_) => return Err(format!("{s:?} has an empty user before '@'")),
            None => (None, s),
        };
        let (name, port) = if let Some(v6) = rest.strip_prefix('[') {
            let (name, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("{s:?} opens '[' without closing it"))?;
            match after {
                "" => (name, None),
                p if p.starts_with(':') => (name, Some(&p[1..])),
                _ => return Err(format!("{s:?}: unexpected text after ']'")),
            }
        } else {
            match rest.split_once(':') {
                Some((n, p)) => (n, Some(p)),
                None => (rest, None),
            }
        };
        if name.is_empty() {
            return Err(format!("{s:?} has no host name"));
        }
        // ssh would read a leading '-' as an option.
        if name.starts_with('-') || user.as_deref().is_some_and(|u| u.starts_with('-')) {
            return Err(format!("{s:?} may not start with '-'"));
        }
        let port = match port {
            None => None,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => Some(n),
                _ => {
                    return Err(format!(
                        "{s:?} has an invalid port {p:?} (expected 1-65535)"
                    ));
                }
            },
        };
        Ok(Host {
            user,
            name: name.to_string(),
            port,
        })
    }
}

impl Host {
    /// The host as a config writes it, for [`Host::parse`] to read back.
    /// `local`: ferry's own host, no SSH (docs/configuration.md, "Configure a target").
    pub fn is_local(&self) -> bool {
        self.user.is_none() && self.port.is_none() && self.name == crate::runner::link::LOCAL
    }

    pub fn spec(&self) -> String {
        match &self.user {
            Some(u) => format!("{u}@{self}"),
            None => self.to_string(),
        }
    }
}

/// How a host is named in logs and descriptions: no user, port only when set.
impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (self.port, self.name.contains(':')) {
            (Some(p), true) => write!(f, "[{}]:{p}", self.name),
            (Some(p), false) => write!(f, "{}:{p}", self.name),
            (None, _) => f.write_str(&self.name),
        }
    }
}
