//! `followUser`: follow another user.

use crate::model::UserId;

use super::{Command, Follow, actor, existing_user};
use crate::error::{Error, Result};
use crate::store::Tx;
use crate::store::events::Event;

/// The most users one account may follow (Mastodon caps it at 7,500, X at
/// 5,000 before its ratio rules): the home feed reads one index range per
/// followee in the worst case, so this bounds what one `feed` request costs.
pub const MAX_FOLLOWING: usize = 5_000;

/// Follows a user (idempotent); following yourself is refused before any
/// read, and a new follow past [`MAX_FOLLOWING`] is `FORBIDDEN`.
///
/// Touches: `users` (read target), `users` (read follower), then, as needed:
/// `users` (push into the follower's `following`), `users` (push into the
/// target's `followers`). Both sides are written, so a concurrent deletion
/// of either conflicts.
#[derive(Debug, Clone, Copy)]
pub struct FollowUser {
    /// The signed-in user.
    pub follower: UserId,
    /// The user to follow.
    pub target: UserId,
}

impl Command for FollowUser {
    type Output = Follow;
    const NAME: &'static str = "followUser";

    fn events(&self, follow: &Follow) -> Vec<Event> {
        vec![Event::FollowChanged { follower: follow.follower.id, followee: follow.followee.id, following: true }]
    }

    fn written_bytes(&self) -> Option<usize> {
        Some(0)
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<Follow> {
        let (follower, target) = (self.follower, self.target);
        if follower == target {
            return Err(Error::bad_input("userId", "you cannot follow yourself"));
        }
        let mut followee = existing_user(tx, target).await?;
        let mut me = actor(tx, follower).await?;
        if !me.following.contains(&target) {
            if me.following.len() >= MAX_FOLLOWING {
                return Err(Error::Forbidden(
                    format!("you follow {MAX_FOLLOWING} users, the most one account may; unfollow someone first")
                        .into(),
                ));
            }
            me.following.push(target);
            tx.replace(&me).await?;
        }
        if !followee.followers.contains(&follower) {
            followee.followers.push(follower);
            tx.replace(&followee).await?;
        }
        Ok(Follow { follower: me, followee })
    }
}
