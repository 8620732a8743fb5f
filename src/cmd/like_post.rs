//! `likePost`: like a post.

use bson::oid::ObjectId;

use super::{Command, actor, existing_post};
use crate::error::Result;
use crate::model::PostDoc;
use crate::store::Tx;

/// Likes a post (idempotent).
///
/// Touches: `posts` (read), `users` (read liker), then only if not yet
/// liked: `posts` (push into `likedBy`), `users` (`rev` + 1, so a concurrent
/// deletion of the liker conflicts).
#[derive(Debug, Clone, Copy)]
pub struct LikePost {
    /// The signed-in user.
    pub liker: ObjectId,
    /// The post liked.
    pub post: ObjectId,
}

impl Command for LikePost {
    type Output = PostDoc;
    const NAME: &'static str = "likePost";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<PostDoc> {
        let mut post = existing_post(tx, self.post).await?;
        let mut user = actor(tx, self.liker).await?;
        if !post.liked_by.contains(&self.liker) {
            post.liked_by.push(self.liker);
            tx.replace_post(&post).await?;
            user.rev += 1;
            tx.replace_user(&user).await?;
        }
        Ok(post)
    }
}
