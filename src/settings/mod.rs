//! One settings tree: every knob of the server, by concern, each default defined once.
//!
//! Each section is a clap [`Args`] group flattened into the command line, so
//! every setting is a flag, an environment variable and a line in `--help`.
//! The same structs are what the library takes (`AppState::new`), and their
//! `Default` is what a server started with no flags gets; tests override
//! single fields with struct update syntax.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use secrecy::SecretString;

/// Every setting of a running server.
#[derive(Args, Debug, Clone, Default)]
pub struct Settings {
    /// Listening and HTTP-level limits.
    #[command(flatten)]
    pub http: HttpSettings,
    /// GraphQL query limits.
    #[command(flatten)]
    pub graphql: GraphqlSettings,
    /// Tokens, password hashing and log-in limits.
    #[command(flatten)]
    pub auth: AuthSettings,
    /// Where the data lives.
    #[command(flatten)]
    pub store: StoreSettings,
}

pub use telemetry::TelemetrySettings;

/// Logs and traces (`TelemetrySettings`).
mod telemetry;

/// The defaults, each written once and used by both clap and `Default`.
pub(crate) mod defaults;

/// Listening and the limits applied before GraphQL sees a request.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "HTTP")]
pub struct HttpSettings {
    /// Address to listen on.
    #[arg(long, env = "BLOGQL_BIND", default_value = defaults::BIND)]
    pub bind: String,
    /// Largest request body in bytes; larger ones get 413.
    #[arg(long, env = "BLOGQL_MAX_BODY_BYTES", default_value_t = defaults::MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Largest response body in bytes; a larger answer is replaced by a
    /// `RESPONSE_TOO_LARGE` error (never truncated).
    #[arg(long, env = "BLOGQL_MAX_RESPONSE_BYTES", default_value_t = defaults::MAX_RESPONSE_BYTES)]
    pub max_response_bytes: usize,
    /// Answer bytes held at once by the whole process, from encoding until
    /// the last byte is handed to the connection; past it, answers get 503
    /// with `Retry-After` instead of piling up behind clients that do not read.
    #[arg(long, env = "BLOGQL_MAX_RESPONSE_BYTES_IN_FLIGHT", default_value_t = defaults::MAX_RESPONSE_BYTES_IN_FLIGHT)]
    pub max_response_bytes_in_flight: usize,
    /// Longest an answer may take to be handed to a client that reads slowly,
    /// in seconds; then its connection is closed.
    #[arg(long, env = "BLOGQL_SEND_TIMEOUT_SECS", default_value_t = defaults::SEND_TIMEOUT_SECS)]
    pub send_timeout_secs: u64,
    /// Longest a request may run, in seconds; slower ones get 408.
    #[arg(long, env = "BLOGQL_REQUEST_TIMEOUT_SECS", default_value_t = defaults::REQUEST_TIMEOUT_SECS)]
    pub request_timeout_secs: u64,
    /// Longest a client may take to start its first request, or to send request headers or body, in seconds.
    #[arg(long, env = "BLOGQL_READ_TIMEOUT_SECS", default_value_t = defaults::READ_TIMEOUT_SECS)]
    pub read_timeout_secs: u64,
    /// Longest a connection may sit with no request in flight, in seconds (keep-alive, HTTP/2).
    #[arg(long, env = "BLOGQL_IDLE_TIMEOUT_SECS", default_value_t = defaults::IDLE_TIMEOUT_SECS)]
    pub idle_timeout_secs: u64,
    /// Connections served at once; beyond that the server stops accepting until one closes.
    #[arg(long, env = "BLOGQL_MAX_CONNECTIONS", default_value_t = defaults::MAX_CONNECTIONS)]
    pub max_connections: usize,
    /// Seconds a subscription socket has to send `connection_init` before it is closed (4408).
    #[arg(long, env = "BLOGQL_WS_INIT_TIMEOUT_SECS", default_value_t = defaults::WS_INIT_TIMEOUT_SECS)]
    pub ws_init_timeout_secs: u64,
    /// Seconds between pings on a subscription socket (a peer silent for two is closed) and keep-alive comments on an SSE stream.
    #[arg(long, env = "BLOGQL_WS_PING_INTERVAL_SECS", default_value_t = defaults::WS_PING_INTERVAL_SECS)]
    pub ws_ping_interval_secs: u64,
    /// Most items a resumed subscription (`after:`) replays before going live; a cursor further back is `BAD_USER_INPUT`.
    #[arg(long, env = "BLOGQL_MAX_SUBSCRIPTION_REPLAY", default_value_t = defaults::MAX_SUBSCRIPTION_REPLAY)]
    pub max_subscription_replay: usize,
    /// Subscriptions one socket may hold at once; one more is refused with `RATE_LIMITED`.
    #[arg(long, env = "BLOGQL_MAX_SUBSCRIPTIONS_PER_CONNECTION", default_value_t = defaults::MAX_SUBSCRIPTIONS_PER_CONNECTION)]
    pub max_subscriptions_per_connection: usize,
    /// Subscriptions the whole process may hold at once; one more is refused with `RATE_LIMITED`.
    #[arg(long, env = "BLOGQL_MAX_SUBSCRIPTIONS", default_value_t = defaults::MAX_SUBSCRIPTIONS)]
    pub max_subscriptions: usize,
    /// Connections one client address may hold at once; further ones from it are closed on accept.
    #[arg(long, env = "BLOGQL_MAX_CONNECTIONS_PER_IP", default_value_t = defaults::MAX_CONNECTIONS_PER_IP)]
    pub max_connections_per_ip: usize,
    /// Concurrent streams one HTTP/2 connection may open.
    #[arg(long, env = "BLOGQL_MAX_CONCURRENT_STREAMS", default_value_t = defaults::MAX_CONCURRENT_STREAMS)]
    pub max_concurrent_streams: u32,
    /// Slowest a request body may arrive, in bytes per second after its
    /// first second; the whole body must also arrive within the read timeout.
    #[arg(long, env = "BLOGQL_MIN_BODY_BYTES_PER_SEC", default_value_t = defaults::MIN_BODY_BYTES_PER_SEC)]
    pub min_body_bytes_per_sec: usize,
    /// Comma-separated origins allowed to call the API from browsers (none by default).
    #[arg(long, env = "BLOGQL_CORS_ORIGINS", value_delimiter = ',')]
    pub cors_origins: Vec<String>,
    /// Comma-separated request headers browsers may send cross-origin (the
    /// default covers bearer auth, JSON and Apollo's client-awareness headers).
    #[arg(long, env = "BLOGQL_CORS_HEADERS", value_delimiter = ',', default_values_t = defaults::cors_headers())]
    pub cors_headers: Vec<String>,
    /// Serve Prometheus metrics on `GET /metrics` (and record them).
    #[arg(long, env = "BLOGQL_METRICS", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub metrics: bool,
    /// Serve GraphiQL's pinned files from this directory instead of the CDN (offline use; see README).
    #[arg(long, env = "BLOGQL_GRAPHIQL_ASSETS_DIR")]
    pub graphiql_assets_dir: Option<PathBuf>,
}

