//! `deletePost`: delete a post and everything hanging off it.

use bson::oid::ObjectId;

use crate::model::{CommentId, PostId, UserId};

use super::plan::plan_post;
use super::{Command, existing_post};
use crate::error::{Error, Result};
use crate::model::DeletionJobDoc;
use crate::store::events::Event;
use crate::store::{CommentsOf, Tx};

/// Deletes a post with its comments and pulls it from its author's `posts`;
/// only the author may.
///
/// Touches, in order: `posts` (read), `users` (the author: a staged
/// deletion of it hides the post), the plan's reads (`comments` by post,
/// `users` the author), `comments` (delete those on the post),
/// `posts` (delete), `users` (pull the id out of the author's `posts` with
/// [`Tx::pull_user_post`]).
///
/// When that is more than `budget` documents, the deletion is staged: this
/// transaction reads the comments' references, tombstones the post
/// (`posts`), pulls it from the author's `posts` (`users`) and records the
/// job (`deletionJobs`, `deletionJobParts`); the reaper deletes the
/// comments and the post.
#[derive(Debug, Clone)]
pub struct DeletePost {
    /// The signed-in user.
    pub actor: UserId,
    /// The post to delete.
    pub id: PostId,
    /// A preview's plan token: when given, the plan is recomputed first, in
    /// this transaction, and any difference refuses the delete (`PLAN_CHANGED`).
    pub expected_plan: Option<String>,
    /// Most documents the cascade may write in this transaction; a larger plan is staged.
    pub budget: usize,
}

/// What `deletePost` removed, read inside its transaction.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletedPost {
    /// The post's id.
    pub post: PostId,
    /// Its author, whose `posts` (and so `postCount`) changed.
    pub author: UserId,
    /// The comments deleted with it, by id.
    pub comments: Vec<CommentId>,
    /// The staged deletion's job, when the plan was over the budget.
    pub job: Option<ObjectId>,
}

impl Command for DeletePost {
    type Output = DeletedPost;
    const NAME: &'static str = "deletePost";

    /// The post is gone for readers from this commit on, staged or not.
    fn events(&self, deleted: &DeletedPost) -> Vec<Event> {
        vec![Event::PostDeleted(deleted.post)]
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<DeletedPost> {
        let post = existing_post(tx, self.id).await?;
        if post.author != self.actor {
            return Err(Error::Forbidden("only the author may delete this post".into()));
        }
        let plan = plan_post(tx, &post).await?;
        plan.confirm(self.expected_plan.as_deref())?;
        if plan.writes() > self.budget {
            let mut refs = tx.comment_refs(CommentsOf::Post, &[post.id.oid()]).await?;
            refs.sort_unstable_by_key(|r| r.id);
            let job = DeletionJobDoc::for_post(&post, &refs, tx.now());
            let (id, author) = (post.id, post.author);
            let mut post = post;
            post.deleting = Some(job.id);
            tx.replace(&post).await?;
            tx.pull_user_post(author, id).await?;
            tx.insert_job(&job).await?;
            return Ok(DeletedPost { post: id, author, comments: plan.comments, job: Some(job.id) });
        }
        let gone = tx.delete_comments_of(CommentsOf::Post, &[self.id.oid()]).await?;
        let mut comments: Vec<CommentId> = gone.iter().map(|c| c.id).collect();
        tx.delete_one(self.id).await?;
        // A missing author (drifted data) has no `posts` to pull from.
        tx.pull_user_post(post.author, self.id).await?;
        comments.sort_unstable();
        Ok(DeletedPost { post: self.id, author: post.author, comments, job: None })
    }
}
