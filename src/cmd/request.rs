//! What `ferry deploy` and `ferry rollback` share: the command has no
//! credentials, so it leaves a request in the store for the running ferry
//! (any replica, [`crate::github::create`]), which asks GitHub, and waits
//! up to 30 seconds for GitHub's answer. A request no ferry took by then is
//! withdrawn, so "nothing was created" stays true.

use std::time::{Duration, Instant};

use super::Failed;
use crate::config::Steering;
use crate::store::{DeployRequest, DeploymentId, RequestAnswer, RequestState, SharedStore};

/// How long the command waits for GitHub's answer (docs/reference.md).
const WAIT: Duration = Duration::from_secs(30);
/// A ferry may take the request this long after it was left; the rest of
/// [`WAIT`] is for it to record GitHub's answer.
const TAKE_WITHIN: Duration = Duration::from_secs(28);
/// When no ferry has beaten this long after the request was left, none
/// runs (docs/reference.md: within 5 seconds); a ferry starting now has beaten by then.
const NO_DAEMON_AFTER: Duration = Duration::from_secs(2);
/// How often the command looks for the answer.
const LOOK: Duration = Duration::from_millis(200);
/// With `--follow`, how long to wait for the created deployment to reach
/// the store (queued from GitHub's answer, else by its webhook).
const ARRIVAL: Duration = Duration::from_secs(60);

/// Leaves the request and waits for GitHub's answer: the new deployment's
/// id, or the reason (already said) why there is none.
pub(super) async fn ask(
    store: &SharedStore,
    request: &DeployRequest,
) -> anyhow::Result<DeploymentId> {
    let started = Instant::now();
    let seq = store.request_deployment(request, TAKE_WITHIN).await?;
    let mut progress = Progress::new();
    let result = loop {
        let state = if started.elapsed() >= WAIT {
            // Withdrawn unless a ferry took it meanwhile: then its answer
            // (or its silence) is what is reported.
            store.withdraw_request(seq).await?
        } else {
            store.request_state(seq).await?
        };
        match state {
            Some(RequestState::Answered(answer)) => break answered(request, answer),
            Some(RequestState::Pending)
                if started.elapsed() >= NO_DAEMON_AFTER
                    && !crate::store::daemons::running(&**store).await =>
            {
                // Withdrawn first: a ferry that starts now must not take it.
                if let Some(RequestState::Withdrawn | RequestState::Pending) | None =
                    store.withdraw_request(seq).await?
                {
                    progress.clear();
                    let last = match store.last_beat().await {
                        Ok(Some(b)) => format!(
                            "; the last one ({}) stopped {} ago",
                            b.name,
                            crate::format::duration(b.ago)
                        ),
                        _ => String::new(),
                    };
                    eprintln!(
                        "error: no ferry is running on this store{last}: start it (`systemctl start ferry`, or `ferry serve`) and ask again; nothing was created"
                    );
                    break Err(Failed.into());
                }
            }
            Some(RequestState::Pending | RequestState::Withdrawn) | None
                if started.elapsed() >= WAIT =>
            {
                progress.clear();
                eprintln!(
                    "error: no running ferry took the request within {}s (is `ferry serve` running? `systemctl status ferry`); nothing was created, and nothing will be",
                    WAIT.as_secs()
                );
                break Err(Failed.into());
            }
            Some(RequestState::Taken { by }) if started.elapsed() >= WAIT => {
                progress.clear();
                eprintln!(
                    "error: ferry ({by}) asked GitHub but recorded no answer within {}s: the deployment may exist; look with `ferry deployments` before asking again",
                    WAIT.as_secs()
                );
                break Err(Failed.into());
            }
            _ => {
                progress.show(started.elapsed());
                tokio::time::sleep(LOOK).await
            }
        }
    };
    progress.clear();
    result
}

/// "waiting for GitHub… 4s" on a terminal, rewritten in place; nothing
/// where stderr is a file or a pipe (scripts, the journal).
struct Progress {
    tty: bool,
    shown: bool,
}

impl Progress {
    fn new() -> Progress {
        use std::io::IsTerminal;
        Progress {
            tty: std::io::stderr().is_terminal(),
            shown: false,
        }
    }

    fn show(&mut self, elapsed: Duration) {
        if self.tty && elapsed >= Duration::from_secs(1) {
            eprint!(
                "\r\x1b[Kwaiting for GitHub's answer ({}s of {}s)",
                elapsed.as_secs(),
                WAIT.as_secs()
            );
            self.shown = true;
        }
    }

    fn clear(&mut self) {
        if self.shown {
            eprint!("\r\x1b[K");
            self.shown = false;
        }
    }
}

fn answered(request: &DeployRequest, answer: RequestAnswer) -> anyhow::Result<DeploymentId> {
    match answer {
        RequestAnswer::Created(id) => Ok(id),
        RequestAnswer::Refused(reason) => {
            eprintln!("error: GitHub refused the deployment: {reason}");
            if reason.starts_with("409") && !request.skip_contexts {
                eprintln!(
                    "hint: the commit's required status checks have not all passed; --force skips GitHub's required contexts (required_contexts: [])"
                );
            } else if reason.starts_with("422") {
                eprintln!(
                    "hint: is {} a branch, tag or sha of {}?",
                    request.git_ref, request.repository
                );
            }
            Err(Failed.into())
        }
        RequestAnswer::Unreachable(reason) => {
            eprintln!(
                "error: GitHub could not be reached within {}s ({reason}); nothing was created, and nothing will be",
                WAIT.as_secs()
            );
            Err(Failed.into())
        }
        RequestAnswer::InDoubt(reason) => {
            eprintln!(
                "error: GitHub did not answer in time ({reason}): the deployment may exist; look with `ferry deployments` before asking again"
            );
            Err(Failed.into())
        }
    }
}

/// Prints the id (alone on stdout, for scripts) and, with `--follow`,
/// tails the deployment like `ferry logs --follow`, with its exit status.
pub(super) async fn after_created(
    c: &Steering,
    store: &SharedStore,
    id: DeploymentId,
    follow: bool,
) -> anyhow::Result<()> {
    println!("{id}");
    // A lock holds this deployment too: say so before anyone waits on it.
    if let Ok(d) = store.get(id).await
        && let Some(d) = d
        && let Ok(locks) = store.locks().await
        && let Some(lock) = crate::store::EnvLock::find(&locks, &d.repository, &d.environment)
    {
        eprintln!(
            "warning: {}:{} is locked by {}: deployment {id} waits until `ferry unlock {}:{}`",
            d.repository,
            d.environment,
            lock.describe(),
            d.repository,
            d.environment
        );
    }
    if !follow {
        eprintln!("created deployment {id}; follow it with `ferry logs {id} --follow`");
        return Ok(());
    }
    let started = Instant::now();
    let mut said = false;
    while store.get(id).await?.is_none() {
        if started.elapsed() > ARRIVAL {
            eprintln!(
                "error: deployment {id} was created on GitHub, but neither GitHub's answer nor its webhook brought it to ferry within {}s; check the webhook's recent deliveries",
                ARRIVAL.as_secs()
            );
            return Err(Failed.into());
        }
        if !said {
            eprintln!("waiting for deployment {id} to reach ferry");
            said = true;
        }
        tokio::time::sleep(LOOK).await;
    }
    super::logs::logs(c, id.0, true).await
}
