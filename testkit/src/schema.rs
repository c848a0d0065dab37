//! GitHub's request schema for a deployment status (from the OpenAPI
//! description in `tests/data/github`), and the check the fake GitHub
//! runs every posted status through.

use serde_json::Value;

pub fn request_schema() -> Value {
    schema_of("openapi-create-deployment-status.json")
}

/// The request schema of create-deployment (`ferry deploy`, `ferry rollback`).
pub fn create_deployment_schema() -> Value {
    schema_of("openapi-create-deployment.json")
}

fn schema_of(file: &str) -> Value {
    let path = crate::data_dir().join("github").join(file);
    let doc: Value = serde_json::from_str(
        &std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display())),
    )
    .unwrap();
    doc["operation"]["requestBody"]["content"]["application/json"]["schema"].clone()
}

/// Checks a body against the (flat) request schema of create-deployment-status.
pub fn check_body(schema: &Value, body: &Value) -> Vec<String> {
    let mut errors = Vec::new();
    let Some(obj) = body.as_object() else {
        return vec![format!("body is not an object: {body}")];
    };
    for req in schema["required"].as_array().into_iter().flatten() {
        if !obj.contains_key(req.as_str().unwrap()) {
            errors.push(format!("missing required {req}"));
        }
    }
    for (k, v) in obj {
        let Some(prop) = schema["properties"].get(k) else {
            errors.push(format!("property {k:?} is not in the schema"));
            continue;
        };
        let ok = match prop["oneOf"].as_array() {
            Some(any) => any.iter().any(|p| is_type(p, v)),
            None => is_type(prop, v),
        };
        if !ok {
            errors.push(format!("{k} = {v} is not as the schema says: {prop}"));
        }
        if let Some(allowed) = prop["enum"].as_array()
            && !allowed.contains(v)
        {
            errors.push(format!("{k} = {v} is not one of {allowed:?}"));
        }
    }
    if let Some(d) = obj.get("description").and_then(Value::as_str)
        && d.chars().count() > 140
    {
        errors.push(format!("description longer than 140 characters: {d:?}"));
    }
    errors
}

/// Whether `v` has the (flat) type `prop` names.
fn is_type(prop: &Value, v: &Value) -> bool {
    match prop["type"].as_str() {
        Some("string") => v.is_string(),
        Some("boolean") => v.is_boolean(),
        Some("object") => v.is_object(),
        Some("array") => v
            .as_array()
            .is_some_and(|items| items.iter().all(|i| is_type(&prop["items"], i))),
        other => panic!("schema type {other:?} not handled"),
    }
}
