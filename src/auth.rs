//! Identity: argon2id password hashes and HS256 bearer tokens.
//!
//! Tokens carry only the user id and expiry. Validation pins the algorithm to
//! HS256, so `alg=none` and algorithm-confusion tokens are refused.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, Version};
use bson::oid::ObjectId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::domain::Password;
use crate::error::{Error, Result};
use crate::settings::AuthSettings;

/// argon2id cost parameters; configurable because the right cost depends on the machine.
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
}

impl Default for HashCost {
    /// The settings' defaults: OWASP's recommended argon2id floor (19 MiB, 2 passes, 1 lane).
    fn default() -> Self {
        HashCost::from(&AuthSettings::default())
    }
}

impl From<&AuthSettings> for HashCost {
    fn from(settings: &AuthSettings) -> Self {
        HashCost { memory_kib: settings.argon2_memory_kib, iterations: settings.argon2_iterations }
    }
}

/// The file inside the data directory holding a generated JWT secret.
pub const JWT_SECRET_FILE: &str = "jwt-secret";

/// The message for every failed log-in, whether the email or the password was wrong,
/// so the answer does not reveal which accounts exist.
pub const BAD_CREDENTIALS: &str = "invalid email or password";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
}

/// Issues and checks tokens and password hashes with the server's secret and costs.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    token_ttl: Duration,
    argon: Arc<Argon2<'static>>,
    /// A real hash of a random password, verified against when the email is
    /// unknown so that unknown and known emails take the same time.
    decoy_hash: Arc<String>,
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The secret never reaches logs, not even through Debug.
        f.debug_struct("Auth").field("token_ttl", &self.token_ttl).finish_non_exhaustive()
    }
}

impl Auth {
    /// Builds the machinery from the auth settings. The secret comes from the
    /// settings or, failing that, from (or into) `data_dir`'s generated secret file.
    pub fn from_settings(settings: &AuthSettings, data_dir: &Path) -> Result<Self> {
        let secret = match &settings.jwt_secret {
            Some(secret) => secret.clone(),
            None => load_or_create_secret(data_dir)?,
        };
        Auth::new(secret.as_bytes(), settings.token_ttl(), HashCost::from(settings))
    }

    /// Builds the token and hashing machinery from a secret and costs.
    pub fn new(secret: &[u8], token_ttl: Duration, cost: HashCost) -> Result<Self> {
        if secret.len() < 16 {
            return Err(Error::internal("the JWT secret must be at least 16 bytes"));
        }
        let params = Params::new(cost.memory_kib, cost.iterations, 1, None)
            .map_err(|e| Error::internal(format!("argon2 parameters: {e}")))?;
        let argon = Argon2::new(ArgonAlgorithm::Argon2id, Version::V0x13, params);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let decoy_hash = hash_with(&argon, &random_secret_hex(16))?;
        Ok(Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            token_ttl,
            argon: Arc::new(argon),
            decoy_hash: Arc::new(decoy_hash),
        })
    }

    /// Signs a token for `user` valid for the configured lifetime.
    pub fn issue(&self, user: ObjectId) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.token_ttl.as_secs()).unwrap_or(i64::MAX);
        let claims = Claims { sub: user.to_hex(), iat: now, exp: now.saturating_add(ttl) };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal_from("signing a token", e))
    }

    /// Checks a bearer token and returns the user id it names.
    pub fn verify(&self, token: &str) -> Result<ObjectId> {
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                _ => "the token is invalid",
            };
            Error::Unauthenticated(why.into())
        })?;
        ObjectId::parse_str(&data.claims.sub).map_err(|_| Error::Unauthenticated("the token is invalid".into()))
    }

    /// Hashes a password on the blocking pool (argon2 is deliberately slow).
    pub async fn hash_password(&self, password: Password) -> Result<String> {
        let argon = Arc::clone(&self.argon);
        tokio::task::spawn_blocking(move || hash_with(&argon, password.expose())).await?
    }

    /// Verifies a password against a stored hash, or against a decoy when the
    /// account does not exist, so timing does not reveal which emails are registered.
    pub async fn verify_password(&self, password: String, hash: Option<String>) -> Result<bool> {
        let argon = Arc::clone(&self.argon);
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy_hash.as_str().to_owned());
        tokio::task::spawn_blocking(move || {
            let parsed = PasswordHash::new(&hash).map_err(|e| Error::internal(format!("stored hash: {e}")))?;
            Ok(known && argon.verify_password(password.as_bytes(), &parsed).is_ok())
        })
        .await?
    }
}

fn hash_with(argon: &Argon2<'_>, password: &str) -> Result<String> {
    let salt = SaltString::generate(&mut OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("hashing: {e}")))
}

/// A fresh random secret, hex encoded, from the OS generator.
pub fn random_secret_hex(bytes: usize) -> String {
    use std::fmt::Write;
    let mut buf = vec![0u8; bytes];
    OsRng.fill_bytes(&mut buf);
    buf.iter().fold(String::with_capacity(2 * bytes), |mut hex, b| {
        let _ = write!(hex, "{b:02x}");
        hex
    })
}

/// Reads the generated secret from the data dir, creating it (mode 0600) on first start.
fn load_or_create_secret(data_dir: &Path) -> Result<String> {
    let path = data_dir.join(JWT_SECRET_FILE);
    match std::fs::read_to_string(&path) {
        Ok(secret) if !secret.trim().is_empty() => return Ok(secret.trim().to_owned()),
        Ok(_) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(Error::internal_from(format!("reading {}", path.display()), err)),
    }
    let secret = random_secret_hex(32);
    write_private(&path, &secret).map_err(|e| Error::internal_from(format!("writing {}", path.display()), e))?;
    tracing::info!(path = %path.display(), "no JWT secret configured: generated one and stored it in the data dir");
    Ok(secret)
}

/// Writes `contents` to a file only its owner can read.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::io::Write;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
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
