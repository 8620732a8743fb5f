//! `deleteUser`: delete an account and everything hanging off it.

use std::collections::{BTreeMap, BTreeSet};

use bson::oid::ObjectId;

use crate::model::{CommentId, Id, PostId, UserId};

use super::plan::{UserReach, reach_user};
use super::{Command, existing_user};
use crate::error::{Error, Result};
use crate::model::DeletionJobDoc;
use crate::store::events::Event;
use crate::store::{CommentsOf, Tx};

/// Deletes an account with its posts, the comments on them and its own
/// comments elsewhere, and pulls its id from every like and follow; only the
/// user may.
///
/// When the plan writes more than `budget` documents, the deletion is
/// *staged* instead: this transaction tombstones the user and records the
/// plan as a job, which hides everything from readers at once, and the
/// reaper ([`super::ReapDeletion`]) does the work below in transactions of
/// at most `budget` documents.
///
/// Touches, in order:
/// 1. `users` (read the user), then the reads of the plan (see [`super::PlanUserDeletion`]);
///    over the budget, the staged writes instead of what follows;
/// 2. `comments` (delete those on the user's posts);
/// 3. `comments` (delete the user's own comments elsewhere), then `posts`
///    (decrement those posts' `commentCount`);
/// 4. `posts` (delete the union of the author index and `user.posts`, so
///    drifted data is cleaned too);
/// 5. `posts` (pull the id out of every `likedBy`);
/// 6. `users` (pull the id out of every `followers` and `following`);
/// 7. `users` (delete the user).
#[derive(Debug, Clone)]
pub struct DeleteUser {
    /// The signed-in user.
    pub actor: UserId,
    /// The account to delete.
    pub id: UserId,
    /// A preview's plan token: when given, the plan is recomputed first, in
    /// this transaction, and any difference refuses the delete (`PLAN_CHANGED`).
    pub expected_plan: Option<String>,
    /// Most documents the cascade may write in this transaction; a larger plan is staged.
    pub budget: usize,
}

/// What `deleteUser` removed and changed, read inside its transaction, so
/// clients can evict and refresh exactly the cached objects it touched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeletedUser {
    /// The user's id.
    pub user: UserId,
    /// Posts deleted (the union of the author index and `user.posts`), by id.
    pub posts: Vec<PostId>,
    /// Comments deleted: those on the user's posts plus the user's own elsewhere.
    pub comments: Vec<CommentId>,
    /// Surviving users whose `followers` or `following` lost the id.
    pub affected_users: Vec<UserId>,
    /// Surviving posts whose `likedBy` lost the id or whose `commentCount` dropped.
    pub affected_posts: Vec<PostId>,
    /// Documents the id was pulled out of (`likedBy`, `followers`, `following`).
    pub detached: u64,
    /// The staged deletion's job, when the plan was over the budget: the ids
    /// above are then the plan's, hidden now and deleted by the reaper.
    pub job: Option<ObjectId>,
}

impl Command for DeleteUser {
    type Output = DeletedUser;
    const NAME: &'static str = "deleteUser";

    /// The user's posts are gone for readers from this commit on, staged or
    /// not; the surviving posts it liked or commented on changed.
    fn events(&self, deleted: &DeletedUser) -> Vec<Event> {
        let gone = deleted.posts.iter().copied().map(Event::PostDeleted);
        gone.chain(deleted.affected_posts.iter().copied().map(Event::PostChanged)).collect()
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<DeletedUser> {
        let id = self.id;
        let user = existing_user(tx, id).await?;
        if self.actor != id {
            return Err(Error::Forbidden("you may delete only your own account".into()));
        }
        let reach = reach_user(tx, &user).await?;
        let plan = reach.plan(id);
        plan.confirm(self.expected_plan.as_deref())?;
        if plan.writes() > self.budget {
            return stage(tx, user, reach).await;
        }
        // The plan's posts: the author index and `user.posts`, so drifted data is cleaned too.
        let posts = plan.posts;

        let mut comments: Vec<CommentId> =
            tx.delete_comments_of(CommentsOf::Post, &Id::oids(&posts)).await?.iter().map(|c| c.id).collect();
        let elsewhere = tx.delete_comments_of(CommentsOf::Author, &[id.oid()]).await?;
        let mut decrements: BTreeMap<PostId, i64> = BTreeMap::new();
        for removed in &elsewhere {
            *decrements.entry(removed.post).or_default() -= 1;
        }
        let decrements: Vec<(PostId, i64)> = decrements.into_iter().collect();
        tx.add_comment_counts(&decrements).await?;
        comments.extend(elsewhere.iter().map(|c| c.id));
        let deleted_posts = tx.delete(&posts).await?;
        let likes = tx.pull_liker_everywhere(id).await?;
        let follows = tx.pull_follow_refs_everywhere(id).await?;
        tx.delete_one(id).await?;

        let detached = (likes.len() + follows.len()) as u64;
        let gone: BTreeSet<PostId> = deleted_posts.iter().copied().collect();
        let mut affected_posts: BTreeSet<PostId> = likes.into_iter().collect();
        affected_posts.extend(decrements.iter().map(|(post, _)| *post));
        affected_posts.retain(|p| !gone.contains(p));
        comments.sort_unstable();
        Ok(DeletedUser {
            user: id,
            posts: deleted_posts,
            comments,
            affected_users: follows,
            affected_posts: affected_posts.into_iter().collect(),
            detached,
            job: None,
        })
    }
}

/// The first transaction of a staged `deleteUser`: a constant number of
/// writes, whatever the fan-out. After it commits the account and
/// everything the plan names is hidden from every read and count (reads
/// also leave the id out of surviving `likedBy`, `followers` and
/// `following`, and the hidden comments out of surviving posts'
/// `commentCount`, until the reaper has changed those documents), and no
/// write can reference them:
/// 1. `comments` (read the plan's comments with their posts and authors);
/// 2. `users` (tombstone the user: `deleting` = the job);
/// 3. `deletionJobs` (insert the job, holding the plan with the liked posts
///    and follow-holding users it read apart).
async fn stage<T: Tx>(tx: &mut T, mut user: crate::model::UserDoc, reach: UserReach) -> Result<DeletedUser> {
    let id = user.id;
    let UserReach { posts: doomed, comments, liked, follows } = reach;
    let posts: Vec<PostId> = doomed.iter().copied().collect();
    let comments: Vec<CommentId> = comments.into_iter().collect();
    let mut refs = tx.comment_refs(CommentsOf::Post, &Id::oids(&posts)).await?;
    refs.extend(tx.comment_refs(CommentsOf::Author, &[id.oid()]).await?);
    refs.sort_unstable_by_key(|r| r.id);
    refs.dedup_by_key(|r| r.id);

    let job = DeletionJobDoc::for_user(id, posts.clone(), &refs, liked.clone(), follows.clone(), tx.now());
    user.deleting = Some(job.id);
    tx.replace(&user).await?;
    tx.insert_job(&job).await?;

    let detached = (liked.len() + follows.len()) as u64;
    let mut affected_posts: BTreeSet<PostId> = liked.into_iter().collect();
    affected_posts.extend(refs.iter().map(|r| r.post).filter(|p| !doomed.contains(p)));
    Ok(DeletedUser {
        user: id,
        posts,
        comments,
        affected_users: follows,
        affected_posts: affected_posts.into_iter().collect(),
        detached,
        job: Some(job.id),
    })
}
