//! Fault injection for atomicity tests: a command decorator whose transaction
//! handle fails a chosen write. It lives here, in the test crate, so nothing
//! in the server can arm a fault, and it fails only the command it wraps.

use blogql::cmd::Command;
use blogql::error::{Error, Result};
use blogql::model::{CommentDoc, DeletionJobDoc, JobHeader, JobPart, PostDoc, UserDoc};
use blogql::store::{CommentRef, CommentsOf, Reads, RemovedComment, Tx};
use bson::DateTime;
use bson::oid::ObjectId;

/// Runs `cmd`, but write number `write` (1-based) of its transaction fails
/// with an internal error, which must roll the whole transaction back.
pub struct FailAt<C> {
    /// Which write fails.
    pub write: usize,
    /// The command under test.
    pub cmd: C,
}

impl<C: Command> Command for FailAt<C> {
    type Output = C::Output;
    const NAME: &'static str = C::NAME;

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<C::Output> {
        let mut faulty = FaultyTx { inner: tx, fail_at: self.write, done: 0 };
        self.cmd.apply(&mut faulty).await
    }
}

/// A [`Tx`] that counts writes and fails the chosen one; reads pass through.
struct FaultyTx<'a, T> {
    inner: &'a mut T,
    fail_at: usize,
    done: usize,
}

impl<T> FaultyTx<'_, T> {
    fn step(&mut self, what: &str) -> Result<()> {
        self.done += 1;
        if self.done == self.fail_at {
            return Err(Error::internal(format!("injected fault at write {} ({what})", self.done)));
        }
        Ok(())
    }
}

impl<T: Tx> Reads for FaultyTx<'_, T> {
    async fn user_with_posts(&mut self, id: ObjectId) -> Result<Option<UserDoc>> {
        self.inner.user_with_posts(id).await
    }
    async fn user(&mut self, id: ObjectId) -> Result<Option<UserDoc>> {
        self.inner.user(id).await
    }

    async fn post(&mut self, id: ObjectId) -> Result<Option<PostDoc>> {
        self.inner.post(id).await
    }

    async fn comment(&mut self, id: ObjectId) -> Result<Option<CommentDoc>> {
        self.inner.comment(id).await
    }

    async fn post_ids_by_author(&mut self, author: ObjectId) -> Result<Vec<ObjectId>> {
        self.inner.post_ids_by_author(author).await
    }

    async fn comment_ids_on_posts(&mut self, posts: &[ObjectId]) -> Result<Vec<ObjectId>> {
        self.inner.comment_ids_on_posts(posts).await
    }

    async fn comment_ids_by_author(&mut self, author: ObjectId) -> Result<Vec<ObjectId>> {
        self.inner.comment_ids_by_author(author).await
    }

    async fn post_ids_liked_by(&mut self, user: ObjectId) -> Result<Vec<ObjectId>> {
        self.inner.post_ids_liked_by(user).await
    }

    async fn user_ids_following_or_followed_by(&mut self, user: ObjectId) -> Result<Vec<ObjectId>> {
        self.inner.user_ids_following_or_followed_by(user).await
    }

    async fn comment_refs(&mut self, of: CommentsOf, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        self.inner.comment_refs(of, parents).await
    }
}

impl<T: Tx> Tx for FaultyTx<'_, T> {
    async fn push_user_post(&mut self, user: ObjectId, post: ObjectId) -> Result<bool> {
        self.step("push user post")?;
        self.inner.push_user_post(user, post).await
    }

    async fn pull_user_post(&mut self, user: ObjectId, post: ObjectId) -> Result<bool> {
        self.step("pull user post")?;
        self.inner.pull_user_post(user, post).await
    }

    async fn touch_user(&mut self, id: ObjectId) -> Result<bool> {
        self.step("touch user")?;
        self.inner.touch_user(id).await
    }

    async fn insert_user(&mut self, user: &UserDoc) -> Result<()> {
        self.step("insert user")?;
        self.inner.insert_user(user).await
    }

    async fn insert_post(&mut self, post: &PostDoc) -> Result<()> {
        self.step("insert post")?;
        self.inner.insert_post(post).await
    }

    async fn insert_comment(&mut self, comment: &CommentDoc) -> Result<()> {
        self.step("insert comment")?;
        self.inner.insert_comment(comment).await
    }

    async fn replace_user(&mut self, user: &UserDoc) -> Result<()> {
        self.step("replace user")?;
        self.inner.replace_user(user).await
    }

    async fn replace_post(&mut self, post: &PostDoc) -> Result<()> {
        self.step("replace post")?;
        self.inner.replace_post(post).await
    }

    async fn delete_comments_on_posts(&mut self, posts: &[ObjectId]) -> Result<Vec<ObjectId>> {
        self.step("delete comments on posts")?;
        self.inner.delete_comments_on_posts(posts).await
    }

    async fn delete_comments_by_author(&mut self, author: ObjectId) -> Result<Vec<RemovedComment>> {
        self.step("delete comments by author")?;
        self.inner.delete_comments_by_author(author).await
    }

    async fn delete_comment(&mut self, id: ObjectId) -> Result<bool> {
        self.step("delete comment")?;
        self.inner.delete_comment(id).await
    }

    async fn add_comment_counts(&mut self, deltas: &[(ObjectId, i64)]) -> Result<()> {
        self.step("add comment counts")?;
        self.inner.add_comment_counts(deltas).await
    }

    async fn delete_posts(&mut self, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        self.step("delete posts")?;
        self.inner.delete_posts(ids).await
    }

    async fn delete_user(&mut self, id: ObjectId) -> Result<bool> {
        self.step("delete user")?;
        self.inner.delete_user(id).await
    }

    async fn delete_comments(&mut self, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        self.step("delete comments")?;
        self.inner.delete_comments(ids).await
    }

    async fn pull_liker(&mut self, user: ObjectId, posts: &[ObjectId]) -> Result<()> {
        self.step("pull liker from posts")?;
        self.inner.pull_liker(user, posts).await
    }

    async fn pull_follow_refs(&mut self, user: ObjectId, users: &[ObjectId]) -> Result<()> {
        self.step("pull follow refs from users")?;
        self.inner.pull_follow_refs(user, users).await
    }

    async fn insert_job(&mut self, job: &DeletionJobDoc) -> Result<()> {
        self.step("insert job")?;
        self.inner.insert_job(job).await
    }

    async fn job(&mut self, id: ObjectId) -> Result<Option<JobHeader>> {
        self.inner.job(id).await
    }

    async fn job_part(&mut self, job: ObjectId, seq: i64) -> Result<Option<JobPart>> {
        self.inner.job_part(job, seq).await
    }

    async fn replace_job(&mut self, job: &JobHeader) -> Result<()> {
        self.step("replace job")?;
        self.inner.replace_job(job).await
    }

    async fn delete_job(&mut self, job: &JobHeader) -> Result<bool> {
        self.step("delete job")?;
        self.inner.delete_job(job).await
    }

    fn now(&self) -> DateTime {
        self.inner.now()
    }
}
