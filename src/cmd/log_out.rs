//! `logOut`: end one token.

use bson::oid::ObjectId;

use crate::model::UserId;

use super::{Command, actor};
use crate::domain::token_expired;
use crate::error::Result;
use crate::store::Tx;

/// Most ended tokens one account keeps at a time. Each stays only until its
/// token would expire anyway; past this many at once (thousands of log-ins
/// within one token lifetime), the account's sessions all end instead, which
/// errs on the side of refusing.
pub const MAX_ENDED_TOKENS: usize = 1_000;

/// Ends the token with id `token` of the signed-in user; the user's other
/// tokens keep working. Expired entries are dropped on the way, so the list
/// the viewer check reads stays small.
///
/// Touches: `users` (read, replace the actor only).
#[derive(Debug, Clone)]
pub struct LogOut {
    /// The signed-in user.
    pub actor: UserId,
    /// The id of the token presented.
    pub token: ObjectId,
}

impl Command for LogOut {
    type Output = ();
    const NAME: &'static str = "logOut";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<()> {
        let mut user = actor(tx, self.actor).await?;
        let now = tx.now();
        user.revoked_tokens.retain(|t| !token_expired(t, now));
        if !user.revoked_tokens.contains(&self.token) {
            user.revoked_tokens.push(self.token);
        }
        if user.revoked_tokens.len() > MAX_ENDED_TOKENS {
            user.session_version += 1;
            user.revoked_tokens.clear();
        }
        tx.replace(&user).await
    }
}
