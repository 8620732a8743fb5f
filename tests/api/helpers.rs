//! The test harness: the real application on `127.0.0.1:0` over a fresh store.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use blogql::AppState;
use blogql::settings::Settings;
use blogql::store::embedded::EmbeddedStore;
use blogql::store::mongo::{ConnectOptions, MongoStore};
use blogql::store::{Snapshot, Store};
use mongodb::event::EventHandler;
use mongodb::event::command::CommandEvent;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

/// The JWT secret tests sign with, so they can forge expired or tampered tokens.
pub const TEST_SECRET: &str = "blogql-test-secret-0123456789abcdef";

/// Routes the server's logs into the test's captured output, so a failing
/// test shows the internal error behind an `INTERNAL_SERVER_ERROR`.
fn init_tracing() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let filter = tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("blogql=warn"));
        let _ = tracing_subscriber::fmt().with_env_filter(filter).with_test_writer().try_init();
    });
}

/// The MongoDB deployment the suite runs against, if `MONGODB_URI` names one.
pub fn mongodb_uri() -> Option<String> {
    std::env::var("MONGODB_URI").ok().filter(|uri| !uri.trim().is_empty())
}

/// Where a test server keeps its data: a temp dir (embedded data, generated
/// JWT secret) and, on the MongoDB backend, a database of its own.
pub struct StoreHome {
    dir: TempDir,
    mongo_db: Option<String>,
}

impl StoreHome {
    /// A fresh, empty home on the backend the suite runs against.
    pub fn fresh() -> StoreHome {
        StoreHome {
            dir: tempfile::tempdir().expect("temp dir"),
            mongo_db: mongodb_uri().map(|_| format!("blogql_test_{}", bson::oid::ObjectId::new().to_hex())),
        }
    }

    /// A home on the embedded store in `dir`, whatever backend the suite
    /// runs against (tests of the embedded store's own behaviour).
    pub fn embedded_in(dir: TempDir) -> StoreHome {
        StoreHome { dir, mongo_db: None }
    }

    /// Another home on this one's MongoDB database, as a second process on
    /// the same deployment would have (MongoDB only: an embedded store's
    /// file belongs to one process).
    pub fn same_database(&self) -> StoreHome {
        assert!(self.mongo_db.is_some(), "two processes share a store only on MongoDB");
        StoreHome { dir: tempfile::tempdir().expect("temp dir"), mongo_db: self.mongo_db.clone() }
    }

    /// The temp directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// The environment that points the `blogql` binary at this home's store:
    /// its MongoDB database when the suite runs on MongoDB, else none (the
    /// caller passes `--data-dir`).
    pub fn binary_env(&self) -> Vec<(&'static str, String)> {
        match (mongodb_uri(), &self.mongo_db) {
            (Some(uri), Some(db)) => vec![("MONGODB_URI", uri), ("BLOGQL_MONGODB_DATABASE", db.clone())],
            _ => Vec::new(),
        }
    }

    /// Opens the store; on MongoDB, with a command log installed (tests only).
    pub async fn open(&self) -> (Store, Option<MongoHandle>) {
        match (mongodb_uri(), &self.mongo_db) {
            (Some(uri), Some(db)) => {
                let commands = Arc::new(CommandLog::default());
                let log = Arc::clone(&commands);
                let options = ConnectOptions {
                    database: Some(db.clone()),
                    command_observer: Some(EventHandler::callback(move |event: CommandEvent| {
                        // The outbox tail's polls (a `find` on `events` or
                        // `eventSequence` every 25 ms) run in the background,
                        // not for any request: left out, as the reaper's are
                        // by turning it off.
                        if let CommandEvent::Started(started) = event {
                            let polled =
                                started.command.get_str("find").is_ok_and(|c| c == "events" || c == "eventSequence");
                            if !polled {
                                log.record(&started.command_name);
                            }
                        }
                    })),
                };
                let store = MongoStore::connect(&uri, options).await.unwrap_or_else(|e| panic!("{}", e.chain()));
                let handle = MongoHandle { db: store.database().clone(), commands };
                (store.into(), Some(handle))
            }
            _ => (EmbeddedStore::open(self.dir.path()).expect("open store").into(), None),
        }
    }
}

