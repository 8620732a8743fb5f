//! `ReapDeletion`: one bounded step of a staged deletion.

use std::collections::{BTreeMap, BTreeSet};

use bson::oid::ObjectId;

use super::Command;
use crate::error::Result;
use crate::model::{DeletionJobDoc, DeletionKind};
use crate::store::Tx;

/// Does the next at most `budget` document writes of a staged deletion, and
/// records how far it got in the same transaction, so a crash between two
/// steps resumes where the last commit left off, and a step that runs
/// twice changes nothing twice.
///
/// Touches, in order: `deletionJobs` (read the job), then one of
/// - `comments` (delete the next chunk of the plan's comments) and `posts`
///   (decrement the surviving posts' `commentCount` for them),
/// - `posts` (delete the next chunk of the plan's posts),
/// - `posts` (pull the id out of the next chunk of `liked` posts' `likedBy`),
/// - `users` (pull the id out of the next chunk of `follows` users' arrays),
///
/// then `deletionJobs` (record progress); or, when all are done, `users`
/// (delete a user job's root) and `deletionJobs` (delete the job).
///
/// Readers see none of this: they already leave out everything the job
/// names (see `store::hidden`), and each step keeps that view unchanged.
#[derive(Debug, Clone, Copy)]
pub struct ReapDeletion {
    /// The job to advance.
    pub job: ObjectId,
    /// Most documents this step writes (at least 3 are used: one document, its
    /// post's count, and the job).
    pub budget: usize,
}

/// What one step did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reaped {
    /// It advanced the job by this many documents; more remain.
    Progress(u64),
    /// The job is finished (or was already gone): its root and record are deleted.
    Done,
}

impl Command for ReapDeletion {
    type Output = Reaped;
    const NAME: &'static str = "reapDeletion";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<Reaped> {
        let Some(mut job) = tx.job(self.job).await? else { return Ok(Reaped::Done) };
        // One write goes to the job itself.
        let chunk = self.budget.saturating_sub(1).max(1);
        let done = usize::try_from(job.reaped).unwrap_or(0);
        let advanced = match phase(&job, done) {
            Phase::Comments(from) => {
                // A deleted comment may also change its surviving post: half the chunk each.
                let to = job.comments.len().min(from + (chunk / 2).max(1));
                reap_comments(tx, &job, from, to).await?;
                to - from
            }
            Phase::Posts(from) => {
                let ids = &job.posts[from..job.posts.len().min(from + chunk)];
                tx.delete_posts(ids).await?;
                ids.len()
            }
            Phase::Liked(from) => {
                let ids = &job.liked[from..job.liked.len().min(from + chunk)];
                tx.pull_liker(job.root, ids).await?;
                ids.len()
            }
            Phase::Follows(from) => {
                let ids = &job.follows[from..job.follows.len().min(from + chunk)];
                tx.pull_follow_refs(job.root, ids).await?;
                ids.len()
            }
            Phase::Finished => {
                if job.kind == DeletionKind::User {
                    tx.delete_user(job.root).await?;
                }
                tx.delete_job(job.id).await?;
                return Ok(Reaped::Done);
            }
        };
        job.reaped += advanced as i64;
        job.progress_at = tx.now();
        tx.replace_job(&job).await?;
        Ok(Reaped::Progress(advanced as u64))
    }
}

/// Where `done` steps of progress leave a job: which list, and the index in it.
enum Phase {
    Comments(usize),
    Posts(usize),
    Liked(usize),
    Follows(usize),
    Finished,
}

fn phase(job: &DeletionJobDoc, done: usize) -> Phase {
    let mut at = done;
    for (len, phase) in [
        (job.comments.len(), Phase::Comments as fn(usize) -> Phase),
        (job.posts.len(), Phase::Posts),
        (job.liked.len(), Phase::Liked),
        (job.follows.len(), Phase::Follows),
    ] {
        if at < len {
            return phase(at);
        }
        at -= len;
    }
    Phase::Finished
}

/// Deletes `job.comments[from..to]` and takes the ones that existed off
/// their posts' `commentCount`, in the same transaction. (Posts the job
/// deletes later are decremented too: they are hidden, and it keeps a step
/// from needing the whole list of them.)
async fn reap_comments<T: Tx>(tx: &mut T, job: &DeletionJobDoc, from: usize, to: usize) -> Result<()> {
    let gone: BTreeSet<ObjectId> = tx.delete_comments(&job.comments[from..to]).await?.into_iter().collect();
    let posts = job.comment_posts.get(from..to).unwrap_or_default();
    let mut decrements: BTreeMap<ObjectId, i64> = BTreeMap::new();
    for (id, post) in job.comments[from..to].iter().zip(posts) {
        if gone.contains(id) {
            *decrements.entry(*post).or_default() -= 1;
        }
    }
    let decrements: Vec<(ObjectId, i64)> = decrements.into_iter().collect();
    tx.add_comment_counts(&decrements).await
}