impl Default for HttpSettings {
    fn default() -> Self {
        HttpSettings {
            bind: defaults::BIND.to_owned(),
            max_body_bytes: defaults::MAX_BODY_BYTES,
            max_response_bytes: defaults::MAX_RESPONSE_BYTES,
            max_response_bytes_in_flight: defaults::MAX_RESPONSE_BYTES_IN_FLIGHT,
            send_timeout_secs: defaults::SEND_TIMEOUT_SECS,
            max_connections_per_ip: defaults::MAX_CONNECTIONS_PER_IP,
            max_concurrent_streams: defaults::MAX_CONCURRENT_STREAMS,
            min_body_bytes_per_sec: defaults::MIN_BODY_BYTES_PER_SEC,
            request_timeout_secs: defaults::REQUEST_TIMEOUT_SECS,
            read_timeout_secs: defaults::READ_TIMEOUT_SECS,
            idle_timeout_secs: defaults::IDLE_TIMEOUT_SECS,
            max_connections: defaults::MAX_CONNECTIONS,
            ws_init_timeout_secs: defaults::WS_INIT_TIMEOUT_SECS,
            ws_ping_interval_secs: defaults::WS_PING_INTERVAL_SECS,
            max_subscriptions_per_connection: defaults::MAX_SUBSCRIPTIONS_PER_CONNECTION,
            max_subscriptions: defaults::MAX_SUBSCRIPTIONS,
            max_subscription_replay: defaults::MAX_SUBSCRIPTION_REPLAY,
            cors_origins: Vec::new(),
            cors_headers: defaults::cors_headers(),
            metrics: true,
            graphiql_assets_dir: None,
        }
    }
}

