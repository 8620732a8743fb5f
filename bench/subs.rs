//! The subscription benchmark's client (run by `bench/subs.sh`, which pins
//! the server to core 0 and this to core 1).
//!
//! Against a running blogql at `BASE` (`http://127.0.0.1:port`), with the
//! server's pid in `PID` for its memory:
//! 1. **Memory.** 1,000 idle sockets (initialised, nothing subscribed), then
//!    10 idle subscriptions on each (10,000): the server's RSS before and
//!    after each step, per socket and per subscription.
//! 2. **Delivery latency.** 1, 100 and 1,000 subscribers, one socket each,
//!    on one post, `commentAdded { id body author { name } }`. Comments are
//!    written one at a time over HTTP; each delivery's latency is from just
//!    before the mutation was sent (so it includes the write itself) to
//!    its arrival. p50 and p99 over every delivery, and the p99 over
//!    comments of the slowest subscriber's latency.
//! 3. **The write mix with subscribers.** wrk's write mix (`bench/graphql.lua`
//!    with ACCOUNTS), 32 connections, without subscribers and with 1,000
//!    attached to the posts it writes to (each socket reads everything).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;

type Socket = tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

const COMMENT_ADDED: &str = "subscription($p: ID!) { commentAdded(postId: $p) { id body author { name } } }";

struct Api {
    base: String,
    http: reqwest::Client,
}

impl Api {
    async fn call(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req =
            self.http.post(format!("{}/graphql", self.base)).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let body: Value = req.send().await.expect("request").json().await.expect("json");
        assert!(body.get("errors").is_none(), "{query}: {body}");
        body["data"].clone()
    }

    async fn sign_up(&self, n: usize) -> String {
        let input = json!({ "name": format!("Bench{n}"), "email": format!("bench{n}@example.com"), "password": "correct horse" });
        let data =
            self.call(None, "mutation($i: SignUpInput!) { signUp(input: $i) { token } }", json!({ "i": input })).await;
        data["signUp"]["token"].as_str().expect("token").to_owned()
    }

    async fn create_post(&self, token: &str, title: String) -> String {
        let input = json!({ "title": title, "body": "a post to watch" });
        let q = "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }";
        self.call(Some(token), q, json!({ "i": input })).await["createPost"]["id"].as_str().expect("id").to_owned()
    }

    async fn comment(&self, token: &str, post: &str, body: &str) {
        let q = "mutation($i: CreateCommentInput!) { createComment(input: $i) { id } }";
        self.call(Some(token), q, json!({ "i": { "postId": post, "body": body } })).await;
    }

    /// The server's resident memory, in KiB.
    fn rss_kib(pid: &str) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
        let line = status.lines().find(|l| l.starts_with("VmRSS:")).expect("VmRSS");
        line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).expect("a number")
    }
}

/// Opens a graphql-transport-ws socket and waits for its ack.
async fn open(base: &str) -> Socket {
    let mut request = format!("{}/graphql", base.replacen("http", "ws", 1)).into_client_request().expect("request");
    request.headers_mut().insert("Sec-WebSocket-Protocol", HeaderValue::from_static("graphql-transport-ws"));
    let (mut socket, _) = tokio_tungstenite::connect_async(request).await.expect("upgrade");
    socket.send(Message::text(json!({ "type": "connection_init" }).to_string())).await.expect("init");
    loop {
        if let Some(Ok(Message::Text(text))) = socket.next().await
            && text.contains("connection_ack")
        {
            return socket;
        }
    }
}

async fn subscribe(socket: &mut Socket, id: usize, post: &str) {
    subscribe_with(socket, id, COMMENT_ADDED, post).await;
}

async fn subscribe_with(socket: &mut Socket, id: usize, query: &str, post: &str) {
    let message =
        json!({ "id": id.to_string(), "type": "subscribe", "payload": { "query": query, "variables": { "p": post } } });
    socket.send(Message::text(message.to_string())).await.expect("subscribe");
}

