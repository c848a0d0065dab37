//! When steps ran on the host, per environment: the proof that one
//! environment never runs two deployments at once.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;

/// A step that records when it ran, per environment, and sleeps `secs`.
pub fn timed_step(scratch: &Path, secs: &str) -> String {
    let t = scratch.join("timeline").display().to_string();
    format!(
        "echo \"$FERRY_ENVIRONMENT $FERRY_DEPLOYMENT_ID start $(date +%s%N)\" >> {t}\n\
         sleep {secs}\n\
         echo \"$FERRY_ENVIRONMENT $FERRY_DEPLOYMENT_ID end $(date +%s%N)\" >> {t}"
    )
}

/// environment → [(deployment, start, end)] in start order, from the timeline.
pub fn runs(scratch: &Path) -> BTreeMap<String, Vec<(i64, u128, u128)>> {
    let text = std::fs::read_to_string(scratch.join("timeline")).unwrap_or_default();
    let mut open: HashMap<(String, i64), u128> = HashMap::new();
    let mut runs: BTreeMap<String, Vec<(i64, u128, u128)>> = BTreeMap::new();
    for line in text.lines() {
        let f: Vec<&str> = line.split_whitespace().collect();
        let (env, id, what, at) = (
            f[0].to_string(),
            f[1].parse().unwrap(),
            f[2],
            f[3].parse().unwrap(),
        );
        if what == "start" {
            assert!(
                open.insert((env, id), at).is_none(),
                "deployment {id} started twice"
            );
        } else {
            let start = open.remove(&(env.clone(), id)).expect("end without start");
            runs.entry(env).or_default().push((id, start, at));
        }
    }
    for r in runs.values_mut() {
        r.sort_by_key(|&(_, s, _)| s);
    }
    runs
}

pub fn assert_serialized(runs: &BTreeMap<String, Vec<(i64, u128, u128)>>) {
    for (env, list) in runs {
        for pair in list.windows(2) {
            assert!(
                pair[1].1 >= pair[0].2,
                "{env}: {} started before {} ended: {list:?}",
                pair[1].0,
                pair[0].0
            );
        }
    }
}