impl HttpSettings {
    /// The request timeout as a duration.
    pub fn request_timeout(&self) -> Duration {
        Duration::from_secs(self.request_timeout_secs)
    }

    /// The header/body read timeout (also the time to start a first request) as a duration.
    pub fn read_timeout(&self) -> Duration {
        Duration::from_secs(self.read_timeout_secs)
    }

    /// The send deadline as a duration.
    pub fn send_timeout(&self) -> Duration {
        Duration::from_secs(self.send_timeout_secs)
    }

    /// The idle-connection timeout as a duration.
    pub fn idle_timeout(&self) -> Duration {
        Duration::from_secs(self.idle_timeout_secs)
    }
}

/// Limits on query shape.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "GraphQL")]
pub struct GraphqlSettings {
    /// Deepest selection nesting a query may have.
    #[arg(long, env = "BLOGQL_MAX_QUERY_DEPTH", default_value_t = defaults::MAX_QUERY_DEPTH)]
    pub max_query_depth: usize,
    /// Largest query complexity (connection fields cost `first` times their selection).
    #[arg(long, env = "BLOGQL_MAX_QUERY_COMPLEXITY", default_value_t = defaults::MAX_QUERY_COMPLEXITY)]
    pub max_query_complexity: usize,
    /// Most fields one query may select, counting aliases and every fragment use.
    #[arg(long, env = "BLOGQL_MAX_QUERY_FIELDS", default_value_t = defaults::MAX_QUERY_FIELDS)]
    pub max_query_fields: usize,
    /// Deepest nesting of `{`, `[` and `(` a document may have, checked in
    /// one lexical pass before parsing (the parser recurses on each level).
    #[arg(long, env = "BLOGQL_MAX_QUERY_NESTING", default_value_t = defaults::MAX_QUERY_NESTING)]
    pub max_query_nesting: usize,
    /// Most lexical tokens a document may have, checked before parsing
    /// (parsing costs time per token, whatever the bytes).
    #[arg(long, env = "BLOGQL_MAX_QUERY_TOKENS", default_value_t = defaults::MAX_QUERY_TOKENS)]
    pub max_query_tokens: usize,
    /// Most mutation fields (each its own transaction) one request may run,
    /// counting aliases.
    #[arg(long, env = "BLOGQL_MAX_MUTATION_FIELDS", default_value_t = defaults::MAX_MUTATION_FIELDS)]
    pub max_mutation_fields: usize,
    /// How long the answer of a mutation sent with an `Idempotency-Key` is
    /// kept for its retries, in seconds; 0 ignores the header.
    #[arg(long, env = "BLOGQL_IDEMPOTENCY_TTL_SECS", default_value_t = defaults::IDEMPOTENCY_TTL_SECS)]
    pub idempotency_ttl_secs: u64,
    /// Parsed documents kept by SHA-256 for automatic persisted queries (APQ)
    /// and repeat requests; 0 turns APQ off.
    #[arg(long, env = "BLOGQL_PERSISTED_QUERIES", default_value_t = defaults::PERSISTED_QUERIES)]
    pub persisted_queries: usize,
    /// Estimated memory the parsed-document cache may hold, in MiB (a parsed
    /// document costs about 75 bytes per token, many times its text).
    #[arg(long, env = "BLOGQL_PERSISTED_QUERIES_MIB", default_value_t = defaults::PERSISTED_QUERIES_MIB)]
    pub persisted_queries_mib: usize,
    /// Memory for answers kept while the embedded store has not changed
    /// (exact, never stale; see `http::answers`), in MiB; 0 turns it off.
    #[arg(long, env = "BLOGQL_ANSWER_CACHE_MIB", default_value_t = defaults::ANSWER_CACHE_MIB)]
    pub answer_cache_mib: usize,
    /// Answer introspection queries (`__schema`, `__type`). With `false` they
    /// are refused as a validation error; `__typename` keeps working.
    #[arg(long, env = "BLOGQL_INTROSPECTION", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub introspection: bool,
    /// Serve as an Apollo Federation v2 subgraph (`_service`, `_entities`,
    /// `@key(fields: "id")` on `User`, `Post` and `Comment`).
    #[arg(long, env = "BLOGQL_FEDERATION", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub federation: bool,
    /// A manifest of the operations your clients ship (Apollo's
    /// persisted-query manifest, Relay's `persisted_queries.json`, or
    /// graphql-codegen's persisted documents), watched for changes. Requests
    /// may then name a document by `documentId`, `id`/`doc_id`, or an APQ hash.
    #[arg(long, env = "BLOGQL_TRUSTED_DOCUMENTS")]
    pub trusted_documents: Option<PathBuf>,
    /// Refuse every document not in `--trusted-documents`, before parsing it
    /// (`UNTRUSTED_DOCUMENT`); APQ registration is off.
    #[arg(long, env = "BLOGQL_REQUIRE_TRUSTED_DOCUMENTS", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, requires = "trusted_documents")]
    pub require_trusted_documents: bool,
    /// With `--require-trusted-documents`: serve untrusted documents anyway,
    /// but count (`blogql_untrusted_documents_total`) and log each one, to
    /// see what a rollout would refuse before it does.
    #[arg(long, env = "BLOGQL_TRUSTED_DOCUMENTS_LOG_ONLY", default_value_t = false, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set, requires = "require_trusted_documents")]
    pub trusted_documents_log_only: bool,
}

