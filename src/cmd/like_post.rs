//! `likePost`: like a post.

use crate::model::{PostId, UserId};

use super::{ACCOUNT_GONE, Command, referenced_post};
use crate::error::{Error, Result};
use crate::model::PostDoc;
use crate::store::Tx;
use crate::store::events::Event;

/// Likes a post (idempotent).
///
/// Touches: `posts` (read), `users` (touch the post's author, so a
/// concurrent staged deletion of that account conflicts), `users` (touch the liker: it must exist, and a
/// concurrent deletion of it must conflict; see [`Tx::touch_user`]), then
/// only if not yet liked: `posts` (push into `likedBy`).
#[derive(Debug, Clone, Copy)]
pub struct LikePost {
    /// The signed-in user.
    pub liker: UserId,
    /// The post liked.
    pub post: PostId,
}

impl Command for LikePost {
    type Output = PostDoc;
    const NAME: &'static str = "likePost";

    fn events(&self, post: &PostDoc) -> Vec<Event> {
        vec![Event::PostChanged(post.id)]
    }

    fn written_bytes(&self) -> Option<usize> {
        Some(0)
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<PostDoc> {
        let mut post = referenced_post(tx, self.post).await?;
        if !tx.touch_user(self.liker).await? {
            return Err(Error::Unauthenticated(ACCOUNT_GONE.into()));
        }
        if !post.liked_by.contains(&self.liker) {
            post.liked_by.push(self.liker);
            tx.replace(&post).await?;
        }
        Ok(post)
    }
}
