//! The test harness: the real application on `127.0.0.1:0` over a fresh store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use blogql::auth::HashCost;
use blogql::store::embedded::EmbeddedStore;
use blogql::store::{DynStore, Snapshot};
use blogql::{AppState, Config};
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The JWT secret tests sign with, so they can forge expired or tampered tokens.
pub const TEST_SECRET: &str = "blogql-test-secret-0123456789abcdef";

/// A running blogql server with its own data directory.
pub struct TestApp {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// HTTP client for the server.
    pub client: reqwest::Client,
    /// The store behind the server, for snapshots, counters and fault injection.
    pub store: DynStore,
    dir: Option<TempDir>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Settings every test server shares: cheap password hashing, known secret.
pub fn test_config(dir: &Path, jwt_secret: Option<&str>) -> Config {
    Config {
        data_dir: dir.to_path_buf(),
        jwt_secret: jwt_secret.map(str::to_owned),
        token_ttl: Duration::from_secs(3600),
        hash_cost: HashCost { memory_kib: 64, iterations: 1 },
    }
}

impl TestApp {
    /// A server over a new, empty temp data directory.
    pub async fn spawn() -> TestApp {
        let dir = tempfile::tempdir().expect("temp dir");
        TestApp::spawn_in(dir, Some(TEST_SECRET)).await
    }

    /// A server over an existing data directory (used to restart on the same data).
    pub async fn spawn_in(dir: TempDir, jwt_secret: Option<&str>) -> TestApp {
        let config = test_config(dir.path(), jwt_secret);
        let store: DynStore = Arc::new(EmbeddedStore::open(dir.path()).expect("open store"));
        let state = AppState::new(Arc::clone(&store), &config).expect("app state");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let server = tokio::spawn(async move {
            blogql::serve(listener, state, async {
                let _ = rx.await;
            })
            .await
            .expect("server");
        });
        TestApp {
            addr,
            client: reqwest::Client::new(),
            store,
            dir: Some(dir),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server gracefully, releases the store and hands back the data directory.
    pub async fn stop(mut self) -> TempDir {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
        self.dir.take().expect("data dir")
    }

    /// The URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a GraphQL request without a token; returns the whole response body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.request(None, query, variables).await
    }

    /// Sends a GraphQL request with `Authorization: Bearer <token>`.
    pub async fn graphql_as(&self, token: &str, query: &str, variables: Value) -> Value {
        self.request(Some(token), query, variables).await
    }

    async fn request(&self, token: Option<&str>, query: &str, variables: Value) -> Value {
        let mut req = self.client.post(self.url("/graphql")).json(&json!({ "query": query, "variables": variables }));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        let resp = req.send().await.expect("request");
        assert_eq!(resp.status(), 200, "GraphQL POST answered {}", resp.status());
        resp.json().await.expect("json body")
    }

    /// Signs up `name` (email `<name>@example.com`) and returns `(token, id)`.
    pub async fn sign_up(&self, name: &str) -> (String, String) {
        let resp = self
            .graphql(
                "mutation($i: SignUpInput!) { signUp(input: $i) { token user { id } } }",
                json!({ "i": { "name": name, "email": format!("{}@example.com", name.to_lowercase()), "password": "correct horse" } }),
            )
            .await;
        let data = data(&resp);
        (str_at(data, "/signUp/token"), str_at(data, "/signUp/user/id"))
    }

    /// Creates a post as `token`; returns its id.
    pub async fn create_post(&self, token: &str, title: &str) -> String {
        let resp = self
            .graphql_as(
                token,
                "mutation($i: CreatePostInput!) { createPost(input: $i) { id } }",
                json!({ "i": { "title": title, "body": format!("body of {title}") } }),
            )
            .await;
        str_at(data(&resp), "/createPost/id")
    }

    /// Comments on `post` as `token`; returns the comment id.
    pub async fn comment(&self, token: &str, post: &str, body: &str) -> String {
        let resp = self
            .graphql_as(
                token,
                "mutation($i: CreateCommentInput!) { createComment(input: $i) { id } }",
                json!({ "i": { "postId": post, "body": body } }),
            )
            .await;
        str_at(data(&resp), "/createComment/id")
    }

    /// Runs a mutation that must succeed and returns its `data`.
    pub async fn ok_as(&self, token: &str, query: &str, variables: Value) -> Value {
        let resp = self.graphql_as(token, query, variables).await;
        data(&resp).clone()
    }

    /// The whole store, read in one snapshot.
    pub async fn snapshot(&self) -> Snapshot {
        self.store.snapshot().await.expect("snapshot")
    }

    /// Asserts the integrity checker finds nothing wrong.
    pub async fn assert_consistent(&self) {
        let problems = blogql::check::violations(&self.snapshot().await);
        assert!(problems.is_empty(), "integrity violations: {problems:#?}");
    }
}

/// The `data` of a response that must have no errors.
pub fn data(resp: &Value) -> &Value {
    assert!(resp.get("errors").is_none(), "unexpected errors: {resp:#}");
    &resp["data"]
}

/// The string at a JSON pointer.
pub fn str_at(v: &Value, pointer: &str) -> String {
    v.pointer(pointer).and_then(Value::as_str).unwrap_or_else(|| panic!("no string at {pointer} in {v:#}")).to_owned()
}

/// The integer at a JSON pointer.
pub fn int_at(v: &Value, pointer: &str) -> i64 {
    v.pointer(pointer).and_then(Value::as_i64).unwrap_or_else(|| panic!("no integer at {pointer} in {v:#}"))
}

/// The `extensions.code` of the first error; panics if the response has no error.
pub fn error_code(resp: &Value) -> String {
    str_at(resp, "/errors/0/extensions/code")
}

/// Asserts the response failed with `code` and returns the first error's message.
pub fn expect_error(resp: &Value, code: &str) -> String {
    assert_eq!(error_code(resp), code, "wrong error in {resp:#}");
    str_at(resp, "/errors/0/message")
}