impl Default for GraphqlSettings {
    fn default() -> Self {
        GraphqlSettings {
            max_query_depth: defaults::MAX_QUERY_DEPTH,
            max_query_complexity: defaults::MAX_QUERY_COMPLEXITY,
            max_query_fields: defaults::MAX_QUERY_FIELDS,
            max_query_nesting: defaults::MAX_QUERY_NESTING,
            max_query_tokens: defaults::MAX_QUERY_TOKENS,
            max_mutation_fields: defaults::MAX_MUTATION_FIELDS,
            idempotency_ttl_secs: defaults::IDEMPOTENCY_TTL_SECS,
            persisted_queries: defaults::PERSISTED_QUERIES,
            persisted_queries_mib: defaults::PERSISTED_QUERIES_MIB,
            answer_cache_mib: defaults::ANSWER_CACHE_MIB,
            introspection: true,
            federation: false,
            trusted_documents: None,
            require_trusted_documents: false,
            trusted_documents_log_only: false,
        }
    }
}

/// Tokens, password hashing and log-in rate limits.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Auth")]
pub struct AuthSettings {
    /// HS256 secret for tokens (16+ bytes); generated once into the data dir when absent.
    #[arg(long, env = "BLOGQL_JWT_SECRET", hide_env_values = true)]
    // A `SecretString`, so it never reaches a log, not even through `Debug`.
    pub jwt_secret: Option<SecretString>,
    /// Lifetime of issued tokens, in seconds.
    #[arg(long, env = "BLOGQL_TOKEN_TTL_SECS", default_value_t = defaults::TOKEN_TTL_SECS)]
    pub token_ttl_secs: u64,
    /// argon2id memory cost in KiB.
    #[arg(long, env = "BLOGQL_ARGON2_MEMORY_KIB", default_value_t = defaults::ARGON2_MEMORY_KIB)]
    pub argon2_memory_kib: u32,
    /// argon2id iterations.
    #[arg(long, env = "BLOGQL_ARGON2_ITERATIONS", default_value_t = defaults::ARGON2_ITERATIONS)]
    pub argon2_iterations: u32,
    /// Failed log-ins one client address may make for one email before each
    /// further attempt from it must wait (1 s, doubling, at most 15 min).
    /// Other addresses, and so the account's owner, are not affected.
    #[arg(long, env = "BLOGQL_LOGIN_FAILURES_BEFORE_BACKOFF", default_value_t = defaults::LOGIN_FAILURES_BEFORE_BACKOFF)]
    pub login_failures_before_backoff: u32,
    /// Log-in attempts allowed per client IP per minute.
    #[arg(long, env = "BLOGQL_LOGINS_PER_IP_PER_MINUTE", default_value_t = defaults::LOGINS_PER_IP_PER_MINUTE)]
    pub logins_per_ip_per_minute: u32,
    /// Sign-up attempts allowed per client IP per minute (a taken email answers
    /// `CONFLICT`, so this also bounds probing for accounts).
    #[arg(long, env = "BLOGQL_SIGNUPS_PER_IP_PER_MINUTE", default_value_t = defaults::SIGNUPS_PER_IP_PER_MINUTE)]
    pub signups_per_ip_per_minute: u32,
    /// Writes (posts, comments, edits, likes, follows) one user may make per
    /// minute; one client address may make four times as many. Deletes are free.
    #[arg(long, env = "BLOGQL_WRITES_PER_USER_PER_MINUTE", default_value_t = defaults::WRITES_PER_USER_PER_MINUTE)]
    pub writes_per_user_per_minute: u32,
    /// Content bytes (titles, bodies) one user's writes may add per minute;
    /// one client address, four times as many.
    #[arg(long, env = "BLOGQL_WRITE_BYTES_PER_USER_PER_MINUTE", default_value_t = defaults::WRITE_BYTES_PER_USER_PER_MINUTE)]
    pub write_bytes_per_user_per_minute: u32,
    /// Password hashes and verifications run at once; defaults to the number of cores.
    #[arg(long, env = "BLOGQL_HASH_CONCURRENCY")]
    pub hash_concurrency: Option<usize>,
    /// Requests that may wait for a hashing slot; beyond that they get `RATE_LIMITED`.
    #[arg(long, env = "BLOGQL_HASH_QUEUE", default_value_t = defaults::HASH_QUEUE)]
    pub hash_queue: usize,
}

