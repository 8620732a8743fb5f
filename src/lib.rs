//! blogql: a GraphQL API for a blog whose deletes cascade inside one transaction.
//!
//! # Layout
//!
//! The layers run `main → http → graphql → cmd → store`; each module's first
//! doc line says what it owns.
//!
//! - [`settings`]: the one settings tree (HTTP, GraphQL, auth, store), each
//!   section a clap group whose defaults are defined once.
//! - [`domain`]: validated input. Newtypes (`UserName`, `Email`, `Title`,
//!   `Page`, ...) whose `parse` is their only constructor, with their tests.
//! - [`model`]: the stored documents (`users`, `posts`, `comments`), the
//!   same BSON on both backends.
//! - [`cmd`]: every write, one typed command per file (`DeleteUser`,
//!   `CreatePost`, ...), written once against [`store::Tx`]; each lists the
//!   collections it touches, in order.
//! - [`store`]: the store seam. [`store::Backend`] is batched reads plus
//!   `run(command)`, which is the only way to get a [`store::Tx`];
//!   [`store::Store`] is the backend chosen at start-up.
//!   [`store::embedded`] implements it on redb, [`store::mongo`] on the
//!   MongoDB driver (session transactions through `and_run2`, snapshot reads
//!   per request); each is split into connect/schema, read, tx and errors.
//! - [`graphql`]: the schema by feature (`user`, `post`, `comment`), the
//!   per-request DataLoaders and Relay connections, and `graphql::error`,
//!   the one place a domain error becomes a client-facing code.
//! - [`http`]: axum routes for `/graphql`, GraphiQL, `/healthz`, `/readyz`
//!   and `/metrics`, with the HTTP limits (body and response size, timeouts,
//!   CORS); `http::persisted` is APQ and the parsed-document cache;
//!   `http::idempotency` is `Idempotency-Key` on mutations (its records are
//!   [`store::idempotency`]);
//!   `http::conn` is the accept loop with its connection limits (per
//!   process, per address, idle and send deadlines); `http::budget` is the
//!   process's budget of answer bytes in flight; `http::slow_body` the
//!   request body's deadline and slowest rate.
//! - [`limits`]: what a document may cost before it runs (the lexical
//!   pre-parse pass, the selected-field cap, introspection cost, mutation
//!   fields) and the rate limiters (log-ins, sign-ups, write budgets).
//!   `graphql::cost` lists every list field's length bound.
//! - [`metrics`]: the counters and histograms behind `GET /metrics`.
//! - [`auth`]: argon2id password hashes, HS256 bearer tokens, the JWT secret.
//! - [`error`]: the domain error, which keeps its cause.
//! - [`check`]: the integrity checker for every invariant the commands promise.
//! - [`reaper`]: the background task that finishes staged deletions, step by step.
//! - [`repair`]: `check --repair`, which fixes what older code left behind, in budget-sized transactions.
//! - [`seed`]: bulk data through the same commands, for benchmarks and crash tests.
//!
//! [`build_app`] and [`serve`] are what both `main` and the integration tests
//! use, so tests exercise the real application on a real socket.

pub mod auth;
pub mod check;
pub mod cmd;
pub mod domain;
pub mod error;
pub mod graphql;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod model;
pub mod reaper;
pub mod repair;
pub mod seed;
pub mod settings;
pub mod store;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::auth::Auth;
use crate::error::Result;
use crate::limits::{FailureBackoff, RateLimiter, WriteBudget};
use crate::settings::Settings;
use crate::store::Store;

pub use crate::auth::JWT_SECRET_FILE;

/// Everything a request handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The configured backend.
    pub store: Store,
    /// Token and password machinery.
    pub auth: Auth,
    /// Every setting the server was started with.
    pub settings: Arc<Settings>,
    /// Failed log-ins per (email, client address), with growing delays.
    pub login_failures: Arc<FailureBackoff>,
    /// Log-in attempts per client IP.
    pub logins_per_ip: Arc<RateLimiter>,
    /// Sign-up attempts per client IP.
    pub signups_per_ip: Arc<RateLimiter>,
    /// Writes and content bytes per user and per client IP.
    pub write_budget: Arc<WriteBudget>,
    /// What `/metrics` reports; `None` when metrics are turned off.
    pub metrics: Option<Arc<metrics::Metrics>>,
}

impl AppState {
    /// Wraps an opened store. The JWT secret comes from the settings or,
    /// failing that, from (or into) the data directory.
    pub fn new(store: Store, settings: Settings) -> Result<Self> {
        let minute = Duration::from_secs(60);
        Ok(AppState {
            store,
            auth: Auth::from_settings(&settings.auth, &settings.store.data_dir)?,
            login_failures: Arc::new(FailureBackoff::new(settings.auth.login_failures_before_backoff)),
            logins_per_ip: Arc::new(RateLimiter::new(settings.auth.logins_per_ip_per_minute, minute)),
            signups_per_ip: Arc::new(RateLimiter::new(settings.auth.signups_per_ip_per_minute, minute)),
            write_budget: Arc::new(WriteBudget::new(
                settings.auth.writes_per_user_per_minute,
                settings.auth.write_bytes_per_user_per_minute,
            )),
            metrics: settings.http.metrics.then(Arc::default),
            settings: Arc::new(settings),
        })
    }
}

/// The complete HTTP application over `state`.
pub fn build_app(state: AppState) -> Router {
    http::router(state)
}

/// Serves the application on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish before returning.
///
/// Connections are bounded in number, and closed when they start no request
/// within the read timeout or sit idle past the idle timeout (see `http::conn`),
/// so slow or silent clients cannot hold the server's sockets.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let limits = http::conn::ConnLimits::from(&state.settings.http);
    let stop_reaping = Arc::new(tokio::sync::Notify::new());
    let reaping = state.settings.store.reap_deletions.then(|| {
        let (store, budget) = (state.store.clone(), state.settings.store.cascade_budget_docs);
        tokio::spawn(reaper::run(store, budget, Arc::clone(&stop_reaping)))
    });
    let served = http::conn::serve_connections(listener, build_app(state), limits, shutdown).await;
    if let Some(reaping) = reaping {
        // A step in flight commits or rolls back whole; the next start resumes the job.
        stop_reaping.notify_one();
        let _ = reaping.await;
    }
    served
}
