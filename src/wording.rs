//! Texts GitHub shows or an operator reads for a state, in one place, so
//! that the description on GitHub, `ferry locks`, the log and the journal
//! say the same thing in the same words.

use crate::store::DeploymentId;

/// A step left on a host that ferry could not end yet.
pub fn hold(deployment: DeploymentId, host: &str) -> String {
    format!("cannot end the step of deployment {deployment} on {host} yet")
}

/// The `queued` description of a deployment waiting on a hold.
pub fn held_waiting(environment: &str, hold: &str) -> String {
    format!("Waiting: {environment} is held: {hold}")
}

/// A host that answered none of its keepalives while a step ran there.
pub fn lost_connection(host: &str, step: &str) -> String {
    format!("Lost the connection to {host} during step '{step}'")
}

/// `ferry teardown` of an environment whose latest deployment is not
/// transient, without `--yes`.
pub fn teardown_needs_yes(env: &str, latest: DeploymentId) -> String {
    format!(
        "{env} is not a review app (its latest deployment, {latest}, is not transient): \
         tearing it down marks every deployment of it inactive and GitHub then shows it \
         as destroyed; run `ferry teardown {env} --yes` if that is what you want"
    )
}

/// `/healthz` and the webhook's `503` while the store cannot take writes.
pub fn storage_unavailable(why: &str) -> String {
    format!("storage unavailable: {why}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hold_texts_fit_a_description() {
        let d = held_waiting("production", &hold(DeploymentId(41), "web1"));
        assert_eq!(
            d,
            "Waiting: production is held: cannot end the step of deployment 41 on web1 yet"
        );
        assert!(d.len() <= 140);
    }
}
