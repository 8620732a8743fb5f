//! `deleteComment`: delete one comment.

use crate::model::{CommentId, PostId, UserId};

use super::{Command, being_deleted};
use crate::error::{Error, Result};
use crate::store::Tx;
use crate::store::events::Event;

/// Deletes a comment; its author or the post's author may.
///
/// Touches: `comments` (read), `posts` (read), `users` (read the comment's
/// and the post's authors: a staged deletion of either hides the comment),
/// `comments` (delete), `posts` (`commentCount` - 1).
#[derive(Debug, Clone, Copy)]
pub struct DeleteComment {
    /// The signed-in user.
    pub actor: UserId,
    /// The comment to delete.
    pub id: CommentId,
}

/// What `deleteComment` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedComment {
    /// The comment's id.
    pub comment: CommentId,
    /// The post it was on, whose `commentCount` dropped (absent if the post was already gone).
    pub post: Option<PostId>,
}

impl Command for DeleteComment {
    type Output = DeletedComment;
    const NAME: &'static str = "deleteComment";

    fn events(&self, deleted: &DeletedComment) -> Vec<Event> {
        deleted.post.map(Event::PostChanged).into_iter().collect()
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<DeletedComment> {
        let comment = tx.comment(self.id).await?.ok_or_else(|| Error::not_found("comment", self.id))?;
        let post = tx.post(comment.post).await?;
        let post_author = post.as_ref().map(|p| p.author);
        // A staged deletion hides the comment: its post, or either account, is being deleted.
        let hidden = post.as_ref().is_some_and(|p| p.deleting.is_some())
            || being_deleted(tx, comment.author).await?
            || match post_author {
                Some(a) if a != comment.author => being_deleted(tx, a).await?,
                _ => false,
            };
        if hidden {
            return Err(Error::not_found("comment", self.id));
        }
        if comment.author != self.actor && post_author != Some(self.actor) {
            return Err(Error::Forbidden("only the comment's author or the post's author may delete it".into()));
        }
        tx.delete_one(self.id).await?;
        let post_id = post.as_ref().map(|p| p.id);
        if let Some(mut post) = post {
            post.comment_count = (post.comment_count - 1).max(0);
            tx.replace(&post).await?;
        }
        Ok(DeletedComment { comment: self.id, post: post_id })
    }
}
