//! What staged deletions hide: the documents of every deletion job in progress.
//!
//! A staged deletion commits a tombstone and a [`DeletionJobDoc`] holding
//! its plan, and a reaper deletes the rest later. From the tombstone's
//! commit on, no read may return those documents or count them. This
//! registry is how reads know which they are: the jobs this process knows
//! of, as id sets. A backend publishes a job here *before* its first
//! transaction commits (so no read after the commit can miss it) and takes
//! it back if the commit fails; start-up loads every durable job; the
//! reaper retires a job after its last step.
//!
//! With no job in progress (the normal case) a read pays one atomic load.

pub mod refill;
pub mod stage;
pub mod visible;

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, RwLock};

use bson::oid::ObjectId;

use crate::model::{CommentDoc, CommentId, DeletionJobDoc, DeletionKind, Id, PostDoc, PostId, UserDoc, UserId};

/// The hidden documents of every deletion job this process knows of.
#[derive(Debug, Default)]
pub struct Hidden {
    /// How many jobs `sets` holds, read without the lock.
    jobs: AtomicUsize,
    /// Replaced whole on every change, so a read holds an `Arc`, not the lock.
    sets: RwLock<Arc<Sets>>,
    /// Signalled when a transaction that staged a job has committed: the
    /// reaper waits on it, so no resolver has to reach for the reaper.
    staged: tokio::sync::Notify,
    /// Moves with every change of `sets` (see [`Hidden::generation`]).
    generation: AtomicU64,
}

/// The id sets, rebuilt from the jobs whenever one comes or goes.
#[derive(Debug, Default)]
pub struct Sets {
    jobs: HashMap<ObjectId, Arc<DeletionJobDoc>>,
    users: HashSet<UserId>,
    /// Hidden post → its author.
    posts: HashMap<PostId, UserId>,
    /// Hidden comment → its author.
    comments: HashMap<CommentId, UserId>,
    /// Hidden posts by author, for counts.
    posts_by_author: HashMap<UserId, Vec<PostId>>,
    /// Hidden comments by author, for counts.
    comments_by_author: HashMap<UserId, Vec<CommentId>>,
    /// Hidden comments by the post they are on, for surviving posts' `commentCount`.
    comments_by_post: HashMap<PostId, Vec<CommentId>>,
}

impl Sets {
    fn rebuild(jobs: HashMap<ObjectId, Arc<DeletionJobDoc>>) -> Sets {
        let mut sets = Sets { jobs, ..Sets::default() };
        for job in sets.jobs.values() {
            if job.kind == DeletionKind::User {
                sets.users.insert(job.author);
            }
            sets.posts.extend(job.posts.iter().map(|p| (*p, job.author)));
            sets.comments.extend(job.comments.iter().copied().zip(job.comment_authors.iter().copied()));
            for (comment, post) in job.comments.iter().zip(&job.comment_posts) {
                sets.comments_by_post.entry(*post).or_default().push(*comment);
            }
        }
        for (post, author) in &sets.posts {
            sets.posts_by_author.entry(*author).or_default().push(*post);
        }
        for (comment, author) in &sets.comments {
            sets.comments_by_author.entry(*author).or_default().push(*comment);
        }
        sets
    }

    /// The sets of `jobs` alone (the checker's view of a snapshot).
    pub fn of(jobs: &[DeletionJobDoc]) -> Sets {
        Sets::rebuild(jobs.iter().map(|j| (j.id, Arc::new(j.clone()))).collect())
    }

    /// Whether post `id` is under a job.
    pub fn post(&self, id: &PostId) -> bool {
        self.posts.contains_key(id)
    }

    /// Whether `user` is to be left out of reads.
    pub fn hides_user(&self, user: &UserDoc) -> bool {
        user.deleting.is_some() || self.users.contains(&user.id)
    }

    /// Whether the document with `id`, of any kind, is one a job lists
    /// (ids are unique across collections). What a document alone reveals
    /// (a tombstone, a hidden author or post) is [`Sets::hides_user`] and its
    /// siblings' to check.
    pub fn hides_id(&self, id: &ObjectId) -> bool {
        self.users.contains(&Id::from_oid(*id))
            || self.posts.contains_key(&Id::from_oid(*id))
            || self.comments.contains_key(&Id::from_oid(*id))
    }

