//! `[target.auto_deploy]` as check-config reads it.
use super::*;
use crate::config::tests::{BASE, parse};

const STAGING: &str = r#"
[[target]]
repository = "octo-org/web"
environment = "staging"
hosts = ["deploy@web1.internal"]
require_checks = ["test"]
[[target.steps]]
name = "restart"
run = "true"
"#;

fn problems(extra: &str) -> Vec<(String, String)> {
    parse(&format!("{BASE}{extra}"))
        .unwrap_err()
        .problems
        .into_iter()
        .map(|p| (p.key, p.message))
        .collect()
}

#[test]
fn a_branch_and_a_promotion_are_read() {
    let c = parse(&format!(
        "{BASE}[target.auto_deploy]\nafter = \"staging\"\nsoak = \"30m\"\n{STAGING}[target.auto_deploy]\nbranch = \"main\"\n"
    ))
    .unwrap();
    assert_eq!(
        c.targets[0].auto_deploy,
        Some(AutoDeploy::After {
            environment: "staging".into(),
            soak: Duration::from_secs(1800)
        })
    );
    assert_eq!(
        c.targets[1].auto_deploy,
        Some(AutoDeploy::Branch("main".into()))
    );
    assert!(c.warnings.is_empty(), "{:?}", c.warnings);
    let soakless = parse(&format!(
        "{BASE}[target.auto_deploy]\nafter = \"staging\"\n{STAGING}"
    ))
    .unwrap();
    assert!(matches!(
        soakless.targets[0].auto_deploy,
        Some(AutoDeploy::After { soak, .. }) if soak.is_zero()
    ));
}

#[test]
fn a_branch_without_required_checks_is_warned_about() {
    let c = parse(&format!("{BASE}[target.auto_deploy]\nbranch = \"main\"\n")).unwrap();
    assert_eq!(c.warnings.len(), 1, "{:?}", c.warnings);
    assert_eq!(c.warnings[0].key, "target[0].auto_deploy.branch");
    assert!(
        c.warnings[0].message.contains("every push deploys at once"),
        "{:?}",
        c.warnings
    );
}

#[test]
fn each_problem_is_named_by_its_key() {
    let both = problems("[target.auto_deploy]\nbranch = \"main\"\nafter = \"staging\"\n");
    assert_eq!(both[0].0, "target[0].auto_deploy.after", "{both:?}");
    assert!(both[0].1.contains("not both"), "{both:?}");

    let neither = problems("[target.auto_deploy]\nsoak = \"1h\"\n");
    assert_eq!(neither[0].0, "target[0].auto_deploy", "{neither:?}");

    let nowhere = problems("[target.auto_deploy]\nafter = \"staging\"\n");
    assert_eq!(nowhere[0].0, "target[0].auto_deploy.after", "{nowhere:?}");
    assert!(
        nowhere[0].1.contains("no target deploys octo-org/web"),
        "{nowhere:?}"
    );

    let typo = problems(&format!(
        "[target.auto_deploy]\nafter = \"stagin\"\n{STAGING}"
    ));
    assert!(
        typo[0].1.contains("(did you mean \"staging\"?)"),
        "{typo:?}"
    );

    let soak = problems(&format!(
        "[target.auto_deploy]\nafter = \"staging\"\nsoak = \"soon\"\n{STAGING}"
    ));
    assert_eq!(soak[0].0, "target[0].auto_deploy.soak", "{soak:?}");

    let branch_soak = problems("[target.auto_deploy]\nbranch = \"main\"\nsoak = \"1h\"\n");
    assert_eq!(
        branch_soak[0].0, "target[0].auto_deploy.soak",
        "{branch_soak:?}"
    );

    let refs = problems("[target.auto_deploy]\nbranch = \"refs/heads/main\"\n");
    assert!(refs[0].1.contains("without refs/heads/"), "{refs:?}");

    let typo = problems("[target.auto_deploy]\nbrnach = \"main\"\n");
    assert_eq!(typo[0].0, "target[0].auto_deploy.brnach", "{typo:?}");
    assert!(typo[0].1.contains("did you mean 'branch'"), "{typo:?}");

    let own = problems("[target.auto_deploy]\nafter = \"production\"\n");
    assert!(own[0].1.contains("own environment"), "{own:?}");
}

#[test]
fn a_pattern_environment_cannot_be_deployed_automatically() {
    let body = BASE.replace("environment = \"production\"", "environment = \"review-*\"");
    let err = parse(&format!("{body}[target.auto_deploy]\nbranch = \"main\"\n")).unwrap_err();
    assert_eq!(err.problems[0].key, "target[0].auto_deploy", "{err}");
    assert!(err.problems[0].message.contains("pattern"), "{err}");
}