impl Default for AuthSettings {
    fn default() -> Self {
        AuthSettings {
            jwt_secret: None,
            token_ttl_secs: defaults::TOKEN_TTL_SECS,
            argon2_memory_kib: defaults::ARGON2_MEMORY_KIB,
            argon2_iterations: defaults::ARGON2_ITERATIONS,
            login_failures_before_backoff: defaults::LOGIN_FAILURES_BEFORE_BACKOFF,
            logins_per_ip_per_minute: defaults::LOGINS_PER_IP_PER_MINUTE,
            signups_per_ip_per_minute: defaults::SIGNUPS_PER_IP_PER_MINUTE,
            hash_concurrency: None,
            hash_queue: defaults::HASH_QUEUE,
            writes_per_user_per_minute: defaults::WRITES_PER_USER_PER_MINUTE,
            write_bytes_per_user_per_minute: defaults::WRITE_BYTES_PER_USER_PER_MINUTE,
        }
    }
}

impl AuthSettings {
    /// The lifetime of issued tokens.
    pub fn token_ttl(&self) -> Duration {
        Duration::from_secs(self.token_ttl_secs)
    }

    /// Hashing slots: the setting, else one per core.
    pub fn hash_concurrency(&self) -> usize {
        self.hash_concurrency
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get))
            .max(1)
    }
}

/// Where the data lives: the embedded store's directory, or a MongoDB deployment.
#[derive(Args, Debug, Clone)]
#[command(next_help_heading = "Store")]
pub struct StoreSettings {
    /// Directory of the embedded store and its generated JWT secret (created if missing).
    #[arg(long, env = "BLOGQL_DATA_DIR", default_value = defaults::DATA_DIR)]
    pub data_dir: PathBuf,
    /// MongoDB connection string; when set, MongoDB (a replica set) is the store instead of the embedded one.
    #[arg(long, env = "MONGODB_URI", hide_env_values = true)]
    // Secret, because a MongoDB URI may carry a password.
    pub mongodb_uri: Option<SecretString>,
    /// MongoDB database; defaults to the URI's path, else `blogql`.
    #[arg(long, env = "BLOGQL_MONGODB_DATABASE")]
    pub mongodb_database: Option<String>,
    /// Most documents one cascade transaction writes. A `deleteUser` or
    /// `deletePost` over it is staged (hidden at once, deleted in steps of
    /// this size by the reaper); `check --repair --apply` fixes in batches of
    /// it. MongoDB advises about 1,000 documents per transaction.
    #[arg(long, env = "BLOGQL_CASCADE_BUDGET_DOCS", default_value_t = defaults::CASCADE_BUDGET_DOCS)]
    pub cascade_budget_docs: usize,
    /// Run the reaper, which finishes staged deletions in the background.
    /// `false` leaves them to another process on the same MongoDB (or to a
    /// later start); their documents stay hidden meanwhile.
    #[arg(long, env = "BLOGQL_REAP_DELETIONS", default_value_t = true, num_args = 0..=1, default_missing_value = "true", action = clap::ArgAction::Set)]
    pub reap_deletions: bool,
    /// The embedded store's page cache, in MiB: pages kept in memory beyond
    /// the operating system's file cache. redb's own default is 1 GiB, which a
    /// server that should fit in tens of MiB cannot afford. The default is
    /// small because the file cache already holds the pages: over
    /// `bench/perf.sh`'s workload (its seed, reads, write mix and 90/10 mix),
    /// reads ran as fast with 1 MiB as with 16 and writes 5% faster, and 16 MiB
    /// filled during the write phases and took peak RSS from 58 to 81 MiB.
    #[arg(long, env = "BLOGQL_STORE_CACHE_MIB", default_value_t = defaults::STORE_CACHE_MIB)]
    pub store_cache_mib: usize,
    /// The embedded store's redo log, in MiB per log file (two files beside
    /// the store file). A durable commit then syncs one sequential append to
    /// the log instead of the pages it changed all over the store file, and
    /// the store file is synced in the background each time a log fills.
    /// 0 turns the log off: every durable commit syncs the store file.
    #[arg(long, env = "BLOGQL_STORE_REDO_LOG_MIB", default_value_t = defaults::STORE_REDO_LOG_MIB)]
    pub store_redo_log_mib: u64,
}

