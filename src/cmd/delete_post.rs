//! `deletePost`: delete a post and everything hanging off it.

use bson::oid::ObjectId;

use super::{Command, existing_post};
use crate::error::{Error, Result};
use crate::store::Tx;

/// Deletes a post with its comments and pulls it from its author's `posts`;
/// only the author may.
///
/// Touches, in order: `posts` (read), `comments` (delete those on the post),
/// `posts` (delete), `users` (read author, pull the id out of `posts`).
#[derive(Debug, Clone, Copy)]
pub struct DeletePost {
    /// The signed-in user.
    pub actor: ObjectId,
    /// The post to delete.
    pub id: ObjectId,
}

/// What `deletePost` removed, read inside its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedPost {
    /// The post's id.
    pub post: ObjectId,
    /// Its author, whose `posts` (and so `postCount`) changed.
    pub author: ObjectId,
    /// The comments deleted with it, by id.
    pub comments: Vec<ObjectId>,
}

impl Command for DeletePost {
    type Output = DeletedPost;
    const NAME: &'static str = "deletePost";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<DeletedPost> {
        let post = existing_post(tx, self.id).await?;
        if post.author != self.actor {
            return Err(Error::Forbidden("only the author may delete this post".into()));
        }
        let mut comments = tx.delete_comments_on_posts(&[self.id]).await?;
        tx.delete_posts(&[self.id]).await?;
        if let Some(mut author) = tx.user(post.author).await? {
            author.posts.retain(|p| *p != self.id);
            tx.replace_user(&author).await?;
        }
        comments.sort_unstable();
        Ok(DeletedPost { post: self.id, author: post.author, comments })
    }
}
