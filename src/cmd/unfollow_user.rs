//! `unfollowUser`: stop following a user.

use crate::model::UserId;

use super::{Command, Follow, actor, existing_user};
use crate::error::{Error, Result};
use crate::store::Tx;
use crate::store::events::Event;

/// Unfollows a user (idempotent).
///
/// Touches: `users` (read target, read follower), then, as needed, `users`
/// (pull from `following`, pull from `followers`).
#[derive(Debug, Clone, Copy)]
pub struct UnfollowUser {
    /// The signed-in user.
    pub follower: UserId,
    /// The user to stop following.
    pub target: UserId,
}

impl Command for UnfollowUser {
    type Output = Follow;
    const NAME: &'static str = "unfollowUser";

    fn events(&self, follow: &Follow) -> Vec<Event> {
        vec![Event::FollowChanged { follower: follow.follower.id, followee: follow.followee.id, following: false }]
    }

    fn written_bytes(&self) -> Option<usize> {
        Some(0)
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<Follow> {
        let (follower, target) = (self.follower, self.target);
        if follower == target {
            return Err(Error::bad_input("userId", "you cannot unfollow yourself"));
        }
        let mut followee = existing_user(tx, target).await?;
        let mut me = actor(tx, follower).await?;
        let before = me.following.len();
        me.following.retain(|u| *u != target);
        if me.following.len() != before {
            tx.replace(&me).await?;
        }
        let before = followee.followers.len();
        followee.followers.retain(|u| *u != follower);
        if followee.followers.len() != before {
            tx.replace(&followee).await?;
        }
        Ok(Follow { follower: me, followee })
    }
}
