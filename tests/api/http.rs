//! GraphQL over HTTP: methods, media types, probes and GraphiQL.

use serde_json::{Value, json};

use crate::helpers::{TestApp, error_code};

/// GET runs queries from the query string but refuses mutations with 405.
#[tokio::test]
async fn get_runs_queries_but_not_mutations() {
    let app = TestApp::spawn().await;
    let resp =
        app.client.get(app.url("/graphql")).query(&[("query", "{ users { edges { cursor } } }")]).send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body, json!({ "data": { "users": { "edges": [] } } }));

    let resp = app
        .client
        .get(app.url("/graphql"))
        .query(&[(
            "query",
            "mutation { signUp(input: {name: \"a\", email: \"a@b.io\", password: \"12345678\"}) { token } }",
        )])
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 405);
    assert_eq!(resp.headers()["allow"], "POST");
    assert!(app.snapshot().await.users.is_empty());
}

/// `application/graphql-response+json` is honoured, with 400 for requests that cannot execute.
#[tokio::test]
async fn graphql_response_media_type() {
    let app = TestApp::spawn().await;
    let send = |query: &'static str, accept: &'static str| {
        app.client.post(app.url("/graphql")).header("accept", accept).json(&json!({ "query": query })).send()
    };
    let ok = send("{ users { edges { cursor } } }", "application/graphql-response+json").await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.headers()["content-type"], "application/graphql-response+json");

    let syntax = send("{ users { ", "application/graphql-response+json").await.unwrap();
    assert_eq!(syntax.status(), 400);
    let plain = send("{ users { ", "application/json").await.unwrap();
    assert_eq!(plain.status(), 200);
    assert_eq!(plain.headers()["content-type"], "application/json");
    let body: Value = plain.json().await.unwrap();
    assert!(body["errors"][0]["message"].is_string());
}

/// Malformed bodies and wrong content types get GraphQL-shaped 4xx errors, and the server keeps answering.
#[tokio::test]
async fn malformed_requests_are_refused_cleanly() {
    let app = TestApp::spawn().await;
    let cases: [(&str, &str, u16); 4] = [
        ("application/json", "{not json", 400),
        ("application/json", "", 400),
        ("application/json", r#"{"query": 42}"#, 400),
        ("text/plain", r#"{"query": "{ users { edges { cursor } } }"}"#, 415),
    ];
    for (content_type, body, status) in cases {
        let resp =
            app.client.post(app.url("/graphql")).header("content-type", content_type).body(body).send().await.unwrap();
        assert_eq!(resp.status().as_u16(), status, "{content_type} {body:?}");
        let json: Value = resp.json().await.unwrap();
        assert!(!error_code(&json).is_empty());
    }
    let health = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// /healthz and /readyz answer 200, and / serves GraphiQL pointed at /graphql.
#[tokio::test]
async fn probes_and_graphiql() {
    let app = TestApp::spawn().await;
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql") && html.contains("/graphql"));
}
