//! The account service: signing up, logging in, changing the password and
//! ending sessions, with every limit that guards them, so a resolver only
//! passes the input through and wraps the result.
//!
//! - Sign-up: a per-address limit, the input parsed, a taken email refused
//!   before paying for a hash (the unique index still decides a race), then
//!   the `SignUp` command.
//! - Log-in: a per-address limit, then a growing back-off per (email,
//!   address) after repeated failures. A wrong password and an unknown email
//!   get the same answer after the same work (a verification against a
//!   dummy hash), so the answer does not reveal which emails exist.
//! - Password change: the same per-address limit and back-off as a log-in,
//!   the same argon2 work to verify the current password, then the
//!   `ChangePassword` command, which ends every earlier token, and a fresh
//!   token for the new session.
//! - Log-out: the `LogOut` command ends the presented token alone;
//!   `LogOutEverywhere` ends every token of the account. Both are stored on
//!   the account's record, which every token check reads, so every server
//!   process refuses the token from its next request.

use std::net::IpAddr;
use std::time::Duration;

use crate::auth::{Auth, BAD_CREDENTIALS, Token};
use crate::cmd::{ChangePassword, LogOut, LogOutEverywhere, SignUp};
use crate::domain::{Email, Password, UserName};
use crate::error::{Error, Result};
use crate::limits::{FailureBackoff, RateLimiter};
use crate::model::UserDoc;
use crate::settings::AuthSettings;
use crate::store::Store;

/// Signing up and logging in, with their limits. One per process.
#[derive(Debug)]
pub struct Accounts {
    auth: Auth,
    /// Sign-up attempts per client address.
    signups_per_ip: RateLimiter,
    /// Log-in attempts per client address.
    logins_per_ip: RateLimiter,
    /// Failed log-ins per (email, client address), with growing delays.
    login_failures: FailureBackoff,
}

/// A user who has just signed up or logged in, with a fresh token.
#[derive(Debug)]
pub struct SignedIn {
    /// The account.
    pub user: UserDoc,
    /// A bearer token for it.
    pub token: String,
}

impl Accounts {
    /// The service over `auth`, with the limits in `settings`.
    pub fn new(auth: Auth, settings: &AuthSettings) -> Self {
        let minute = Duration::from_secs(60);
        Accounts {
            auth,
            signups_per_ip: RateLimiter::new(settings.signups_per_ip_per_minute, minute),
            logins_per_ip: RateLimiter::new(settings.logins_per_ip_per_minute, minute),
            login_failures: FailureBackoff::new(settings.login_failures_before_backoff),
        }
    }

    /// Token and password machinery.
    pub fn auth(&self) -> &Auth {
        &self.auth
    }

    /// Creates an account from raw input and signs it in. A taken email is `CONFLICT`.
    pub async fn sign_up(
        &self,
        store: &Store,
        client: Option<IpAddr>,
        name: &str,
        email: &str,
        password: &str,
    ) -> Result<SignedIn> {
        if let Some(ip) = client {
            self.signups_per_ip.hit(&ip)?;
        }
        let name = UserName::parse(name)?;
        let email = Email::parse(email)?;
        let password = Password::parse(password)?;
        if store.user_by_email(email.as_str()).await?.is_some() {
            return Err(Error::email_taken());
        }
        let password_hash = self.auth.hash_password(password).await?;
        let user = store.run(SignUp { name, email, password_hash }).await?;
        self.signed_in(user)
    }

    /// Signs in with an email and password, or `UNAUTHENTICATED` (the same
    /// for an unknown email and a wrong password), or `RATE_LIMITED`.
    pub async fn log_in(
        &self,
        store: &Store,
        client: Option<IpAddr>,
        email: &str,
        password: String,
    ) -> Result<SignedIn> {
        if let Some(ip) = client {
            self.logins_per_ip.hit(&ip)?;
        }
        // An address that cannot be valid has no account and no back-off
        // entry, but costs the same verification.
        let email = Email::parse(email).ok();
        let key = email.as_ref().map(|e| (e.as_str(), client));
        if let Some(key) = &key {
            self.login_failures.check(key)?;
        }
        let user = match &email {
            Some(email) => store.user_by_email(email.as_str()).await?,
            None => None,
        };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        let verified = self.auth.verify_password(password, hash).await?;
        let (true, Some(user)) = (verified, user) else {
            if let Some(key) = &key {
                self.login_failures.fail(key)?;
            }
            return Err(Error::Unauthenticated(BAD_CREDENTIALS.into()));
        };
        if let Some(key) = &key {
            self.login_failures.succeed(key)?;
        }
        self.signed_in(user)
    }

