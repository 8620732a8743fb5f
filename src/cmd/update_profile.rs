//! `updateProfile`: change the viewer's name or bio.

use crate::model::UserId;

use super::{Command, actor};
use crate::domain::ProfileChanges;
use crate::error::Result;
use crate::model::UserDoc;
use crate::store::Tx;

/// Changes the signed-in user's name and/or bio; nobody else's.
///
/// Touches: `users` (read, replace the actor only).
#[derive(Debug, Clone)]
pub struct UpdateProfile {
    /// The signed-in user, whose profile changes.
    pub actor: UserId,
    /// What changes.
    pub changes: ProfileChanges,
}

impl Command for UpdateProfile {
    type Output = UserDoc;
    const NAME: &'static str = "updateProfile";

    fn written_bytes(&self) -> Option<usize> {
        Some(self.changes.name().map_or(0, |n| n.as_str().len()) + self.changes.bio().map_or(0, |b| b.as_str().len()))
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<UserDoc> {
        let mut user = actor(tx, self.actor).await?;
        if let Some(name) = self.changes.name() {
            name.as_str().clone_into(&mut user.name);
        }
        if let Some(bio) = self.changes.bio() {
            user.bio = bio.stored();
        }
        tx.replace(&user).await?;
        Ok(user)
    }
}
