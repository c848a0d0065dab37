//! How a deployment ended, and the final description GitHub shows for it
//! (in `wording`'s words).

use std::time::Duration;

use crate::store::{Cancellation, Deployment, State};
use crate::wording;

/// How a deployment ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Success {
        hosts: usize,
        elapsed: Duration,
    },
    StepFailed {
        step: String,
        host: String,
        code: i32,
    },
    TimedOut {
        after: Duration,
        at: Option<(String, String)>,
    },
    ConnectFailed {
        host: String,
        cause: String,
    },
    Lost {
        step: String,
        host: String,
        cause: String,
    },
    /// A check did not pass on a host within its `within`.
    CheckFailed {
        check: String,
        host: String,
        after: Duration,
        code: i32,
    },
    /// The host missed its keepalives during the step.
    ConnectionLost {
        step: String,
        host: String,
    },
    NoTarget,
    NoSteps,
    Shutdown,
    Cancelled(Cancellation),
    /// This process lost its claim: another one settles the deployment,
    /// so this outcome is never reported.
    LeaseLost,
    Internal(String),
}

impl Outcome {
    /// Whether an operator must fix something before the environment can
    /// deploy again: logged at warning priority.
    pub fn needs_an_operator(&self) -> bool {
        matches!(
            self,
            Outcome::ConnectFailed { .. }
                | Outcome::Lost { .. }
                | Outcome::ConnectionLost { .. }
                | Outcome::NoTarget
                | Outcome::NoSteps
        )
    }

    pub fn state(&self) -> State {
        match self {
            Outcome::Success { .. } => State::Success,
            Outcome::StepFailed { .. } | Outcome::TimedOut { .. } | Outcome::CheckFailed { .. } => {
                State::Failure
            }
            _ => State::Error,
        }
    }

    /// The final description: for a teardown, what became of the
    /// environment. The words are `wording`'s.
    pub fn describe(&self, d: &Deployment) -> String {
        if d.teardown_of.is_none() {
            return self.describe_deployment(d);
        }
        match self {
            Outcome::Success { hosts, elapsed } => wording::torn_down(*hosts, *elapsed),
            other => wording::not_torn_down(&other.describe_deployment(d)),
        }
    }

    fn describe_deployment(&self, d: &Deployment) -> String {
        match self {
            Outcome::Success { hosts, elapsed } => wording::deployed(&d.sha, *hosts, *elapsed),
            Outcome::StepFailed { step, host, code } => wording::step_failed(step, host, *code),
            Outcome::TimedOut { after, at } => wording::timed_out(*after, at.as_ref()),
            Outcome::ConnectFailed { host, cause } => wording::cannot_connect(host, cause),
            Outcome::Lost { step, host, cause } => wording::lost_step(step, host, cause),
            Outcome::ConnectionLost { step, host } => wording::lost_connection(host, step),
            Outcome::CheckFailed {
                check,
                host,
                after,
                code,
            } => wording::check_failed(check, host, *after, *code),
            Outcome::NoTarget => wording::no_target(&d.repository, &d.environment, &d.task),
            Outcome::NoSteps => wording::no_steps(&d.task, &d.repository),
            Outcome::Shutdown => wording::SHUTTING_DOWN.into(),
            Outcome::Cancelled(c) => c.describe(),
            Outcome::LeaseLost => wording::TAKEN_OVER.into(),
            Outcome::Internal(why) => wording::could_not_run(why),
        }
    }
}