    /// Changes the password of the account `token` signs in, given its
    /// current one: a wrong current password is `UNAUTHENTICATED` after the
    /// same argon2 work as a log-in, and counts toward the same back-off. On
    /// success every earlier token is refused, and the answer carries a
    /// fresh one.
    pub async fn change_password(
        &self,
        store: &Store,
        client: Option<IpAddr>,
        token: &Token,
        current: String,
        new: &str,
    ) -> Result<SignedIn> {
        if let Some(ip) = client {
            self.logins_per_ip.hit(&ip)?;
        }
        let new = Password::parse(new).map_err(|e| match e {
            Error::BadInput { message, .. } => {
                Error::bad_input("newPassword", message.replace("password", "newPassword"))
            }
            other => other,
        })?;
        let user = self.accepted(store, token).await?;
        let key = (user.email.as_str(), client);
        self.login_failures.check(&key)?;
        if !self.auth.verify_password(current, Some(user.password_hash.clone())).await? {
            self.login_failures.fail(&key)?;
            return Err(Error::Unauthenticated("the current password is wrong".into()));
        }
        self.login_failures.succeed(&key)?;
        let new_hash = self.auth.hash_password(new).await?;
        let cmd = ChangePassword { actor: user.id, verified_hash: user.password_hash.clone(), new_hash };
        let user = store.run(cmd).await?;
        self.signed_in(user)
    }

    /// Ends the presented token; the account's other tokens keep working.
    pub async fn log_out(&self, store: &Store, token: &Token) -> Result<()> {
        store.run(LogOut { actor: token.user, token: token.id }).await
    }

    /// Ends every token of the account, the presented one included.
    pub async fn log_out_everywhere(&self, store: &Store, token: &Token) -> Result<()> {
        store.run(LogOutEverywhere { actor: token.user }).await
    }

    /// The account `token` signs in, if its record still accepts the token
    /// ([`Token::accepted_by`]); `UNAUTHENTICATED` otherwise.
    async fn accepted(&self, store: &Store, token: &Token) -> Result<UserDoc> {
        let user = store.users_by_ids(&[token.user]).await?.pop();
        user.filter(|u| token.accepted_by(u)).ok_or(Error::Unauthenticated("sign in again".into()))
    }

    fn signed_in(&self, user: UserDoc) -> Result<SignedIn> {
        let token = self.auth.issue(user.id, user.session_version)?;
        Ok(SignedIn { user, token })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::auth::HashCost;
    use crate::store::embedded::EmbeddedStore;

    fn service(settings: &AuthSettings) -> Accounts {
        let cost = HashCost { memory_kib: 64, iterations: 1 };
        let auth = Auth::new(b"accounts-test-secret-0123456789", Duration::from_secs(60), cost).expect("auth");
        Accounts::new(auth, settings)
    }

    /// Sign-up parses its input and refuses a taken email; log-in answers an
    /// unknown email and a wrong password alike, and a right one with a token for the account.
    #[tokio::test]
    async fn sign_up_then_log_in() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::from(EmbeddedStore::open(dir.path()).expect("store"));
        let accounts = service(&AuthSettings::default());
        let ip = Some(IpAddr::from([127, 0, 0, 1]));
        let ann = accounts.sign_up(&store, ip, "Ann", "Ann@Example.com", "correct horse").await.expect("signed up");
        assert_eq!(accounts.auth().verify(&ann.token).ok().map(|t| t.user), Some(ann.user.id));
        let taken = accounts.sign_up(&store, ip, "Ann 2", "ann@example.com", "correct horse").await;
        assert!(matches!(taken, Err(Error::Conflict(_))), "{taken:?}");
        let bad = accounts.sign_up(&store, ip, "", "x", "y").await;
        assert!(matches!(bad, Err(Error::BadInput { .. })), "{bad:?}");

        let wrong = accounts.log_in(&store, ip, "ann@example.com", "wrong horse".into()).await;
        let unknown = accounts.log_in(&store, ip, "bob@example.com", "correct horse".into()).await;
        for refused in [&wrong, &unknown] {
            assert!(matches!(refused, Err(Error::Unauthenticated(m)) if m == BAD_CREDENTIALS), "{refused:?}");
        }
        let back = accounts.log_in(&store, ip, "ANN@example.com", "correct horse".into()).await.expect("logged in");
        assert_eq!(back.user.id, ann.user.id);
    }

    /// Sign-ups from one address past the per-minute limit are RATE_LIMITED, even invalid ones.
    #[tokio::test]
    async fn sign_ups_are_limited_per_address() {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::from(EmbeddedStore::open(dir.path()).expect("store"));
        let accounts = service(&AuthSettings { signups_per_ip_per_minute: 2, ..AuthSettings::default() });
        let ip = Some(IpAddr::from([10, 0, 0, 1]));
        for _ in 0..2 {
            assert!(!matches!(accounts.sign_up(&store, ip, "", "", "").await, Err(Error::RateLimited { .. })));
        }
        let third = accounts.sign_up(&store, ip, "Cy", "cy@example.com", "correct horse").await;
        assert!(matches!(third, Err(Error::RateLimited { .. })), "{third:?}");
        let elsewhere =
            accounts.sign_up(&store, Some(IpAddr::from([10, 0, 0, 2])), "Cy", "cy@example.com", "correct horse");
        assert!(elsewhere.await.is_ok(), "another address is not limited");
    }
}
