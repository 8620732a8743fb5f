//! `logOutEverywhere`: end every token of the viewer.

use crate::model::UserId;

use super::{Command, actor};
use crate::error::Result;
use crate::store::Tx;

/// Moves the signed-in user's session version on, so every token issued
/// until now is refused, on every server process, from the commit on.
///
/// Touches: `users` (read, replace the actor only).
#[derive(Debug, Clone)]
pub struct LogOutEverywhere {
    /// The signed-in user.
    pub actor: UserId,
}

impl Command for LogOutEverywhere {
    type Output = ();
    const NAME: &'static str = "logOutEverywhere";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<()> {
        let mut user = actor(tx, self.actor).await?;
        user.session_version += 1;
        user.revoked_tokens.clear();
        tx.replace(&user).await
    }
}
