//! `unlikePost`: withdraw a like.

use crate::model::{PostId, UserId};

use super::{Command, actor, existing_post};
use crate::error::Result;
use crate::model::PostDoc;
use crate::store::Tx;
use crate::store::events::Event;

/// Withdraws a like (idempotent). Removing a reference needs no write to the liker.
///
/// Touches: `posts` (read), `users` (read), then only if it was liked:
/// `posts` (pull from `likedBy`).
#[derive(Debug, Clone, Copy)]
pub struct UnlikePost {
    /// The signed-in user.
    pub liker: UserId,
    /// The post no longer liked.
    pub post: PostId,
}

impl Command for UnlikePost {
    type Output = PostDoc;
    const NAME: &'static str = "unlikePost";

    fn events(&self, post: &PostDoc) -> Vec<Event> {
        vec![Event::PostChanged(post.id)]
    }

    fn written_bytes(&self) -> Option<usize> {
        Some(0)
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<PostDoc> {
        let mut post = existing_post(tx, self.post).await?;
        actor(tx, self.liker).await?;
        if post.liked_by.contains(&self.liker) {
            post.liked_by.retain(|u| *u != self.liker);
            tx.replace(&post).await?;
        }
        Ok(post)
    }
}
