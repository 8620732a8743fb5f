//! `createComment`: comment on a post.

use super::{ACCOUNT_GONE, Command, referenced_post};
use crate::domain::CommentBody;
use crate::error::{Error, Result};
use crate::model::{CommentDoc, CommentId, PostId, UserId};
use crate::store::Tx;
use crate::store::events::Event;

/// Comments on a post as `author`.
///
/// Touches: `posts` (read), `users` (touch the post's author, so a
/// concurrent staged deletion of that account conflicts), `users` (touch the
/// comment's author: it must exist, and a concurrent deletion of it must
/// conflict; see [`Tx::touch_user`]),
/// `comments` (insert), `posts` (`commentCount` + 1).
#[derive(Debug, Clone)]
pub struct CreateComment {
    /// The signed-in author.
    pub author: UserId,
    /// The post commented on.
    pub post: PostId,
    /// The comment's text.
    pub body: CommentBody,
}

impl Command for CreateComment {
    type Output = CommentDoc;
    const NAME: &'static str = "createComment";

    fn events(&self, comment: &CommentDoc) -> Vec<Event> {
        vec![Event::CommentAdded(std::sync::Arc::new(comment.clone())), Event::PostChanged(comment.post)]
    }

    fn written_bytes(&self) -> Option<usize> {
        Some(self.body.as_str().len())
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<CommentDoc> {
        let mut post = referenced_post(tx, self.post).await?;
        if !tx.touch_user(self.author).await? {
            return Err(Error::Unauthenticated(ACCOUNT_GONE.into()));
        }
        let comment = CommentDoc {
            id: CommentId::new(),
            body: self.body.as_str().to_owned(),
            post: self.post,
            author: self.author,
            created_at: tx.now(),
        };
        tx.insert(&comment).await?;
        post.comment_count += 1;
        tx.replace(&post).await?;
        Ok(comment)
    }
}
