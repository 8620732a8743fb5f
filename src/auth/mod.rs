//! Identity: argon2id password hashes, HS256 bearer tokens (verified once per
//! process, see `verified`), the JWT secret,
//! and the account service ([`accounts`]) that signs users up and in.
//!
//! Tokens carry only the user id and expiry. Validation pins the algorithm to
//! HS256, so `alg=none` and algorithm-confusion tokens are refused. Hashing
//! runs in a bounded pool (`hasher`); the secret file lives in `secret`.

pub mod accounts;
mod hasher;
mod secret;
mod verified;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use argon2::password_hash::rand_core::{OsRng, RngCore};
use bson::oid::ObjectId;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation, decode, encode};
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};

use crate::domain::{Password, new_token_id};
use crate::error::{Error, Result};
use crate::model::{UserDoc, UserId};
use crate::settings::AuthSettings;

use self::hasher::Hasher;
pub use self::secret::JWT_SECRET_FILE;
use self::verified::Verified;

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

/// The message for every failed log-in, whether the email or the password was wrong,
/// so the answer does not reveal which accounts exist.
pub const BAD_CREDENTIALS: &str = "invalid email or password";

#[derive(Debug, Serialize, Deserialize)]
struct Claims {
    sub: String,
    iat: i64,
    exp: i64,
    /// The session version the token was issued under ([`UserDoc::session_version`]).
    #[serde(default)]
    sv: i64,
    /// The token's id: an ObjectId whose time part is the token's expiry.
    /// Optional only so that an expired token from before ids is told it
    /// expired; a live token without one is invalid.
    #[serde(default)]
    jti: Option<String>,
}

/// A verified bearer token: whose it is, and what can end it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Token {
    /// The account it signs in.
    pub user: UserId,
    /// The session version it was issued under.
    pub session: i64,
    /// Its id, which `logOut` records to end it alone.
    pub id: ObjectId,
}

impl Token {
    /// Whether `user`'s record still accepts this token: the same account,
    /// not being deleted, the current session version, and not ended by
    /// `logOut`. Read from the record that loading the viewer reads anyway,
    /// so the check costs no store round trip of its own.
    pub fn accepted_by(&self, user: &UserDoc) -> bool {
        user.id == self.user
            && user.deleting.is_none()
            && user.session_version == self.session
            && !user.revoked_tokens.contains(&self.id)
    }
}

/// Issues and checks tokens and password hashes with the server's secret and costs.
#[derive(Clone)]
pub struct Auth {
    encoding: EncodingKey,
    decoding: DecodingKey,
    validation: Validation,
    token_ttl: Duration,
    hasher: Arc<Hasher>,
    /// A real hash of a random password, verified against when the email is
    /// unknown so that unknown and known emails take the same time.
    decoy_hash: Arc<String>,
    /// Tokens already verified in full (see `verified`).
    verified: Arc<Verified>,
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
            Some(secret) => secret.expose_secret().to_owned(),
            None => secret::load_or_create(data_dir)?,
        };
        let hasher = Hasher::new(
            settings.argon2_memory_kib,
            settings.argon2_iterations,
            settings.hash_concurrency(),
            settings.hash_queue,
        )?;
        Auth::build(secret.as_bytes(), settings.token_ttl(), hasher)
    }

    /// Builds the token and hashing machinery from a secret and costs, with
    /// the default hashing pool (one slot per core).
    pub fn new(secret: &[u8], token_ttl: Duration, cost: HashCost) -> Result<Self> {
        let defaults = AuthSettings::default();
        let hasher = Hasher::new(cost.memory_kib, cost.iterations, defaults.hash_concurrency(), defaults.hash_queue)?;
        Auth::build(secret, token_ttl, hasher)
    }

    fn build(secret: &[u8], token_ttl: Duration, hasher: Hasher) -> Result<Self> {
        if secret.len() < 16 {
            return Err(Error::internal("the JWT secret must be at least 16 bytes"));
        }
        let mut validation = Validation::new(Algorithm::HS256);
        validation.leeway = 5;
        validation.set_required_spec_claims(&["exp", "sub"]);
        let decoy_hash = hasher.hash_blocking(&random_secret_hex(16))?;
        Ok(Auth {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
            validation,
            token_ttl,
            hasher: Arc::new(hasher),
            decoy_hash: Arc::new(decoy_hash),
            verified: Arc::new(Verified::new()),
        })
    }

    /// Signs a token for `user` under its session version `session`, valid
    /// for the configured lifetime.
    pub fn issue(&self, user: UserId, session: i64) -> Result<String> {
        let now = chrono::Utc::now().timestamp();
        let ttl = i64::try_from(self.token_ttl.as_secs()).unwrap_or(i64::MAX);
        let exp = now.saturating_add(ttl);
        let claims = Claims { sub: user.to_hex(), iat: now, exp, sv: session, jti: Some(new_token_id(exp).to_hex()) };
        encode(&Header::new(Algorithm::HS256), &claims, &self.encoding)
            .map_err(|e| Error::internal_from("signing a token", e))
    }

    /// Checks a bearer token's signature and expiry. Whether its account
    /// still accepts it is [`Token::accepted_by`]'s question, asked of the
    /// account's record. A token from before tokens had ids is invalid.
    /// A token this process verified before skips the signature check, not
    /// the expiry (see `verified`).
    pub fn verify(&self, token: &str) -> Result<Token> {
        let now = jsonwebtoken::get_current_timestamp();
        if let Some(known) = self.verified.get(token, now, self.validation.leeway) {
            return Ok(known);
        }
        let data = decode::<Claims>(token, &self.decoding, &self.validation).map_err(|e| {
            let why = match e.kind() {
                jsonwebtoken::errors::ErrorKind::ExpiredSignature => "the token has expired",
                _ => "the token is invalid",
            };
            Error::Unauthenticated(why.into())
        })?;
        let invalid = || Error::Unauthenticated("the token is invalid".into());
        let verified = Token {
            user: UserId::parse(&data.claims.sub).ok_or_else(invalid)?,
            session: data.claims.sv,
            id: data
                .claims
                .jti
                .as_deref()
                .map(ObjectId::parse_str)
                .transpose()
                .map_err(|_| invalid())?
                .ok_or_else(|| Error::Unauthenticated("the token is from an older version: sign in again".into()))?,
        };
        if let Ok(exp) = u64::try_from(data.claims.exp) {
            self.verified.keep(token, verified, exp);
        }
        Ok(verified)
    }

    /// Hashes a password in the bounded hashing pool; `RATE_LIMITED` when its queue is full.
    pub async fn hash_password(&self, password: Password) -> Result<String> {
        self.hasher.hash(password.expose().to_owned()).await
    }

    /// Verifies a password against a stored hash, or against a decoy when the
    /// account does not exist. Both paths run the same argon2 work, so timing
    /// does not reveal which emails are registered.
    pub async fn verify_password(&self, password: String, hash: Option<String>) -> Result<bool> {
        let known = hash.is_some();
        let hash = hash.unwrap_or_else(|| self.decoy_hash.as_str().to_owned());
        let matches = self.hasher.verify(password, hash).await?;
        Ok(known && matches)
    }
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