/// Reads a socket until it closes: each `next` reported with its arrival
/// time and body; pings answered.
fn reader(mut socket: Socket, arrivals: mpsc::UnboundedSender<(Instant, String)>, received: Arc<AtomicUsize>) {
    tokio::spawn(async move {
        while let Some(Ok(message)) = socket.next().await {
            let Message::Text(text) = message else { continue };
            let at = Instant::now();
            let value: Value = serde_json::from_str(&text).expect("json");
            match value["type"].as_str() {
                Some("next") => {
                    received.fetch_add(1, Ordering::Relaxed);
                    let body = value["payload"]["data"]["commentAdded"]["body"].as_str().unwrap_or_default().to_owned();
                    let _ = arrivals.send((at, body));
                }
                Some("error") => eprintln!("a subscription was refused: {}", value["payload"]),
                Some("ping") => {
                    let _ = socket.send(Message::text(json!({ "type": "pong" }).to_string())).await;
                }
                _ => {}
            }
        }
    });
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn memory(api: &Api, pid: &str, token: &str) {
    let posts: Vec<String> =
        futures::future::join_all((0..10).map(|i| api.create_post(token, format!("idle {i}")))).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let before = Api::rss_kib(pid);
    let mut sockets = Vec::new();
    for chunk in 0..10 {
        let opened = futures::future::join_all((0..100).map(|_| open(&api.base))).await;
        sockets.extend(opened);
        let _ = chunk;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_sockets = Api::rss_kib(pid);
    // Each subscription its own document (a distinct operation name), so
    // none shares a run with another: the worst case for memory.
    for (i, socket) in sockets.iter_mut().enumerate() {
        for k in 0..10 {
            let query = COMMENT_ADDED.replacen("subscription(", &format!("subscription S{i}x{k}("), 1);
            subscribe_with(socket, k, &query, &posts[(i + k) % posts.len()]).await;
        }
    }
    // Wait until the server runs all 10,000 (its gauge says so).
    let started = Instant::now();
    loop {
        let text =
            api.http.get(format!("{}/metrics", api.base)).send().await.expect("metrics").text().await.expect("text");
        let running: i64 = text
            .lines()
            .find_map(|l| l.strip_prefix("blogql_subscriptions{field=\"commentAdded\"} "))
            .and_then(|n| n.trim().parse().ok())
            .unwrap_or(0);
        if running >= 10_000 || started.elapsed() > Duration::from_secs(60) {
            println!("  running subscriptions: {running}");
            break;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let with_subs = Api::rss_kib(pid);
    println!(
        "memory: RSS {} MiB idle; {} MiB with 1,000 idle sockets ({:.1} KiB per socket); \
         {} MiB with 10,000 idle subscriptions on them, none sharing a run ({:.1} KiB per subscription)",
        before / 1024,
        with_sockets / 1024,
        (with_sockets.saturating_sub(before)) as f64 / 1000.0,
        with_subs / 1024,
        (with_subs.saturating_sub(with_sockets)) as f64 / 10_000.0,
    );
    drop(sockets);
    // Let the server see the sockets close before the next phase.
    tokio::time::sleep(Duration::from_secs(2)).await;
}

async fn latency(api: &Api, token: &str, subscribers: usize, comments: usize) {
    let post = api.create_post(token, format!("watched by {subscribers}")).await;
    let (tx, mut arrivals) = mpsc::unbounded_channel();
    let received = Arc::new(AtomicUsize::new(0));
    let mut opened = 0;
    while opened < subscribers {
        let batch = (subscribers - opened).min(100);
        let sockets = futures::future::join_all((0..batch).map(|_| open(&api.base))).await;
        for mut socket in sockets {
            subscribe(&mut socket, 1, &post).await;
            reader(socket, tx.clone(), Arc::clone(&received));
        }
        opened += batch;
    }
    // A warm-up comment every subscriber must get: then all are listening.
    loop {
        api.comment(token, &post, "warm-up").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let got = received.swap(0, Ordering::Relaxed);
        while arrivals.try_recv().is_ok() {}
        if got >= subscribers {
            break;
        }
    }
    let mut all = Vec::with_capacity(subscribers * comments);
    let mut slowest = Vec::with_capacity(comments);
    for n in 0..comments {
        let body = format!("c{n}");
        let sent = Instant::now();
        api.comment(token, &post, &body).await;
        let mut worst: f64 = 0.0;
        let mut got = 0;
        while got < subscribers {
            let (at, seen) =
                tokio::time::timeout(Duration::from_secs(10), arrivals.recv()).await.expect("delivery").expect("open");
            if seen != body {
                continue;
            }
            let ms = at.duration_since(sent).as_secs_f64() * 1000.0;
            worst = worst.max(ms);
            all.push(ms);
            got += 1;
        }
        slowest.push(worst);
    }
    all.sort_by(f64::total_cmp);
    slowest.sort_by(f64::total_cmp);
    println!(
        "| {subscribers} | {comments} | {:.2} ms | {:.2} ms | {:.2} ms |",
        percentile(&all, 0.5),
        percentile(&all, 0.99),
        percentile(&slowest, 0.99)
    );
}

/// Runs wrk's write mix for `duration` on core 1; returns its summary line.
fn write_mix(base: &str, accounts: &str, duration: &str) -> String {
    let out = std::process::Command::new("taskset")
        .args(["-c", "1", "wrk", "-t1", "-c32", &format!("-d{duration}"), "--latency", "-s", "bench/graphql.lua"])
        .arg(format!("{base}/graphql"))
        .env("ACCOUNTS", accounts)
        .output()
        .expect("wrk");
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text.lines().find(|l| l.starts_with("Requests/sec:")).unwrap_or("Requests/sec: ?").to_owned();
    let p50 = text.lines().find(|l| l.trim_start().starts_with("50%")).unwrap_or("50% ?").trim().to_owned();
    let p99 = text.lines().find(|l| l.trim_start().starts_with("99%")).unwrap_or("99% ?").trim().to_owned();
    format!("{rps}, p50 {}, p99 {}", p50.trim_start_matches("50%").trim(), p99.trim_start_matches("99%").trim())
}

async fn with_and_without(api: &Api, duration: &str) {
    let mut accounts = String::new();
    let mut all_posts = Vec::new();
    for n in 0..20 {
        let token = api.sign_up(1000 + n).await;
        let posts: Vec<String> =
            futures::future::join_all((0..5).map(|i| api.create_post(&token, format!("mix {i}")))).await;
        accounts.push_str(&format!("{token} {}\n", posts.join(",")));
        all_posts.extend(posts);
    }
    let file = std::env::temp_dir().join(format!("blogql-subs-accounts-{}", std::process::id()));
    std::fs::write(&file, accounts).expect("accounts file");
    let file = file.to_string_lossy().into_owned();
    // wrk runs on a blocking thread, so the readers keep reading meanwhile.
    let run = |base: String, file: String, duration: String| {
        tokio::task::spawn_blocking(move || write_mix(&base, &file, &duration))
    };
    let without = run(api.base.clone(), file.clone(), duration.to_owned()).await.expect("wrk");
    let (tx, mut arrivals) = mpsc::unbounded_channel();
    let received = Arc::new(AtomicUsize::new(0));
    for chunk in 0..10 {
        let sockets = futures::future::join_all((0..100).map(|_| open(&api.base))).await;
        for (i, mut socket) in sockets.into_iter().enumerate() {
            subscribe(&mut socket, 1, &all_posts[(chunk * 100 + i) % all_posts.len()]).await;
            reader(socket, tx.clone(), Arc::clone(&received));
        }
    }
    tokio::spawn(async move { while arrivals.recv().await.is_some() {} });
    tokio::time::sleep(Duration::from_secs(1)).await;
    let with = run(api.base.clone(), file.clone(), duration.to_owned()).await.expect("wrk");
    tokio::time::sleep(Duration::from_secs(1)).await;
    println!("write mix, 32 connections, no subscribers: {without}");
    println!(
        "write mix, 32 connections, 1,000 subscribers on its 100 posts: {with} ({} events delivered to them)",
        received.load(Ordering::Relaxed)
    );
    let _ = std::fs::remove_file(&file);
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let base = std::env::var("BASE").expect("BASE=http://127.0.0.1:port");
    let pid = std::env::var("PID").expect("PID of the server");
    let comments: usize = std::env::var("COMMENTS").ok().and_then(|n| n.parse().ok()).unwrap_or(50);
    let duration = std::env::var("DURATION").unwrap_or_else(|_| "5s".into());
    let api = Api { base, http: reqwest::Client::new() };
    let token = api.sign_up(0).await;
    if std::env::var("ONLY_MIX").is_err() {
        memory(&api, &pid, &token).await;
    }
    println!();
    println!(
        "| subscribers on one post | comments | delivery p50 | delivery p99 | slowest subscriber, p99 over comments |"
    );
    println!("| --- | --- | --- | --- | --- |");
    for subscribers in [1, 100, 1000].into_iter().filter(|_| std::env::var("ONLY_MIX").is_err()) {
        latency(&api, &token, subscribers, comments).await;
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
    println!();
    with_and_without(&api, &duration).await;
}
