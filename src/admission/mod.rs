//! Whether a deployment may run now, beyond its environment's turn: the
//! rules the runner and intake ask. A lock or a hold on a step ferry could
//! not end is the store's (`store::waiting_on`); here are the rules with
//! logic of their own:
//!
//! - [`freeze`]: freeze windows on the timeline, in their time zones;
//! - [`required_checks`]: deployments waiting for their sha's required
//!   checks (the gatekeeper);
//! - [`teardown`]: when review apps are torn down.

pub mod freeze;
pub mod required_checks;
pub mod teardown;
