//! `updatePost`: edit a post.

use crate::model::{PostId, UserId};

use super::{Command, existing_post};
use crate::domain::PostChanges;
use crate::error::{Error, Result};
use crate::model::PostDoc;
use crate::store::Tx;
use crate::store::events::Event;

/// Edits a post's title and/or body; only its author may.
///
/// Touches: `posts` (read, replace).
#[derive(Debug, Clone)]
pub struct UpdatePost {
    /// The signed-in user.
    pub actor: UserId,
    /// The post to edit.
    pub id: PostId,
    /// What changes.
    pub changes: PostChanges,
}

impl Command for UpdatePost {
    type Output = PostDoc;
    const NAME: &'static str = "updatePost";

    fn events(&self, post: &PostDoc) -> Vec<Event> {
        vec![Event::PostChanged(post.id)]
    }

    fn written_bytes(&self) -> Option<usize> {
        Some(self.changes.title().map_or(0, |t| t.as_str().len()) + self.changes.body().map_or(0, |b| b.as_str().len()))
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<PostDoc> {
        let mut post = existing_post(tx, self.id).await?;
        if post.author != self.actor {
            return Err(Error::Forbidden("only the author may edit this post".into()));
        }
        if let Some(title) = self.changes.title() {
            post.title = title.as_str().to_owned();
        }
        if let Some(body) = self.changes.body() {
            post.body = body.as_str().to_owned();
        }
        post.updated_at = tx.now();
        tx.replace(&post).await?;
        Ok(post)
    }
}
