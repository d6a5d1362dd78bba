//! The served OpenAPI spec: structurally valid OpenAPI 3, in step with the router (every route
//! in the route table is in the spec and nothing else), and snapshots of it and of the docs page.

use std::collections::BTreeSet;

use serde_json::Value;

use crate::support::app::TestApp;

async fn served(path: &str) -> (String, String) {
    let t = TestApp::start(&["http://127.0.0.1:9".parse().unwrap()], "").await;
    let resp = reqwest::get(format!("http://{}/api/v1{path}", t.addr))
        .await
        .unwrap();
    assert_eq!(resp.status(), 200, "served without a token");
    let ct = resp.headers()["content-type"].to_str().unwrap().to_string();
    let body = resp.text().await.unwrap();
    t.stop().await;
    (ct, body)
}

/// Resolves a local `$ref` (`#/components/schemas/X`).
fn resolve<'a>(spec: &'a Value, reference: &str) -> Option<&'a Value> {
    let pointer = reference.strip_prefix('#')?;
    spec.pointer(pointer)
}

fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == "$ref" {
                    out.push(x.as_str().unwrap_or("").to_string());
                } else {
                    refs(x, out);
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

const METHODS: [&str; 8] = [
    "get", "put", "post", "delete", "options", "head", "patch", "trace",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_spec_is_valid_openapi_3_and_matches_the_router() {
    let (ct, text) = served("/openapi.json").await;
    assert!(ct.starts_with("application/json"));
    let spec: Value = serde_json::from_str(&text).unwrap();
    assert!(
        spec["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        spec["openapi"]
    );
    assert!(spec["info"]["title"].is_string() && spec["info"]["version"].is_string());
    assert!(spec["paths"].is_object());

    // Every $ref resolves.
    let mut all = Vec::new();
    refs(&spec, &mut all);
    assert!(!all.is_empty());
    for r in &all {
        assert!(resolve(&spec, r).is_some(), "dangling $ref {r}");
    }

    // Every operation has responses, a 2xx among them, an error body for its errors, and
    // its path parameters declared.
    let mut in_spec = BTreeSet::new();
    let mut operation_ids = BTreeSet::new();
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            assert!(METHODS.contains(&method.as_str()), "{method} {path}");
            in_spec.insert((method.clone(), path.clone()));
            let responses = op["responses"]
                .as_object()
                .unwrap_or_else(|| panic!("{method} {path}: no responses"));
            assert!(!responses.is_empty(), "{method} {path}");
            assert!(
                responses.keys().any(|s| s.starts_with('2')),
                "{method} {path}: no success"
            );
            for (status, r) in responses {
                assert!(r["description"].is_string(), "{method} {path} {status}");
                if status.starts_with('4') {
                    assert_eq!(
                        r["content"]["application/json"]["schema"]["$ref"],
                        "#/components/schemas/ErrorBody",
                        "{method} {path} {status}"
                    );
                }
            }
            let public = op["security"] == serde_json::json!([{}]);
            if !public {
                assert!(
                    responses.contains_key("401"),
                    "{method} {path}: 401 undocumented"
                );
            }
            for segment in path.split('/').filter(|s| s.starts_with('{')) {
                let name = segment.trim_matches(|c| c == '{' || c == '}');
                assert!(
                    op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == name && p["in"] == "path" && p["required"] == true),
                    "{method} {path}: path parameter {name} undeclared"
                );
            }
            if method == "post" {
                assert!(
                    op["parameters"]
                        .as_array()
                        .into_iter()
                        .flatten()
                        .any(|p| p["name"] == "Idempotency-Key" && p["in"] == "header"),
                    "{method} {path}: Idempotency-Key undocumented"
                );
                assert!(
                    responses["409"]["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("idempotency_conflict")),
                    "{method} {path}: the idempotency conflict undocumented"
                );
            }
            if let Some(id) = op["operationId"].as_str() {
                assert!(
                    operation_ids.insert(id.to_string()),
                    "duplicate operationId {id}"
                );
            }
        }
    }
    assert!(spec["components"]["securitySchemes"]["admin_token"]["scheme"] == "bearer");

    // The router's table and the spec list the same operations.
    let routed: BTreeSet<(String, String)> = qwenedit::web::api_routes().into_iter().collect();
    let missing: Vec<_> = routed.difference(&in_spec).collect();
    let extra: Vec<_> = in_spec.difference(&routed).collect();
    assert!(
        missing.is_empty(),
        "routes missing from the spec: {missing:?}"
    );
    assert!(
        extra.is_empty(),
        "spec operations without a route: {extra:?}"
    );
}

#[test]
fn error_answers_in_the_spec_name_documented_codes_only() {
    let codes: Vec<&str> = qwenedit::web::ERROR_CODES.iter().map(|c| c.0).collect();
    let unique: BTreeSet<_> = codes.iter().collect();
    assert_eq!(unique.len(), codes.len());
    let spec: Value = serde_json::from_str(&qwenedit::web::api_spec_json()).unwrap();
    let mut named = 0;
    for (path, item) in spec["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            for (status, r) in op["responses"].as_object().unwrap() {
                if !status.starts_with('4') && !status.starts_with('5') {
                    continue;
                }
                let d = r["description"].as_str().unwrap();
                // The first `quoted` word of an error answer is its code.
                let code = d.split('`').nth(1).unwrap_or("");
                let documented = qwenedit::web::ERROR_CODES
                    .iter()
                    .any(|(c, s, _)| *c == code && s.to_string() == *status);
                assert!(documented, "{method} {path} {status}: {d:?}");
                named += 1;
            }
        }
    }
    assert!(named > 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn spec_snapshot() {
    let (_, text) = served("/openapi.json").await;
    let mut spec: Value = serde_json::from_str(&text).unwrap();
    spec["info"]["version"] = Value::from("[VERSION]");
    insta::assert_json_snapshot!("openapi_spec", spec);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn docs_page_lists_every_operation_and_error_code() {
    let (ct, html) = served("/docs").await;
    assert!(ct.starts_with("text/html"));
    assert!(!html.contains("<script"), "no scripts");
    assert!(
        !html.contains("http://") && !html.contains("https://"),
        "nothing fetched"
    );
    for (method, path) in qwenedit::web::api_routes() {
        assert!(
            html.contains(&format!(
                "{}</span> <code>/api/v1{}</code>",
                method.to_uppercase(),
                path
            )),
            "{method} {path} is not on the page"
        );
    }
    for (code, _, _) in qwenedit::web::ERROR_CODES {
        assert!(html.contains(&format!("<code>{code}</code>")), "{code}");
    }
    let html = html.replace(env!("CARGO_PKG_VERSION"), "[VERSION]");
    insta::assert_snapshot!("docs_page", html);
}