/// Drops the test's MongoDB database, so a long run (or a developer's replica
/// set in tier 3) does not fill up with test data. Best effort: a failure is
/// printed, not raised, because the test's verdict is already decided.
impl Drop for StoreHome {
    fn drop(&mut self) {
        let (Some(uri), Some(db)) = (mongodb_uri(), self.mongo_db.take()) else { return };
        let dropped = std::thread::spawn(move || -> Result<(), String> {
            let runtime =
                tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| e.to_string())?;
            runtime.block_on(async {
                let mut options = mongodb::options::ClientOptions::parse(&uri).await.map_err(|e| e.to_string())?;
                options.server_selection_timeout = Some(Duration::from_secs(2));
                let client = mongodb::Client::with_options(options).map_err(|e| e.to_string())?;
                client.database(&db).drop().await.map_err(|e| e.to_string())
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            eprintln!("note: could not drop a test database: {dropped:?}");
        }
    }
}

/// The names of the commands the MongoDB driver sent, recorded by the
/// test's command observer (the server installs none).
#[derive(Debug, Default)]
pub struct CommandLog {
    names: std::sync::Mutex<Vec<String>>,
}

impl CommandLog {
    fn record(&self, name: &str) {
        self.names.lock().expect("command log").push(name.to_owned());
    }

    /// The names of the commands sent since the last call, oldest first.
    pub fn take_names(&self) -> Vec<String> {
        std::mem::take(&mut *self.names.lock().expect("command log"))
    }
}

/// What MongoDB tests reach past the app for: the database (failpoints, buildInfo) and the command log.
pub struct MongoHandle {
    /// The test's database.
    pub db: mongodb::Database,
    /// Every command the app's driver sent.
    pub commands: Arc<CommandLog>,
}

/// A running blogql server over its own store.
pub struct TestApp {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// HTTP client for the server.
    pub client: reqwest::Client,
    /// The store behind the server, for snapshots, round-trip counts and commands.
    pub store: Store,
    /// On MongoDB: the database and the driver's command log.
    pub mongo: Option<MongoHandle>,
    home: Option<StoreHome>,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<()>>,
}

/// Settings every test server shares: cheap password hashing, a known secret, default limits.
pub fn test_settings(dir: &Path, jwt_secret: Option<&str>) -> Settings {
    let mut settings = Settings::default();
    settings.store.data_dir = dir.to_path_buf();
    settings.auth.jwt_secret = jwt_secret.map(Into::into);
    settings.auth.token_ttl_secs = 3600;
    settings.auth.argon2_memory_kib = 64;
    settings.auth.argon2_iterations = 1;
    // Every test client is 127.0.0.1, and some tests create hundreds of accounts.
    settings.auth.signups_per_ip_per_minute = 100_000;
    // Race and pagination tests write thousands of documents a minute as few users.
    settings.auth.writes_per_user_per_minute = 1_000_000;
    settings.auth.write_bytes_per_user_per_minute = u32::MAX / 4;
    settings
}

impl TestApp {
    /// A server over a new, empty store.
    pub async fn spawn() -> TestApp {
        TestApp::spawn_in(StoreHome::fresh(), Some(TEST_SECRET)).await
    }

    /// A server over a new, empty store, with `tweak` applied to the test settings.
    pub async fn spawn_with(tweak: impl FnOnce(&mut Settings)) -> TestApp {
        TestApp::start(StoreHome::fresh(), Some(TEST_SECRET), tweak).await
    }

    /// A server over an existing store (used to restart on the same data).
    pub async fn spawn_in(home: StoreHome, jwt_secret: Option<&str>) -> TestApp {
        TestApp::start(home, jwt_secret, |_| {}).await
    }

    async fn start(home: StoreHome, jwt_secret: Option<&str>, tweak: impl FnOnce(&mut Settings)) -> TestApp {
        init_tracing();
        let mut settings = test_settings(home.path(), jwt_secret);
        tweak(&mut settings);
        let (store, mongo) = home.open().await;
        let state = AppState::new(store.clone(), settings).expect("app state");
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
            mongo,
            home: Some(home),
            shutdown: Some(tx),
            server: Some(server),
        }
    }

    /// Stops the server gracefully, releases the store and hands back its home.
    pub async fn stop(mut self) -> StoreHome {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server.await.expect("server task");
        }
        self.home.take().expect("store home")
    }

