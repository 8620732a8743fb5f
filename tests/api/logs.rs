//! `--log-format json`: one JSON object per line, a line per request with
//! its ids, operation and outcome, and no secrets in any line.

use serde_json::{Value, json};

use crate::helpers::Binary;

/// A request's JSON log line carries its request id, the caller's trace id, operation, kind, outcome and duration; no line holds the password, the token or the document's text.
#[tokio::test]
async fn json_logs_name_each_request_and_hold_no_secrets() {
    let dir = tempfile::tempdir().expect("temp dir");
    let log = dir.path().join("out.log");
    let server = Binary::start_logging(&[("BLOGQL_LOG_FORMAT", "json"), ("RUST_LOG", "info")], &log).await;
    let client = reqwest::Client::new();
    let password = "hunter2-but-longer";
    let sign_up = client
        .post(server.url("/graphql"))
        .json(&json!({
            "query": "mutation SignUp($p: String!) { signUp(input: {name: \"ann\", email: \"ann@example.com\", password: $p}) { token } }",
            "variables": { "p": password },
        }))
        .send()
        .await
        .expect("sign up");
    let body: Value = sign_up.json().await.expect("json");
    let token = body.pointer("/data/signUp/token").and_then(Value::as_str).expect("token").to_owned();
    let traceparent = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";
    let query = client
        .post(server.url("/graphql"))
        .bearer_auth(&token)
        .header("traceparent", traceparent)
        .header("x-request-id", "req-42")
        .json(&json!({ "query": "query Mine { viewer { name } }" }))
        .send()
        .await
        .expect("query");
    assert_eq!(query.headers().get("x-request-id").and_then(|v| v.to_str().ok()), Some("req-42"));
    assert_eq!(query.status(), 200);

    // The request line is written after the answer; wait for both lines.
    let started = std::time::Instant::now();
    let lines = loop {
        let text = std::fs::read_to_string(&log).expect("log");
        let requests = text.lines().filter(|l| l.contains("\"blogql::request\"")).count();
        if requests >= 2 || started.elapsed() > std::time::Duration::from_secs(10) {
            break text;
        }
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    };
    let parsed: Vec<Value> =
        lines.lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}"))).collect();
    for line in &parsed {
        for field in ["timestamp", "level", "target", "message"] {
            assert!(line.get(field).is_some(), "{field} missing from {line}");
        }
    }
    let requests: Vec<&Value> = parsed.iter().filter(|l| l["target"] == "blogql::request").collect();
    assert_eq!(requests.len(), 2, "one line per request: {requests:?}");
    assert_eq!(requests[0]["operation"], "SignUp");
    assert_eq!(requests[0]["kind"], "mutation");
    let mine = requests[1];
    assert_eq!(mine["operation"], "Mine");
    assert_eq!(mine["kind"], "query");
    assert_eq!(mine["outcome"], "ok");
    assert_eq!(mine["status"], 200);
    assert_eq!(mine["request_id"], "req-42");
    assert_eq!(mine["trace_id"], "4bf92f3577b34da6a3ce929d0e0e4736");
    assert!(mine["duration_ms"].as_f64().is_some_and(|ms| ms > 0.0));
    let first_id = requests[0]["request_id"].as_str().expect("request id");
    assert_eq!(first_id.len(), 16, "a request id of its own when the caller sends none");
    assert_ne!(requests[0]["trace_id"], mine["trace_id"], "a request without traceparent starts a trace");
    for secret in [password, token.as_str(), "signUp(input"] {
        assert!(!lines.contains(secret), "a log line holds {secret:?}");
    }
}
