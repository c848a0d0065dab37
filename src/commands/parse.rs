//! The first line of a pull request comment, read as a command. Only a
//! line that starts with the prefix and a command word, followed by the
//! end of the line or a space, is one: `.deployment is broken`, `please
//! .deploy` and quoted text (`> .deploy`) are not. What follows the word
//! is data (an environment, a reason); nothing of it reaches a shell.

/// A command, as written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// `.deploy` (None: the default environment) or `.deploy to ENV`.
    Deploy(Option<String>),
    Rollback(String),
    Lock {
        environment: String,
        reason: String,
    },
    Unlock(String),
    Help,
}

/// The longest first line read as a command: longer, it is refused.
pub const MAX_LINE: usize = 1_000;
/// The longest environment name taken.
const MAX_ENVIRONMENT: usize = 255;

/// What a comment says: None when it is no command at all; a command, or
/// why the command word was used wrongly (for the reply).
pub fn parse(prefix: &str, body: &str) -> Option<Result<Command, String>> {
    let first = body.lines().next()?.trim();
    let rest = first.strip_prefix(prefix)?;
    let (word, args) = match rest.split_once(char::is_whitespace) {
        Some((w, a)) => (w, a.trim()),
        None => (rest, ""),
    };
    let known = ["deploy", "rollback", "lock", "unlock", "help"];
    if !known.contains(&word) {
        return None;
    }
    if first.len() > MAX_LINE {
        return Some(Err(format!(
            "the command is longer than {MAX_LINE} characters"
        )));
    }
    let usage = |u: &str| Err(format!("usage: `{prefix}{u}`"));
    let mut words = args.split_whitespace();
    let environment = |e: Option<&str>| -> Result<String, String> {
        match e {
            Some(e) if e.len() <= MAX_ENVIRONMENT && e.chars().all(|c| !c.is_control()) => {
                Ok(e.to_string())
            }
            Some(_) => Err(format!(
                "an environment name is at most {MAX_ENVIRONMENT} characters"
            )),
            None => Err(String::new()),
        }
    };
    Some(
        match word {
            "deploy" => match (words.next(), words.next(), words.next()) {
                (None, _, _) => Ok(Command::Deploy(None)),
                (Some("to"), Some(e), None) => {
                    environment(Some(e)).map(|e| Command::Deploy(Some(e)))
                }
                _ => Err(format!(
                    "usage: `{prefix}deploy` or `{prefix}deploy to ENV`"
                )),
            },
            "rollback" => match (words.next(), words.next()) {
                (Some(e), None) => environment(Some(e)).map(Command::Rollback),
                _ => usage("rollback ENV"),
            },
            "unlock" => match (words.next(), words.next()) {
                (Some(e), None) => environment(Some(e)).map(Command::Unlock),
                _ => usage("unlock ENV"),
            },
            "lock" => match words.next() {
                Some(e) => {
                    let reason = args[e.len()..].trim().to_string();
                    environment(Some(e)).map(|environment| Command::Lock {
                        environment,
                        reason,
                    })
                }
                None => usage("lock ENV [REASON]"),
            },
            _ => Ok(Command::Help),
        }
        .map_err(|e| {
            if e.is_empty() {
                "an environment is missing".to_string()
            } else {
                e
            }
        }),
    )
}

impl Command {
    /// The command word, for replies and the journal: `.deploy`.
    pub fn word(&self) -> &'static str {
        match self {
            Command::Deploy(_) => "deploy",
            Command::Rollback(_) => "rollback",
            Command::Lock { .. } => "lock",
            Command::Unlock(_) => "unlock",
            Command::Help => "help",
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(body: &str) -> Command {
        parse(".", body).unwrap().unwrap()
    }

    #[test]
    fn each_command_and_its_arguments() {
        assert_eq!(ok(".deploy"), Command::Deploy(None));
        assert_eq!(ok(".deploy\r\nthanks!"), Command::Deploy(None));
        assert_eq!(
            ok(".deploy to production"),
            Command::Deploy(Some("production".into()))
        );
        assert_eq!(
            ok(".rollback production"),
            Command::Rollback("production".into())
        );
        assert_eq!(
            ok(".lock production incident 7: db migration"),
            Command::Lock {
                environment: "production".into(),
                reason: "incident 7: db migration".into()
            }
        );
        assert_eq!(
            ok(".lock staging"),
            Command::Lock {
                environment: "staging".into(),
                reason: String::new()
            }
        );
        assert_eq!(
            ok(".unlock production"),
            Command::Unlock("production".into())
        );
        assert_eq!(ok(".help"), Command::Help);
        assert_eq!(
            parse("/", "/deploy to staging"),
            Some(Ok(Command::Deploy(Some("staging".into()))))
        );
    }

    #[test]
    fn look_alikes_are_no_commands() {
        for body in [
            ".deployment is broken",
            "please .deploy",
            "> .deploy",
            "",
            "\n.deploy",
            ".deploys",
            "deploy",
            "/deploy",
        ] {
            assert_eq!(parse(".", body), None, "{body:?}");
        }
    }

    #[test]
    fn a_command_word_used_wrongly_says_how() {
        for (body, says) in [
            (".deploy production", "usage"),
            (".deploy to", "usage"),
            (".rollback", "usage"),
            (".unlock a b", "usage"),
            (".lock", "usage"),
        ] {
            let got = parse(".", body).unwrap().unwrap_err();
            assert!(got.contains(says), "{body:?}: {got}");
        }
        let long = format!(".lock production {}", "x".repeat(MAX_LINE));
        assert!(
            parse(".", &long)
                .unwrap()
                .unwrap_err()
                .contains("longer than")
        );
        let env = format!(".unlock {}", "e".repeat(300));
        assert!(parse(".", &env).unwrap().unwrap_err().contains("at most"));
    }
}
