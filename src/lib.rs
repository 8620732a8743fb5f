//! blogql: a GraphQL API for a blog whose deletes cascade inside one transaction.
//!
//! # Layout
//!
//! - [`model`]: the stored documents (`users`, `posts`, `comments`), paging
//!   vocabulary, and input limits.
//! - [`store`]: the store seam. [`store::Store`] holds batched reads and the
//!   door to transactions; [`store::Tx`] is the transaction handle and the only
//!   way to write. [`store::embedded`] implements both on redb,
//!   [`store::mongo`] on the MongoDB driver (session transactions through
//!   `and_run`, snapshot reads per request).
//! - [`cascade`]: every write rule (cascading deletes, relation pulls, creates
//!   that write what they reference), written once against [`store::Tx`].
//! - [`graphql`]: the schema, by feature (`user`, `post`, `comment`), with the
//!   per-request DataLoaders and Relay connections.
//! - [`check`]: the integrity checker for every invariant the rules promise.
//! - [`seed`]: bulk data through the same rules, for benchmarks and crash tests.
//! - [`auth`]: argon2id password hashes and HS256 bearer tokens.
//! - [`error`]: the one [`error::Error`] enum and its one mapping to GraphQL codes.
//! - [`http`]: axum routes for `/graphql`, GraphiQL, `/healthz` and `/readyz`,
//!   with the HTTP limits (body size, timeouts, CORS) and the accept loop.
//! - [`limits`]: query-shape limits, login rate limits, the DataLoader batch
//!   window, and their defaults.
//!
//! [`build_app`] and [`serve`] are what both `main` and the integration tests
//! use, so tests exercise the real application on a real socket.

pub mod auth;
pub mod cascade;
pub mod check;
pub mod error;
pub mod graphql;
pub mod http;
pub mod limits;
pub mod model;
pub mod seed;
pub mod store;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use tokio::net::TcpListener;

use crate::auth::{Auth, HashCost};
use crate::error::{Error, Result};
use crate::limits::{Limits, RateLimiter};
use crate::store::DynStore;
use crate::store::embedded::EmbeddedStore;

/// Everything a request handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The configured backend.
    pub store: DynStore,
    /// Token and password machinery.
    pub auth: Auth,
    /// Every configured limit.
    pub limits: Arc<Limits>,
    /// Log-in attempts per email.
    pub logins_per_email: Arc<RateLimiter>,
    /// Log-in attempts per client IP.
    pub logins_per_ip: Arc<RateLimiter>,
}

/// Settings for opening the application on the embedded store.
#[derive(Debug, Clone)]
pub struct Config {
    /// Where the redb file (and a generated JWT secret) live.
    pub data_dir: PathBuf,
    /// The HS256 secret; when `None`, one is generated once and kept in the data dir.
    pub jwt_secret: Option<String>,
    /// How long issued tokens stay valid.
    pub token_ttl: Duration,
    /// argon2id costs.
    pub hash_cost: HashCost,
    /// Query, HTTP and rate limits.
    pub limits: Limits,
}

/// The file inside the data directory holding a generated JWT secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

impl AppState {
    /// Opens the embedded store under `config.data_dir` and prepares auth.
    pub fn open_embedded(config: &Config) -> Result<Self> {
        let store: DynStore = Arc::new(EmbeddedStore::open(&config.data_dir)?);
        Self::new(store, config)
    }

    /// Wraps an opened store; the JWT secret comes from `config` or, failing
    /// that, from (or into) the data directory.
    pub fn new(store: DynStore, config: &Config) -> Result<Self> {
        let secret = match &config.jwt_secret {
            Some(secret) => secret.clone(),
            None => load_or_create_secret(&config.data_dir)?,
        };
        let minute = Duration::from_secs(60);
        Ok(AppState {
            store,
            auth: Auth::new(secret.as_bytes(), config.token_ttl, config.hash_cost)?,
            logins_per_email: Arc::new(RateLimiter::new(config.limits.logins_per_email_per_minute, minute)),
            logins_per_ip: Arc::new(RateLimiter::new(config.limits.logins_per_ip_per_minute, minute)),
            limits: Arc::new(config.limits.clone()),
        })
    }
}

/// Reads the generated secret from the data dir, creating it (mode 0600) on first start.
fn load_or_create_secret(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(JWT_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::internal(format!("reading {}: {err}", path.display()))),
    }
    let secret = auth::random_secret_hex(32);
    write_private(&path, &secret).map_err(|e| Error::internal(format!("writing {}: {e}", path.display())))?;
    tracing::info!(path = %path.display(), "no JWT secret configured: generated one and stored it in the data dir");
    Ok(secret)
}

fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()
}

/// The complete HTTP application over `state`.
pub fn build_app(state: AppState) -> Router {
    http::router(state)
}

/// Serves the application on `listener` until `shutdown` resolves, then lets
/// in-flight requests finish before returning.
///
/// Connections that take longer than `limits.read_timeout` to send their
/// request headers are closed, so slow clients cannot hold them forever.
pub async fn serve(
    listener: TcpListener,
    state: AppState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let read_timeout = state.limits.read_timeout;
    http::serve_connections(listener, build_app(state), read_timeout, shutdown).await
}
