//! Failover: a replica killed while it runs a deployment.

use super::*;

/// Two replicas on PostgreSQL; `kill -9` of the one running a deployment;
/// how long until the other has posted its `error`.
pub(crate) async fn failover(report: &mut Vec<[String; 5]>) {
    let url = common::postgres::cluster().database();
    let mut w = burst_ferry(Some(url.clone()), Busy::Held).await;
    let mut b = w.replica(2).await;
    let id = 2_999_999;
    let pid = common::postgres::holder(&url, id).await.expect("held");
    let killed = Instant::now();
    if pid == w.ferry.pid() {
        w.ferry.kill9();
    } else {
        b.kill9();
    }
    w.github.wait_final(id, Duration::from_secs(90)).await;
    let took = killed.elapsed();
    report.push([
        "Failover: kill -9 of the replica running a deployment, until the other posts `error`"
            .into(),
        secs(took),
        "docs: 30 s".into(),
        format!("{:.2}x", took.as_secs_f64() / 30.0),
        "<= 30 s".into(),
    ]);
    w.release();
}
