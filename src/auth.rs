//! Identity: argon2id password hashes and HS256 bearer tokens.
//!
//! Tokens carry only the user id and expiry. Validation pins the algorithm to
//! HS256, so `alg=none` and algorithm-confusion tokens are refused.

use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm as ArgonAlgorithm, Argon2, Params, Version};
use bson::oid::ObjectId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// argon2id cost parameters; configurable because the right cost depends on the machine.
#[derive(Debug, Clone, Copy)]
pub struct HashCost {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Number of passes.
    pub iterations: u32,
}

impl Default for HashCost {
    /// OWASP's recommended argon2id floor: 19 MiB, 2 passes, 1 lane.
    fn default() -> Self {
        HashCost { memory_kib: 19 * 1024, iterations: 2 }
    }
}

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
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding).map_err(Error::internal)
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
    pub async fn hash_password(&self, password: String) -> Result<String> {
        let argon = Arc::clone(&self.argon);
        tokio::task::spawn_blocking(move || hash_with(&argon, &password)).await?
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
    let salt = SaltString::generate(&mut rand::rngs::OsRng);
    argon
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| Error::internal(format!("hashing: {e}")))
}

/// A fresh random secret, hex encoded, from the OS generator.
pub fn random_secret_hex(bytes: usize) -> String {
    use rand::RngCore;
    let mut buf = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buf);
    buf.iter().map(|b| format!("{b:02x}")).collect()
}
