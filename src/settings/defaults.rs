//! The defaults, each written once and used by both clap and `Default`.

pub const BIND: &str = "127.0.0.1:8000";
pub const MAX_BODY_BYTES: usize = 1024 * 1024;
/// Room for a page of 40 posts with 50,000-character bodies of 4-byte
/// characters (the most complexity admits with bodies is 100 pages of
/// ordinary text); a larger answer is refused, never truncated.
pub const MAX_RESPONSE_BYTES: usize = 8 * 1024 * 1024;
/// Sixteen of the largest answers at once; RSS stays far under 512 MiB
/// however many clients stop reading.
pub const MAX_RESPONSE_BYTES_IN_FLIGHT: usize = 128 * 1024 * 1024;
/// An answer not handed to the connection within this long is abandoned with its connection.
pub const SEND_TIMEOUT_SECS: u64 = 30;
/// Connections one client address may hold; the rest of `MAX_CONNECTIONS` stays for others.
pub const MAX_CONNECTIONS_PER_IP: usize = 128;
/// Concurrent HTTP/2 streams per connection (hyper's default is 200).
pub const MAX_CONCURRENT_STREAMS: u32 = 32;
/// A request body slower than this after its first second is cut off.
pub const MIN_BODY_BYTES_PER_SEC: usize = 4 * 1024;
pub const REQUEST_TIMEOUT_SECS: u64 = 30;
pub const READ_TIMEOUT_SECS: u64 = 10;
pub const IDLE_TIMEOUT_SECS: u64 = 60;
pub const MAX_CONNECTIONS: usize = 1024;
/// A subscription socket must send `connection_init` within this long (graphql-ws closes with 4408 after).
pub const WS_INIT_TIMEOUT_SECS: u64 = 3;
/// How often a subscription socket is pinged; a peer silent for two of these is closed.
pub const WS_PING_INTERVAL_SECS: u64 = 15;
/// Subscriptions one socket may hold; one more gets `RATE_LIMITED`, the others go on.
pub const MAX_SUBSCRIPTIONS_PER_CONNECTION: usize = 100;
/// Subscriptions the whole process may hold; one more gets `RATE_LIMITED`.
pub const MAX_SUBSCRIPTIONS: usize = 10_000;
/// Items a resumed subscription replays at most: ten full pages, and well
/// inside what a subscriber may fall behind the hub while it reads them.
pub const MAX_SUBSCRIPTION_REPLAY: usize = 1_000;
pub const MAX_QUERY_DEPTH: usize = 15;
pub const PERSISTED_QUERIES: usize = 1000;
pub const PERSISTED_QUERIES_MIB: usize = 64;
pub const ANSWER_CACHE_MIB: usize = 4;
pub const CASCADE_BUDGET_DOCS: usize = 1000;
pub const STORE_CACHE_MIB: usize = 2;
/// Each redo log file's size, in MiB (see `--store-redo-log-mib`).
pub const STORE_REDO_LOG_MIB: u64 = 16;

/// The request headers allowed cross-origin by default.
pub fn cors_headers() -> Vec<String> {
    [
        "content-type",
        "authorization",
        "accept",
        "apollographql-client-name",
        "apollographql-client-version",
        "idempotency-key",
    ]
    .map(String::from)
    .to_vec()
}
/// A field costs one per 1,000 bytes it may answer (`Post.body` 200), so
/// this admits a page of 100 posts with their bodies, titles and authors.
pub const MAX_QUERY_COMPLEXITY: usize = 25_000;
pub const MAX_QUERY_FIELDS: usize = 1_000;
/// Selection depth (15) plus fragment headroom (8) plus an argument list
/// leaves 24 levels for list and object values: far more than any real
/// document, and far less than what overflows a worker's stack.
pub const MAX_QUERY_NESTING: usize = 48;
/// Apollo Router's default parser token limit; GraphiQL's introspection
/// query is about 1,500 tokens, and 1,000 selected fields about 5,000.
pub const MAX_QUERY_TOKENS: usize = 15_000;
/// Each mutation field is a transaction of its own; a screen's worth, not 499.
pub const MAX_MUTATION_FIELDS: usize = 20;
/// Stripe's window for `Idempotency-Key`: a day covers any client's retries.
pub const IDEMPOTENCY_TTL_SECS: u64 = 24 * 60 * 60;
pub const TOKEN_TTL_SECS: u64 = 24 * 60 * 60;
/// OWASP's recommended argon2id floor: 19 MiB, 2 passes, 1 lane.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;
pub const ARGON2_ITERATIONS: u32 = 2;
pub const LOGIN_FAILURES_BEFORE_BACKOFF: u32 = 5;
pub const LOGINS_PER_IP_PER_MINUTE: u32 = 60;
pub const SIGNUPS_PER_IP_PER_MINUTE: u32 = 20;
pub const HASH_QUEUE: usize = 32;
/// Five a second sustained: far above a person, far below a script.
pub const WRITES_PER_USER_PER_MINUTE: u32 = 300;
/// Forty maximal posts a minute.
pub const WRITE_BYTES_PER_USER_PER_MINUTE: u32 = 8 * 1024 * 1024;
pub const DATA_DIR: &str = "./data";

/// `service.name` of exported spans (`OTEL_SERVICE_NAME`).
pub const OTEL_SERVICE_NAME: &str = "blogql";
/// The trace sampler (`OTEL_TRACES_SAMPLER`): the OpenTelemetry spec's default.
pub const OTEL_TRACES_SAMPLER: &str = "parentbased_always_on";
