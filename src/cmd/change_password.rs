//! `changePassword`: a new password, and the end of every earlier session.

use crate::model::UserId;

use super::{Command, actor};
use crate::error::{Error, Result};
use crate::model::UserDoc;
use crate::store::Tx;

/// Replaces the signed-in user's password hash and moves the user's session
/// version on, so every token issued before it is refused from the commit
/// on. The account service verified the current password against
/// `verified_hash` before it hashed the new one; if the hash changed since
/// (a concurrent change), the current password is no longer current and
/// this is `UNAUTHENTICATED`.
///
/// Touches: `users` (read, replace the actor only).
#[derive(Debug, Clone)]
pub struct ChangePassword {
    /// The signed-in user.
    pub actor: UserId,
    /// The hash the current password was verified against.
    pub verified_hash: String,
    /// The new password's hash.
    pub new_hash: String,
}

impl Command for ChangePassword {
    type Output = UserDoc;
    const NAME: &'static str = "changePassword";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<UserDoc> {
        let mut user = actor(tx, self.actor).await?;
        if user.password_hash != self.verified_hash {
            return Err(Error::Unauthenticated("the current password is wrong".into()));
        }
        user.password_hash.clone_from(&self.new_hash);
        user.session_version += 1;
        // Every ended token is of an older version now.
        user.revoked_tokens.clear();
        tx.replace(&user).await?;
        Ok(user)
    }
}