    /// The URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Sends a GraphQL request without a token; returns the whole response body.
    pub async fn graphql(&self, query: &str, variables: Value) -> Value {
        self.request(None, query, variables).await
    }

    /// Sends a GraphQL request over GET with these query parameters; returns the whole body.
    pub async fn graphql_get(&self, params: &[(&str, &str)]) -> Value {
        let resp = self.client.get(self.url("/graphql")).query(params).send().await.expect("request");
        resp.json().await.expect("json body")
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

    /// The value of the `/metrics` sample line that starts with `series`
    /// (its name, and labels if any, then a space).
    pub async fn metric(&self, series: &str) -> i64 {
        let text = self.client.get(self.url("/metrics")).send().await.expect("metrics").text().await.expect("text");
        text.lines()
            .find_map(|line| line.strip_prefix(series).and_then(|rest| rest.trim().parse().ok()))
            .unwrap_or_else(|| panic!("{series} missing from /metrics"))
    }

    /// Runs a mutation that must succeed and returns its `data`.
    pub async fn ok_as(&self, token: &str, query: &str, variables: Value) -> Value {
        let resp = self.graphql_as(token, query, variables).await;
        data(&resp).clone()
    }

    /// A second server on the app's MongoDB database, as another process
    /// would run (MongoDB only).
    pub async fn second_process(&self) -> TestApp {
        let home = self.home.as_ref().expect("the app's home").same_database();
        TestApp::spawn_in(home, Some(TEST_SECRET)).await
    }

    /// A second handle on the app's store, as another process would open it
    /// (MongoDB only: the embedded store's file is locked by the app).
    pub async fn open_again(&self) -> Store {
        self.home.as_ref().expect("the app's home").open().await.0
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

/// The real `blogql` binary serving an embedded store on a free port, with
/// `env` added to its environment; killed (SIGKILL) when dropped.
pub struct Binary {
    /// The server process.
    pub child: std::process::Child,
    /// Its port on 127.0.0.1.
    pub port: u16,
    _dir: Option<TempDir>,
}

impl Binary {
    /// Starts the binary on a fresh store and waits until `/healthz` answers.
    pub async fn start(env: &[(&str, &str)]) -> Binary {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut binary = Binary::start_in(dir.path(), env).await;
        binary._dir = Some(dir);
        binary
    }

    /// Starts the binary on the store in `data_dir` and waits until `/healthz` answers.
    pub async fn start_in(data_dir: &Path, env: &[(&str, &str)]) -> Binary {
        Binary::start_with_output(data_dir, env, std::process::Stdio::null()).await
    }

    /// Starts the binary on a fresh store with its stdout (its log lines) written to `log`.
    pub async fn start_logging(env: &[(&str, &str)], log: &Path) -> Binary {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = std::fs::File::create(log).expect("log file");
        let mut binary = Binary::start_with_output(dir.path(), env, file.into()).await;
        binary._dir = Some(dir);
        binary
    }

    async fn start_with_output(data_dir: &Path, env: &[(&str, &str)], stdout: std::process::Stdio) -> Binary {
        let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_blogql"));
        command
            .args(["serve", "--bind", &format!("127.0.0.1:{port}")])
            .arg("--data-dir")
            .arg(data_dir)
            .env("BLOGQL_JWT_SECRET", TEST_SECRET)
            .env_remove("MONGODB_URI")
            .env("RUST_LOG", "off")
            .stdout(stdout)
            .stderr(std::process::Stdio::null());
        for (key, value) in env {
            command.env(key, value);
        }
        let child = command.spawn().expect("start blogql");
        let binary = Binary { child, port, _dir: None };
        let started = std::time::Instant::now();
        while reqwest::get(binary.url("/healthz")).await.is_err() {
            assert!(started.elapsed() < Duration::from_secs(20), "the server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        binary
    }

    /// The URL of a path on this server.
    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Posts `query` to this server's `/graphql`, signed in with `token` if given.
    pub async fn graphql(&self, token: Option<&str>, query: &str) -> Value {
        let mut request = reqwest::Client::new().post(self.url("/graphql")).json(&json!({ "query": query }));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        request.send().await.expect("send").json().await.expect("json")
    }

    /// The server's peak resident memory so far (VmHWM), in MiB.
    pub fn peak_rss_mib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).expect("proc status");
        let kib: u64 = status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmHWM");
        kib / 1024
    }
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
