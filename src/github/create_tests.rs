use super::*;

fn request() -> DeployRequest {
    DeployRequest {
        actor: "alice".into(),
        repository: "octo-org/web".into(),
        environment: "production".into(),
        git_ref: "f95f852bd8fca8fcc58a9a2d6c842781e32a215e".into(),
        task: "deploy".into(),
        payload: r#"{"web":{"replicas":3}}"#.into(),
        description: "Rollback to f95f852 (deployment 41) by alice".into(),
        skip_contexts: true,
        production: Some(true),
        transient: Some(false),
        rollback_of: Some(DeploymentId(41)),
    }
}

#[test]
fn a_rollback_asks_for_the_sha_with_no_contexts_and_the_originals_flags() {
    let q = request();
    let body = serde_json::to_value(CreateBody::of(&q)).unwrap();
    assert_eq!(
        body,
        serde_json::json!({
            "ref": "f95f852bd8fca8fcc58a9a2d6c842781e32a215e",
            "environment": "production",
            "task": "deploy",
            "payload": {"web": {"replicas": 3}},
            "auto_merge": false,
            "description": "Rollback to f95f852 (deployment 41) by alice",
            "required_contexts": [],
            "production_environment": true,
            "transient_environment": false,
        })
    );
}

#[test]
fn a_deploy_leaves_required_contexts_to_github_unless_forced() {
    let mut q = request();
    q.skip_contexts = false;
    q.production = None;
    q.transient = None;
    let body = serde_json::to_value(CreateBody::of(&q)).unwrap();
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(
        keys,
        [
            "auto_merge",
            "description",
            "environment",
            "payload",
            "ref",
            "task"
        ]
    );
}
