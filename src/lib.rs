//! blogql: a GraphQL API for a blog whose deletes cascade inside one transaction.
//!
//! # Layout
//!
//! The layers run `main → http → graphql → cmd → store`, and no module
//! imports one above it (`store` implements the port `cmd` is written
//! against; `app` holds the state the upper layers share). Each module's
//! first doc line says what it owns.
//!
//! - [`settings`]: the one settings tree (HTTP, GraphQL, auth, store), each
//!   section a clap group whose defaults are defined once.
//! - [`app`]: [`AppState`], what every handler and resolver shares.
//! - [`domain`]: validated input. Newtypes (`UserName`, `Email`, `Title`,
//!   `Page`, ...) whose `parse` is their only constructor, with their tests.
//! - [`model`]: the stored documents (`users`, `posts`, `comments`, staged
//!   deletion jobs), the same BSON on both backends, and their typed ids
//!   ([`model::UserId`], [`model::PostId`], [`model::CommentId`]: one
//!   generic [`model::Id`], stored as the bare ObjectId).
//! - [`cmd`]: every write, one typed command per file (`DeleteUser`,
//!   `CreatePost`, ...), written once against [`store::Tx`]; each lists the
//!   collections it touches, in order.
//! - [`store`]: the store seam. `store::port` holds the traits: [`store::Command`]
//!   and [`store::ReadCommand`] (re-exported by `cmd`), [`store::Backend`]
//!   (batched reads, plus `run(command)`, the only way to get a
//!   [`store::Tx`]) and [`store::Reads`]. `store::relation` holds
//!   [`store::Listing`] and [`store::Relation`], the one statement of what a
//!   list reads and in which order, which the page loaders, the refill and
//!   the connections share. [`store::Store`] is the backend
//!   chosen at start-up ([`store::open`]). [`store::embedded`] implements it
//!   on redb, [`store::mongo`] on the MongoDB driver; each is split into
//!   connect/schema, read, tx, kept (`Idempotency-Key` records) and errors;
//!   the embedded store's writer thread commits writes in groups, one fsync
//!   each, answering none before its group is durable (`embedded::group`);
//!   that fsync is of a redo log's sequential append (`embedded::redo`).
//!   [`store::hidden`] is staged deletion's read side: the registry of jobs
//!   in progress, `visible` (every read leaves out what they hide), `refill`
//!   (pages topped up past them, within a budget) and `stage` (publishing a
//!   job around its commit, for both backends). [`store::idempotency`] is
//!   the record an `Idempotency-Key` claims. [`store::events`] is the hub
//!   committed writes publish to ([`store::Command::events`], after the
//!   commit) and subscriptions listen on.
//! - [`graphql`]: the schema by feature (`user`, `post`, `comment`,
//!   `subscription`), the per-request DataLoaders and Relay connections,
//!   `graphql::plain` (list selections answered from memory, without a
//!   future per field), `graphql::served` (the schema built twice: full
//!   validation, and the part a cached document's variables can still fail),
//!   and `graphql::error`, the one place a domain error becomes a
//!   client-facing code.
//! - [`http`]: axum routes for `/graphql`, GraphiQL, `/healthz`, `/readyz`
//!   and `/metrics`, with the HTTP limits (body and response size, timeouts,
//!   CORS). `http::graphql` runs each request through `http::steps`, one
//!   file per step (APQ, parse and size checks, the operation's checks,
//!   error codes, respond within the limits); `http::viewer` reads the
//!   bearer token (an extractor); `http::live` serves subscriptions on
//!   `/graphql`, with the checks and the send loop both transports share,
//!   over WebSocket (`live::ws`, graphql-transport-ws) and SSE (`live::sse`,
//!   graphql-sse's distinct connections);
//!   `http::persisted` is APQ and the parsed-document cache;
//!   `http::answers` the answer cache (a query's encoded answer, kept while
//!   the embedded store's state, `Store::version`, stands);
//!   `http::trusted` the trusted-documents manifest (loaded, checked and
//!   watched) behind the allowlist step; `http::incoming` reads a POST body,
//!   with the `documentId`/`id`/`doc_id` a persisted request may send;
//!   `http::idempotency` is `Idempotency-Key` on mutations; `http::encode`
//!   and `http::committed` write answers within their limits;
//!   `http::conn` is the accept loop with its connection limits (per
//!   process, per address, idle and send deadlines); `http::budget` is the
//!   process's budget of answer bytes in flight; `http::slow_body` the
//!   request body's deadline and slowest rate.
//! - [`limits`]: what a document may cost before it runs (the lexical
//!   pre-parse pass, the selected-field cap, introspection cost, mutation
//!   fields) and the rate limiters (log-ins, sign-ups, write budgets).
//!   `graphql::cost` lists every list field's length bound.
//! - [`metrics`]: the counters and histograms behind `GET /metrics`.
//! - [`telemetry`]: log output (text or JSON lines, one line per request),
//!   the W3C trace context a request continues or starts, and
//!   `telemetry::otlp`, the OpenTelemetry span layer, sampler and OTLP/HTTP exporter.
//! - [`auth`]: argon2id password hashes, HS256 bearer tokens (and the ones
//!   already verified, `auth::verified`), the JWT secret, and
//!   `auth::accounts`, the account service (sign-up, log-in and their
//!   limits) that resolvers call.
//! - [`error`]: the domain error, which keeps its cause; [`code`]: every
//!   client-facing `extensions.code`, listed once.
//! - [`check`]: the integrity checker for every invariant the commands promise.
//! - [`reaper`]: the background task that finishes staged deletions, step by step.
//! - [`repair`]: `check --repair`, which fixes what older code left behind, in budget-sized transactions.
//! - [`seed`]: bulk data through the same commands, for benchmarks and crash tests.
//!
//! **Adding a relation** (a new paged list under a parent) is a variant of
//! `PostsOf`, `CommentsOf` or `UsersOf`, its index on each backend, and one
//! line in the resolver: loaders, batching, hiding and cursors follow.
//!
//! **Adding a mutation** touches three files: a command in `cmd/` (one new
//! file, written against [`store::Tx`]'s existing methods), its `pub use`
//! in `cmd/mod.rs`, and its resolver in the `graphql` file of its feature
//! (parse the input, `run_as` the command, wrap the output). Only a write
//! no existing `Tx` method can express adds a method to the port and one
//! implementation per backend. Then `blogql print-schema > schema.graphql`.
//!
//! [`build_app`] and [`serve`] are what both `main` and the integration tests
//! use, so tests exercise the real application on a real socket.

// The resolvers' futures nest deeply (loaders, spans, the federated root);
// computing their layout in the test build needs more than the default 128.
#![recursion_limit = "256"]

pub mod app;
pub mod auth;
pub mod check;
pub mod cmd;
pub mod code;
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
pub mod telemetry;

use std::future::Future;
use std::sync::Arc;

use axum::Router;
use tokio::net::TcpListener;

pub use crate::app::AppState;
pub use crate::auth::JWT_SECRET_FILE;
use crate::error::Result;

/// The complete HTTP application over `state`.
pub fn build_app(state: AppState) -> Result<Router> {
    // A start-up failure (a trusted-documents manifest that does not load)
    // is told to the operator whole: its chain names the file and the entry.
    http::router(state).map_err(|err| error::Error::internal(format!("{err:#}")))
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
    let app = build_app(state)?;
    let served = http::conn::serve_connections(listener, app, limits, shutdown).await;
    if let Some(reaping) = reaping {
        // A step in flight commits or rolls back whole; the next start resumes the job.
        stop_reaping.notify_one();
        let _ = reaping.await;
    }
    served
}
