//! Abuse of the account mutations: enumeration by timing or by sign-up,
//! lock-outs, and memory under a burst of sign-ups.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use blogql::settings::AuthSettings;
use serde_json::{Value, json};

use crate::helpers::{Binary, TestApp, data, expect_error, str_at};

const LOG_IN: &str = "mutation($e: String!, $p: String!) { logIn(input: {email: $e, password: $p}) { token } }";
const SIGN_UP: &str = "mutation($n: String!, $e: String!) { signUp(input: {name: $n, email: $e, password: \"correct horse\"}) { token } }";

fn median(mut samples: Vec<Duration>) -> Duration {
    samples.sort();
    samples[samples.len() / 2]
}

/// With the default argon2 costs, a log-in for an unknown email takes as long as a
/// wrong password for a real one (medians within 2×), so timing reveals no accounts.
#[tokio::test]
async fn log_in_timing_does_not_reveal_accounts() {
    let defaults = AuthSettings::default();
    let app = TestApp::spawn_with(|s| {
        s.auth.argon2_memory_kib = defaults.argon2_memory_kib;
        s.auth.argon2_iterations = defaults.argon2_iterations;
        s.auth.logins_per_ip_per_minute = 10_000;
        s.auth.login_failures_before_backoff = 10_000;
    })
    .await;
    app.sign_up("Ann").await;
    let (mut unknown, mut known) = (Vec::new(), Vec::new());
    for i in 0..15 {
        let started = Instant::now();
        let resp = app.graphql(LOG_IN, json!({ "e": format!("nobody{i}@example.com"), "p": "wrong password" })).await;
        unknown.push(started.elapsed());
        expect_error(&resp, "UNAUTHENTICATED");
        let started = Instant::now();
        let resp = app.graphql(LOG_IN, json!({ "e": "ann@example.com", "p": "wrong password" })).await;
        known.push(started.elapsed());
        expect_error(&resp, "UNAUTHENTICATED");
    }
    let (unknown, known) = (median(unknown), median(known));
    let ratio = unknown.as_secs_f64().max(known.as_secs_f64()) / unknown.as_secs_f64().min(known.as_secs_f64());
    println!("median log-in: unknown email {unknown:?}, known email with a wrong password {known:?}");
    assert!(ratio < 2.0, "unknown {unknown:?} vs known {known:?}");
}

/// Sign-ups are limited per client address (the default, 20 a minute), so a taken
/// email's CONFLICT cannot be used to probe for accounts at speed.
#[tokio::test]
async fn sign_up_is_rate_limited_per_address() {
    let limit = AuthSettings::default().signups_per_ip_per_minute;
    let app = TestApp::spawn_with(|s| s.auth.signups_per_ip_per_minute = limit).await;
    for i in 0..limit {
        let email = if i % 2 == 0 { "taken@example.com".to_owned() } else { format!("u{i}@example.com") };
        let resp = app.graphql(SIGN_UP, json!({ "n": "U", "e": email })).await;
        if resp.get("errors").is_some() {
            expect_error(&resp, "CONFLICT");
        }
    }
    let limited = app.graphql(SIGN_UP, json!({ "n": "U", "e": "fresh@example.com" })).await;
    expect_error(&limited, "RATE_LIMITED");
    assert!(limited.pointer("/errors/0/extensions/retryAfterSeconds").and_then(Value::as_u64).is_some());
}

/// Failing from one address makes that address wait, but the owner's correct
/// password from another address still gets in.
#[tokio::test]
async fn failures_elsewhere_do_not_lock_the_owner_out() {
    let app = TestApp::spawn().await;
    app.sign_up("Ann").await;
    let attacker = reqwest::Client::builder().local_address(IpAddr::from([127, 0, 0, 2])).build().unwrap();
    let attempt = |password: &'static str| {
        attacker
            .post(app.url("/graphql"))
            .json(&json!({ "query": LOG_IN, "variables": { "e": "ann@example.com", "p": password } }))
            .send()
    };
    let threshold = AuthSettings::default().login_failures_before_backoff;
    for _ in 0..threshold {
        let resp: Value = attempt("wrong password").await.unwrap().json().await.unwrap();
        expect_error(&resp, "UNAUTHENTICATED");
    }
    let resp: Value = attempt("correct horse").await.unwrap().json().await.unwrap();
    expect_error(&resp, "RATE_LIMITED");
    // The owner, from 127.0.0.1, is not affected.
    let owner = app.graphql(LOG_IN, json!({ "e": "ann@example.com", "p": "correct horse" })).await;
    assert!(!str_at(data(&owner), "/logIn/token").is_empty());
}

/// 100 concurrent sign-ups with the default argon2 costs (19 MiB each) keep the
/// real server's peak RSS under 256 MiB; every answer is data or RATE_LIMITED.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sign_ups_keep_memory_bounded() {
    let server = Binary::start(&[("BLOGQL_SIGNUPS_PER_IP_PER_MINUTE", "1000")]).await;
    let client = reqwest::Client::new();
    let url = server.url("/graphql");
    let requests = (0..100).map(|i| {
        let (client, url) = (client.clone(), url.clone());
        tokio::spawn(async move {
            let body = json!({ "query": SIGN_UP, "variables": { "n": "U", "e": format!("burst{i}@example.com") } });
            client.post(url).json(&body).send().await.unwrap().json::<Value>().await.unwrap()
        })
    });
    let (mut created, mut limited) = (0, 0);
    for request in requests.collect::<Vec<_>>() {
        let resp = request.await.unwrap();
        match resp.pointer("/errors/0/extensions/code").and_then(Value::as_str) {
            None => created += 1,
            Some("RATE_LIMITED") => limited += 1,
            Some(other) => panic!("unexpected {other}: {resp}"),
        }
    }
    let peak_mib = server.peak_rss_mib();
    println!("100 concurrent sign-ups: {created} created, {limited} RATE_LIMITED, peak RSS {peak_mib} MiB");
    assert!(created > 0);
    assert!(peak_mib < 256, "peak RSS {peak_mib} MiB");
}
