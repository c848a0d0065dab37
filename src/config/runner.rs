//! `[runner]`: how many deployments at once, and the shutdown grace.

use super::*;

impl<'a> Checker<'a> {
    pub(super) fn runner(&mut self, raw: RawRunner) -> Option<RunnerSettings> {
        let max = raw.max_concurrent.unwrap_or(DEFAULT_MAX_CONCURRENT as i64);
        let max_concurrent = match usize::try_from(max).ok().and_then(NonZeroUsize::new) {
            Some(n) => n,
            None => {
                self.problem(
                    &[Seg::Key("runner"), Seg::Key("max_concurrent")],
                    format!("{max} is not a positive number"),
                );
                return None;
            }
        };
        let shutdown_grace = self
            .duration(
                &[Seg::Key("runner"), Seg::Key("shutdown_grace")],
                raw.shutdown_grace,
            )
            .unwrap_or(DEFAULT_SHUTDOWN_GRACE);
        Some(RunnerSettings {
            max_concurrent,
            shutdown_grace,
        })
    }
}
