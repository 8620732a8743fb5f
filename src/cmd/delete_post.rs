//! `deletePost`: delete a post and everything hanging off it.

use bson::oid::ObjectId;

use super::plan::plan_post;
use super::{Command, existing_post};
use crate::error::{Error, Result};
use crate::store::Tx;

/// Deletes a post with its comments and pulls it from its author's `posts`;
/// only the author may.
///
/// Touches, in order: `posts` (read), with `expected_plan` the plan's reads
/// (`comments` by post, `users` the author), `comments` (delete those on the post),
/// `posts` (delete), `users` (pull the id out of the author's `posts` with
/// [`Tx::pull_user_post`]).
#[derive(Debug, Clone)]
pub struct DeletePost {
    /// The signed-in user.
    pub actor: ObjectId,
    /// The post to delete.
    pub id: ObjectId,
    /// A preview's plan token: when given, the plan is recomputed first, in
    /// this transaction, and any difference refuses the delete (`PLAN_CHANGED`).
    pub expected_plan: Option<String>,
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
        if let Some(expected) = &self.expected_plan {
            plan_post(tx, &post).await?.confirm(Some(expected))?;
        }
        let mut comments = tx.delete_comments_on_posts(&[self.id]).await?;
        tx.delete_posts(&[self.id]).await?;
        // A missing author (drifted data) has no `posts` to pull from.
        tx.pull_user_post(post.author, self.id).await?;
        comments.sort_unstable();
        Ok(DeletedPost { post: self.id, author: post.author, comments })
    }
}
