//! Footprint: memory and threads, idle and busy.

use super::*;

pub(crate) async fn footprint(rss: &mut Vec<[String; 5]>) {
    let w = World::build(Setup::default(), |sshd, scratch| {
        let hold = common::hold(scratch);
        target(
            REPO,
            "production",
            &[sshd.host()],
            &[("hold", &hold)],
            "supersede = false",
        )
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let pid = w.ferry.pid();
    let idle = kib(pid, "VmHWM:");
    // The first deployment holds the environment; 10,000 more wait behind it.
    let data = w.dir.path().join("queued.tsv");
    let mut lines = String::new();
    for i in 0..10_001i64 {
        let body = serde_json::to_string(&common::deployment_event(50_000 + i, REPO, "production"))
            .unwrap();
        let _ = writeln!(
            lines,
            "q-{i}\t{}\t{body}",
            common::signature(SECRET, body.as_bytes())
        );
    }
    std::fs::write(&data, lines).unwrap();
    let client = reqwest::Client::new();
    let url = format!("{}/webhook", w.ferry.url);
    let text = std::fs::read_to_string(&data).unwrap();
    let mut pending = tokio::task::JoinSet::new();
    for chunk in text.lines().collect::<Vec<_>>().chunks(400) {
        let chunk: Vec<String> = chunk.iter().map(|s| s.to_string()).collect();
        let (client, url) = (client.clone(), url.clone());
        pending.spawn(async move {
            for line in chunk {
                let mut f = line.splitn(3, '\t');
                let (d, sig, body) = (
                    f.next().unwrap(),
                    f.next().unwrap(),
                    f.next().unwrap().to_string(),
                );
                let r = client
                    .post(&url)
                    .header("content-type", "application/json")
                    .header("x-github-event", "deployment")
                    .header("x-github-delivery", d)
                    .header("x-hub-signature-256", sig)
                    .body(body)
                    .send()
                    .await
                    .unwrap();
                assert_eq!(r.status(), 202);
            }
        });
    }
    while pending.join_next().await.is_some() {}
    tokio::time::sleep(Duration::from_secs(2)).await;
    let queued_now = kib(pid, "VmRSS:");
    let queued_peak = kib(pid, "VmHWM:");
    rss.insert(
        0,
        [
            "Idle RSS after start".into(),
            mb(idle),
            String::new(),
            String::new(),
            "< 20 MB".into(),
        ],
    );
    rss.insert(
        1,
        [
            "RSS with 10,000 deployments queued (peak while they arrived)".into(),
            format!("{} ({} peak)", mb(queued_now), mb(queued_peak)),
            String::new(),
            String::new(),
            String::new(),
        ],
    );
    w.release();
}
