//! The application's shared state: what every request handler and resolver
//! reaches for, built once from the settings and an opened store.
//!
//! It lives apart from the crate root so `http` and `graphql` depend on it,
//! not on `lib.rs`, which depends on them.

use std::sync::Arc;

use crate::auth::Auth;
use crate::auth::accounts::Accounts;
use crate::error::Result;
use crate::limits::WriteBudget;
use crate::metrics;
use crate::settings::Settings;
use crate::store::Store;

/// Everything a request handler needs, cheap to clone.
#[derive(Clone)]
pub struct AppState {
    /// The configured backend.
    pub store: Store,
    /// Token and password machinery.
    pub auth: Auth,
    /// Every setting the server was started with.
    pub settings: Arc<Settings>,
    /// Signing up and logging in, with their limits.
    pub accounts: Arc<Accounts>,
    /// Writes and content bytes per user and per client IP.
    pub write_budget: Arc<WriteBudget>,
    /// What `/metrics` reports; `None` when metrics are turned off.
    pub metrics: Option<Arc<metrics::Metrics>>,
}

impl AppState {
    /// Wraps an opened store. The JWT secret comes from the settings or,
    /// failing that, from (or into) the data directory.
    pub fn new(store: Store, settings: Settings) -> Result<Self> {
        let auth = Auth::from_settings(&settings.auth, &settings.store.data_dir)?;
        Ok(AppState {
            store,
            accounts: Arc::new(Accounts::new(auth.clone(), &settings.auth)),
            auth,
            write_budget: Arc::new(WriteBudget::new(
                settings.auth.writes_per_user_per_minute,
                settings.auth.write_bytes_per_user_per_minute,
            )),
            metrics: settings.http.metrics.then(Arc::default),
            settings: Arc::new(settings),
        })
    }
}
