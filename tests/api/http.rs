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

/// /healthz and /readyz answer 200, and / serves GraphiQL (its start-up script points it at /graphql).
#[tokio::test]
async fn probes_and_graphiql() {
    let app = TestApp::spawn().await;
    assert_eq!(app.client.get(app.url("/healthz")).send().await.unwrap().status(), 200);
    assert_eq!(app.client.get(app.url("/readyz")).send().await.unwrap().status(), 200);
    let page = app.client.get(app.url("/")).send().await.unwrap();
    assert_eq!(page.status(), 200);
    let html = page.text().await.unwrap();
    assert!(html.to_lowercase().contains("graphiql") && html.contains("/graphiql/init.js"), "{html}");
}

/// GraphiQL loads only pinned versions with SRI hashes, under a CSP that forbids
/// framing and inline scripts and connects only to its own origin, says so with
/// X-Frame-Options too, and runs subscriptions over a WebSocket to `/graphql`.
#[tokio::test]
async fn graphiql_is_pinned_and_locked_down() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url("/")).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    assert_eq!(resp.headers()["x-frame-options"], "DENY");
    let html = resp.text().await.unwrap();
    assert!(csp.contains("frame-ancestors 'none'") && csp.contains("script-src 'self' https://unpkg.com;"), "{csp}");
    assert_eq!(html.matches("integrity=\"sha384-").count(), 4, "{html}");
    for pinned in
        ["react@18.3.1/", "react-dom@18.3.1/", "graphiql@4.1.2/graphiql.min.js", "graphiql@4.1.2/graphiql.min.css"]
    {
        assert!(html.contains(pinned), "{pinned} missing from {html}");
    }
    assert!(!html.contains("<script>"), "no inline script: the CSP would block it");
    assert!(csp.contains("connect-src 'self';"), "only this origin (and its WebSocket): {csp}");
    let init = app.client.get(app.url("/graphiql/init.js")).send().await.unwrap();
    assert_eq!(init.status(), 200);
    let init = init.text().await.unwrap();
    assert!(init.contains("/graphql") && init.contains("subscriptionUrl"), "{init}");
    assert!(
        init.contains(r#"url.protocol === "https:" ? "wss:" : "ws:""#),
        "the socket follows the page's scheme: {init}"
    );
}

/// With an assets directory, the page and its CSP use only this server, the pinned
/// files are served from the directory, and nothing else in it is reachable.
#[tokio::test]
async fn graphiql_offline_assets() {
    let assets = tempfile::tempdir().unwrap();
    std::fs::write(assets.path().join("graphiql.min.js"), "/* graphiql */").unwrap();
    std::fs::write(assets.path().join("secret.txt"), "not for you").unwrap();
    let dir = assets.path().to_path_buf();
    let app = TestApp::spawn_with(move |s| s.http.graphiql_assets_dir = Some(dir)).await;
    let resp = app.client.get(app.url("/")).send().await.unwrap();
    let csp = resp.headers()["content-security-policy"].to_str().unwrap().to_owned();
    let html = resp.text().await.unwrap();
    assert!(!csp.contains("unpkg") && !html.contains("unpkg"), "{csp} {html}");
    assert!(html.contains("src=\"/graphiql/graphiql.min.js\""), "{html}");
    let js = app.client.get(app.url("/graphiql/graphiql.min.js")).send().await.unwrap();
    assert_eq!(js.status(), 200);
    assert_eq!(js.headers()["content-type"], "text/javascript");
    assert_eq!(js.text().await.unwrap(), "/* graphiql */");
    for other in ["/graphiql/secret.txt", "/graphiql/..%2Fsecret.txt", "/graphiql/react.production.min.js"] {
        assert_eq!(app.client.get(app.url(other)).send().await.unwrap().status(), 404, "{other}");
    }
}