    /// Whether `post` is to be left out of reads: tombstoned, under a job, or by a hidden author.
    pub fn hides_post(&self, post: &PostDoc) -> bool {
        post.deleting.is_some() || self.posts.contains_key(&post.id) || self.users.contains(&post.author)
    }

    /// Whether `comment` is to be left out of reads.
    pub fn hides_comment(&self, comment: &CommentDoc) -> bool {
        self.comments.contains_key(&comment.id)
            || self.users.contains(&comment.author)
            || self.posts.contains_key(&comment.post)
    }

    /// The hidden users.
    pub fn users(&self) -> Vec<UserId> {
        self.users.iter().copied().collect()
    }

    /// Hidden posts whose author is not itself hidden (those are counted through the author).
    pub fn posts_of_visible_authors(&self) -> Vec<PostId> {
        self.posts.iter().filter(|(_, author)| !self.users.contains(author)).map(|(id, _)| *id).collect()
    }

    /// Every hidden post, if there are at most `max` (a query filter's worth); else `None`.
    pub fn posts_up_to(&self, max: usize) -> Option<Vec<PostId>> {
        (self.posts.len() <= max).then(|| self.posts.keys().copied().collect())
    }

    /// Hidden posts written by `author`.
    pub fn posts_by(&self, author: &UserId) -> &[PostId] {
        self.posts_by_author.get(author).map_or(&[], Vec::as_slice)
    }

    /// Hidden comments written by `author`.
    pub fn comments_by(&self, author: &UserId) -> &[CommentId] {
        self.comments_by_author.get(author).map_or(&[], Vec::as_slice)
    }

    /// Hidden comments on `post`.
    pub fn comments_on(&self, post: &PostId) -> &[CommentId] {
        self.comments_by_post.get(post).map_or(&[], Vec::as_slice)
    }

    /// Leaves hidden users out of a surviving user's `followers` and
    /// `following` (the reaper pulls them for good later).
    pub fn scrub_user(&self, user: &mut UserDoc) {
        if !self.users.is_empty() {
            user.followers.retain(|u| !self.users.contains(u));
            user.following.retain(|u| !self.users.contains(u));
        }
    }

    /// Leaves hidden users out of a surviving post's `likedBy`.
    pub fn scrub_post(&self, post: &mut PostDoc) {
        if !self.users.is_empty() {
            post.liked_by.retain(|u| !self.users.contains(u));
        }
    }

    /// The jobs, by id.
    pub fn jobs(&self) -> impl Iterator<Item = &Arc<DeletionJobDoc>> {
        self.jobs.values()
    }
}

/// A document a staged deletion can hide from reads.
pub trait Hideable {
    /// Whether `sets` hide this document.
    fn hidden_by(&self, sets: &Sets) -> bool;
}

impl Hideable for UserDoc {
    fn hidden_by(&self, sets: &Sets) -> bool {
        sets.hides_user(self)
    }
}

impl Hideable for PostDoc {
    fn hidden_by(&self, sets: &Sets) -> bool {
        sets.hides_post(self)
    }
}

impl Hideable for CommentDoc {
    fn hidden_by(&self, sets: &Sets) -> bool {
        sets.hides_comment(self)
    }
}

impl Hidden {
    /// The current sets, or `None` when no job is in progress (no lock taken).
    pub fn current(&self) -> Option<Arc<Sets>> {
        if self.jobs.load(Ordering::Acquire) == 0 {
            return None;
        }
        self.sets.read().ok().map(|s| Arc::clone(&s))
    }

    /// How many jobs are known here (in progress, as far as this process knows).
    pub fn len(&self) -> usize {
        self.jobs.load(Ordering::Acquire)
    }

    /// Whether no job is known here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Whether a job with this id is known here.
    pub fn knows(&self, job: &ObjectId) -> bool {
        self.jobs.load(Ordering::Acquire) > 0 && self.sets.read().is_ok_and(|s| s.jobs.contains_key(job))
    }

    /// Hides `job`'s documents from now on (idempotent).
    pub fn publish(&self, job: &DeletionJobDoc) {
        self.update(|jobs| {
            jobs.insert(job.id, Arc::new(job.clone()));
        });
    }

    /// Says that a transaction which published jobs has committed them, so
    /// the reaper starts now instead of at its next poll. Backends call it
    /// after the commit: a reaper woken before would not find the job yet.
    pub fn committed(&self) {
        self.staged.notify_one();
    }

