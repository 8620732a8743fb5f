//! `ReapDeletion`: one bounded step of a staged deletion.

use bson::oid::ObjectId;

use super::Command;
use crate::error::Result;
use crate::model::DeletionKind;
use crate::store::Tx;

/// Deletes the next at most `budget` documents of a staged deletion, and
/// records how far it got in the same transaction, so a crash between two
/// steps resumes where the last commit left off, and a step that runs
/// twice deletes nothing twice.
///
/// Touches, in order: `deletionJobs` (read the job), then one of
/// - `comments` (delete the next chunk of the plan's comments), or
/// - `posts` (delete the next chunk of the plan's posts), then
///   `deletionJobs` (record progress), or, when both are done,
/// - `users` (delete a user job's root), `deletionJobs` (delete the job).
///
/// Surviving documents were already changed by the first transaction, so a
/// step only deletes hidden documents: what readers see never changes here.
#[derive(Debug, Clone, Copy)]
pub struct ReapDeletion {
    /// The job to advance.
    pub job: ObjectId,
    /// Most documents this step writes (at least 2: one deletion and the job).
    pub budget: usize,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// It deleted this many documents; more remain.
    Progress(u64),
    /// The job is finished (or was already gone): its root and record are deleted.
    Done,
}

impl Command for ReapDeletion {
    type Output = Reaped;
    const NAME: &'static str = "reapDeletion";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<Reaped> {
        let Some(mut job) = tx.job(self.job).await? else { return Ok(Reaped::Done) };
        let chunk = self.budget.saturating_sub(1).max(1);
        let done = usize::try_from(job.reaped).unwrap_or(0);
        let (comments, posts) = (job.comments.len(), job.posts.len());
        let deleted = if done < comments {
            let ids = &job.comments[done..comments.min(done + chunk)];
            tx.delete_comments(ids).await?;
            ids.len()
        } else if done < comments + posts {
            let from = done - comments;
            let ids = &job.posts[from..posts.min(from + chunk)];
            tx.delete_posts(ids).await?;
            ids.len()
        } else {
            if job.kind == DeletionKind::User {
                tx.delete_user(job.root).await?;
            }
            tx.delete_job(job.id).await?;
            return Ok(Reaped::Done);
        };
        job.reaped += deleted as i64;
        job.progress_at = tx.now();
        tx.replace_job(&job).await?;
        Ok(Reaped::Progress(deleted as u64))
    }
}