impl Default for StoreSettings {
    fn default() -> Self {
        StoreSettings {
            data_dir: PathBuf::from(defaults::DATA_DIR),
            mongodb_uri: None,
            mongodb_database: None,
            cascade_budget_docs: defaults::CASCADE_BUDGET_DOCS,
            reap_deletions: true,
            store_cache_mib: defaults::STORE_CACHE_MIB,
            store_redo_log_mib: defaults::STORE_REDO_LOG_MIB,
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        settings: Settings,
    }

    /// The JWT secret and the MongoDB URI (which may carry a password) never
    /// appear in the settings' `Debug`, wherever that is printed (an error, a log line).
    #[test]
    fn debug_redacts_the_secrets() {
        let mut settings = Settings::default();
        settings.auth.jwt_secret = Some("s3cret-jwt-key-abcdef".into());
        settings.store.mongodb_uri = Some("mongodb://ann:hunter2@db.example/?replicaSet=rs0".into());
        let shown = format!("{settings:?}");
        assert!(shown.contains("jwt_secret: Some("), "{shown}");
        for secret in ["s3cret", "hunter2", "db.example"] {
            assert!(!shown.contains(secret), "{secret} leaked: {shown}");
        }
    }

    /// With no flags (and none of its variables set), clap yields exactly `Default`.
    #[test]
    fn clap_defaults_are_the_default() {
        let parsed = Cli::try_parse_from(["blogql"]).map(|c| c.settings);
        let parsed = parsed.map(|s| format!("{s:?}")).unwrap_or_default();
        let mut expected = Settings::default();
        // The environment may legitimately set these for the test run (tier 2).
        if let Ok(uri) = std::env::var("MONGODB_URI") {
            expected.store.mongodb_uri = Some(uri.into());
        }
        assert_eq!(parsed, format!("{expected:?}"));
    }

    /// A boolean setting works as a bare flag and with a value: `--federation`,
    /// `--federation true`, `--metrics false`, `--reap-deletions=false`.
    #[test]
    fn boolean_settings_take_a_bare_flag_or_a_value() {
        let parse = |args: &[&str]| {
            Cli::try_parse_from(std::iter::once("blogql").chain(args.iter().copied())).map(|c| c.settings)
        };
        let bare = parse(&["--federation", "--introspection"]).expect("bare flags parse");
        assert!(bare.graphql.federation && bare.graphql.introspection);
        let valued = parse(&["--federation", "true", "--metrics", "false", "--reap-deletions=false"]).expect("values");
        assert!(valued.graphql.federation && !valued.http.metrics && !valued.store.reap_deletions);
        let off = parse(&["--introspection", "false", "--federation", "false"]).expect("false parses");
        assert!(!off.graphql.introspection && !off.graphql.federation);
        assert!(parse(&["--federation", "maybe"]).is_err(), "a value must be a boolean");
    }
}
