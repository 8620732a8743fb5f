//! `deleteComment`: delete one comment.

use bson::oid::ObjectId;

use super::Command;
use crate::error::{Error, Result};
use crate::store::Tx;

/// Deletes a comment; its author or the post's author may.
///
/// Touches: `comments` (read), `posts` (read), `comments` (delete),
/// `posts` (`commentCount` - 1).
#[derive(Debug, Clone, Copy)]
pub struct DeleteComment {
    /// The signed-in user.
    pub actor: ObjectId,
    /// The comment to delete.
    pub id: ObjectId,
}

impl Command for DeleteComment {
    type Output = ObjectId;
    const NAME: &'static str = "deleteComment";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<ObjectId> {
        let comment = tx.comment(self.id).await?.ok_or_else(|| Error::not_found("comment", self.id))?;
        let post = tx.post(comment.post).await?;
        let post_author = post.as_ref().map(|p| p.author);
        if comment.author != self.actor && post_author != Some(self.actor) {
            return Err(Error::Forbidden("only the comment's author or the post's author may delete it".into()));
        }
        tx.delete_comment(self.id).await?;
        if let Some(mut post) = post {
            post.comment_count = (post.comment_count - 1).max(0);
            tx.replace_post(&post).await?;
        }
        Ok(self.id)
    }
}
