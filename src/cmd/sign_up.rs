//! `signUp`: create an account.

use crate::model::UserId;

use super::Command;
use crate::domain::{Email, UserName};
use crate::error::Result;
use crate::model::UserDoc;
use crate::store::Tx;

/// Creates an account whose password was already hashed (hashing is slow
/// and must not run inside a transaction).
///
/// Touches: `users` (insert; the unique email is checked by the store).
#[derive(Debug, Clone)]
pub struct SignUp {
    /// Display name.
    pub name: UserName,
    /// Normalised email; a taken one is `CONFLICT`.
    pub email: Email,
    /// argon2id PHC string.
    pub password_hash: String,
}

impl Command for SignUp {
    type Output = UserDoc;
    const NAME: &'static str = "signUp";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<UserDoc> {
        let user = UserDoc::new(
            UserId::new(),
            self.name.as_str().to_owned(),
            self.email.as_str().to_owned(),
            self.password_hash.clone(),
            tx.now(),
        );
        tx.insert(&user).await?;
        Ok(user)
    }
}