    /// Waits until a transaction that staged a job has committed (see
    /// [`Hidden::committed`]); a signal sent while nobody waited is kept.
    pub async fn job_committed(&self) {
        self.staged.notified().await;
    }

    /// Stops hiding `job`'s documents: its last step committed (they are
    /// gone), or its first transaction did not commit.
    pub fn retire(&self, job: &ObjectId) {
        self.update(|jobs| {
            jobs.remove(job);
        });
    }

    /// Replaces every job with `jobs` (start-up, and the reaper's poll, which
    /// also learns of jobs other processes staged on a shared MongoDB).
    pub fn reset(&self, jobs: &[DeletionJobDoc]) {
        self.update(|known| {
            known.clear();
            known.extend(jobs.iter().map(|j| (j.id, Arc::new(j.clone()))));
        });
    }

    /// A count that moves whenever what is hidden changes, `None` during a
    /// change: part of the state an answer is kept for (see `Store::version`).
    pub fn generation(&self) -> Option<u64> {
        Some(self.generation.load(Ordering::Acquire)).filter(|n| n % 2 == 0)
    }

    fn update(&self, change: impl FnOnce(&mut HashMap<ObjectId, Arc<DeletionJobDoc>>)) {
        // A poisoned lock only means a panic elsewhere mid-update; the sets
        // are rebuilt whole below, so the data is still usable.
        let mut sets = self.sets.write().unwrap_or_else(std::sync::PoisonError::into_inner);
        // Odd while the sets change, so no reader takes a mixed view for a stable one.
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut jobs = sets.jobs.clone();
        change(&mut jobs);
        let count = jobs.len();
        *sets = Arc::new(Sets::rebuild(jobs));
        self.jobs.store(count, Ordering::Release);
        self.generation.fetch_add(1, Ordering::AcqRel);
    }
}

#[cfg(test)]
mod tests {
    use bson::DateTime;

    use super::*;

    /// A commit signalled while the reaper is busy is kept for its next
    /// wait, and one signal wakes it once.
    #[tokio::test]
    async fn a_committed_job_wakes_the_next_wait() {
        let hidden = Hidden::default();
        hidden.committed();
        let woke = tokio::time::timeout(std::time::Duration::from_secs(5), hidden.job_committed()).await;
        assert!(woke.is_ok(), "the kept signal wakes the wait at once");
        let again = tokio::time::timeout(std::time::Duration::from_millis(50), hidden.job_committed()).await;
        assert!(again.is_err(), "one signal wakes one wait");
    }

    pub(super) fn job(
        kind: DeletionKind,
        root: ObjectId,
        posts: Vec<PostId>,
        comments: Vec<(CommentId, UserId)>,
    ) -> DeletionJobDoc {
        DeletionJobDoc {
            id: ObjectId::new(),
            kind,
            root,
            author: Id::from_oid(root),
            posts,
            comments: comments.iter().map(|c| c.0).collect(),
            comment_authors: comments.iter().map(|c| c.1).collect(),
            comment_posts: comments.iter().map(|_| PostId::new()).collect(),
            liked: vec![],
            follows: vec![],
            reaped: 0,
            created_at: DateTime::now(),
            progress_at: DateTime::now(),
        }
    }

    /// Publishing hides a job's documents; retiring one job keeps another job's ids hidden even where they overlap.
    #[test]
    fn jobs_hide_their_documents_until_retired() {
        let hidden = Hidden::default();
        assert!(hidden.current().is_none(), "no job, no sets");
        let (user, post, comment, other) = (UserId::new(), PostId::new(), CommentId::new(), UserId::new());
        let a = job(DeletionKind::User, user.oid(), vec![post], vec![(comment, other)]);
        let mut b = job(DeletionKind::Post, post.oid(), vec![post], vec![]);
        b.author = user;
        hidden.publish(&a);
        hidden.publish(&b);
        let sets = hidden.current().expect("sets");
        assert!(sets.hides_id(&user.oid()) && !sets.hides_id(&other.oid()));
        assert_eq!(sets.comments_by(&other), &[comment]);
        assert!(sets.posts_of_visible_authors().is_empty(), "the author is hidden, so is counted through it");
        hidden.retire(&a.id);
        let sets = hidden.current().expect("b remains");
        assert!(!sets.hides_id(&user.oid()));
        assert_eq!(sets.posts_by(&user), &[post], "b still hides the post");
        hidden.retire(&b.id);
        assert!(hidden.current().is_none());
    }
}
