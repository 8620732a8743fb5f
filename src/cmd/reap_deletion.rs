//! `ReapDeletion`: one bounded step of a staged deletion.

use std::collections::{BTreeMap, BTreeSet};

use super::Command;
use crate::error::{Error, Result};
use bson::oid::ObjectId;

use crate::model::{CommentId, DeletionKind, Id, JOB_PART_LEN, JobPart, PostId};
use crate::store::{HeldIn, Tx};

/// Does the next at most `budget` document writes of a staged deletion, and
/// records how far it got in the same transaction, so a crash between two
/// steps resumes where the last commit left off, and a step that runs
/// twice changes nothing twice.
///
/// Touches, in order: `deletionJobs` (read the header),
/// `deletionJobParts` (read the part holding the next entries), then one of
/// - `comments` (delete the next chunk of the plan's comments) and `posts`
///   (decrement the surviving posts' `commentCount` for them),
/// - `posts` (delete the next chunk of the plan's posts),
/// - `posts` (pull the id out of the next chunk of `liked` posts' `likedBy`),
/// - `users` (pull the id out of the next chunk of `follows` users' arrays),
///
/// each within that part, then `deletionJobs` (record progress); or, when
/// all are done, `users` (delete a user job's root) and `deletionJobs`,
/// `deletionJobParts` (delete the job).
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
        let total: i64 = job.lens.iter().sum();
        if job.reaped >= total {
            if job.kind == DeletionKind::User {
                // A user job's author is the user (its root, typed).
                tx.delete_one(job.author).await?;
            }
            tx.delete_job(&job).await?;
            return Ok(Reaped::Done);
        }
        let done = usize::try_from(job.reaped).unwrap_or(0);
        let seq = (done / JOB_PART_LEN) as i64;
        let part = tx
            .job_part(job.id, seq)
            .await?
            .ok_or_else(|| Error::internal(format!("deletion job {} lost part {seq}", job.id)))?;
        // One write goes to the job's header.
        let chunk = self.budget.saturating_sub(1).max(1);
        let at = done % JOB_PART_LEN;
        let advanced = match locate(&part, at) {
            Some((List::Comments, from)) => {
                // A deleted comment also changes its post's count: half the chunk each.
                let to = part.comments.len().min(from + (chunk / 2).max(1));
                reap_comments(tx, &part, from, to).await?;
                to - from
            }
            Some((List::Posts, from)) => {
                let ids = &part.posts[from..part.posts.len().min(from + chunk)];
                tx.delete(ids).await?;
                ids.len()
            }
            Some((List::Liked, from)) => {
                let ids = &part.liked[from..part.liked.len().min(from + chunk)];
                tx.pull_refs(job.author, HeldIn::Likes, &Id::oids(ids)).await?;
                ids.len()
            }
            Some((List::Follows, from)) => {
                let ids = &part.follows[from..part.follows.len().min(from + chunk)];
                tx.pull_refs(job.author, HeldIn::Follows, &Id::oids(ids)).await?;
                ids.len()
            }
            None => return Err(Error::internal(format!("deletion job {} part {seq} ends before {done}", job.id))),
        };
        job.reaped += advanced as i64;
        job.progress_at = tx.now();
        tx.replace_job(&job).await?;
        Ok(Reaped::Progress(advanced as u64))
    }
}

/// The plan's lists, in the order the reaper works through them.
enum List {
    Comments,
    Posts,
    Liked,
    Follows,
}

/// Which list entry `at` of `part` is in, and its index there.
fn locate(part: &JobPart, mut at: usize) -> Option<(List, usize)> {
    for (len, list) in [
        (part.comments.len(), List::Comments),
        (part.posts.len(), List::Posts),
        (part.liked.len(), List::Liked),
        (part.follows.len(), List::Follows),
    ] {
        if at < len {
            return Some((list, at));
        }
        at -= len;
    }
    None
}

/// Deletes `part.comments[from..to]` and takes the ones that existed off
/// their posts' `commentCount`, in the same transaction. (Posts the job
/// deletes later are decremented too: they are hidden, and it keeps a step
/// from needing the whole list of them.)
async fn reap_comments<T: Tx>(tx: &mut T, part: &JobPart, from: usize, to: usize) -> Result<()> {
    let gone: BTreeSet<CommentId> = tx.delete(&part.comments[from..to]).await?.into_iter().collect();
    let posts = part.comment_posts.get(from..to).unwrap_or_default();
    let mut decrements: BTreeMap<PostId, i64> = BTreeMap::new();
    for (id, post) in part.comments[from..to].iter().zip(posts) {
        if gone.contains(id) {
            *decrements.entry(*post).or_default() -= 1;
        }
    }
    let decrements: Vec<(PostId, i64)> = decrements.into_iter().collect();
    tx.add_comment_counts(&decrements).await
}
