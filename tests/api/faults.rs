//! Fault injection for atomicity tests: a command decorator whose transaction
//! handle fails a chosen write. It lives here, in the test crate, so nothing
//! in the server can arm a fault, and it fails only the command it wraps.

use blogql::cmd::Command;
use blogql::error::{Error, Result};
use blogql::model::{DeletionJobDoc, JobHeader, JobPart};
use blogql::model::{PostId, UserId};
use blogql::store::{AnyDoc, CommentRef, CommentsOf, DocRef, HeldIn, IdsOf, Kind, ListChange, Reads, Tx};
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
    async fn find(&mut self, kind: Kind, id: ObjectId) -> Result<Option<AnyDoc>> {
        self.inner.find(kind, id).await
    }

    async fn ids(&mut self, question: IdsOf<'_>) -> Result<Vec<ObjectId>> {
        self.inner.ids(question).await
    }

    async fn comment_refs(&mut self, of: CommentsOf, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        self.inner.comment_refs(of, parents).await
    }
}

impl<T: Tx> Tx for FaultyTx<'_, T> {
    async fn touch_user(&mut self, id: UserId) -> Result<bool> {
        self.step("touch user")?;
        self.inner.touch_user(id).await
    }

    async fn list_user_post(&mut self, user: UserId, post: PostId, change: ListChange) -> Result<bool> {
        self.step("list user post")?;
        self.inner.list_user_post(user, post, change).await
    }

    async fn insert_doc(&mut self, doc: DocRef<'_>) -> Result<()> {
        self.step("insert")?;
        self.inner.insert_doc(doc).await
    }

    async fn replace_doc(&mut self, doc: DocRef<'_>) -> Result<()> {
        self.step("replace")?;
        self.inner.replace_doc(doc).await
    }

    async fn delete_ids(&mut self, kind: Kind, ids: &[ObjectId]) -> Result<Vec<ObjectId>> {
        self.step("delete")?;
        self.inner.delete_ids(kind, ids).await
    }

    async fn delete_comments_of(&mut self, of: CommentsOf, parents: &[ObjectId]) -> Result<Vec<CommentRef>> {
        self.step("delete comments of")?;
        self.inner.delete_comments_of(of, parents).await
    }

    async fn add_comment_counts(&mut self, deltas: &[(PostId, i64)]) -> Result<()> {
        self.step("add comment counts")?;
        self.inner.add_comment_counts(deltas).await
    }

    async fn pull_refs(&mut self, user: UserId, held: HeldIn, ids: &[ObjectId]) -> Result<()> {
        self.step("pull refs")?;
        self.inner.pull_refs(user, held, ids).await
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
