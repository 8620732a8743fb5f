//! `deleteUser`: delete an account and everything hanging off it.

use std::collections::{BTreeMap, BTreeSet};

use bson::oid::ObjectId;

use super::plan::plan_user;
use super::{Command, existing_user};
use crate::error::{Error, Result};
use crate::store::Tx;

/// Deletes an account with its posts, the comments on them and its own
/// comments elsewhere, and pulls its id from every like and follow; only the
/// user may.
///
/// Touches, in order:
/// 0. with `expected_plan`, first the reads of the plan (see [`super::PlanUserDeletion`]);
/// 1. `users` (read the user) and `posts` (read ids by author);
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
    pub actor: ObjectId,
    /// The account to delete.
    pub id: ObjectId,
    /// A preview's plan token: when given, the plan is recomputed first, in
    /// this transaction, and any difference refuses the delete (`PLAN_CHANGED`).
    pub expected_plan: Option<String>,
}

/// What `deleteUser` removed and changed, read inside its transaction, so
/// clients can evict and refresh exactly the cached objects it touched.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct DeletedUser {
    /// The user's id.
    pub user: ObjectId,
    /// Posts deleted (the union of the author index and `user.posts`), by id.
    pub posts: Vec<ObjectId>,
    /// Comments deleted: those on the user's posts plus the user's own elsewhere.
    pub comments: Vec<ObjectId>,
    /// Surviving users whose `followers` or `following` lost the id.
    pub affected_users: Vec<ObjectId>,
    /// Surviving posts whose `likedBy` lost the id or whose `commentCount` dropped.
    pub affected_posts: Vec<ObjectId>,
    /// Documents the id was pulled out of (`likedBy`, `followers`, `following`).
    pub detached: u64,
}

impl Command for DeleteUser {
    type Output = DeletedUser;
    const NAME: &'static str = "deleteUser";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<DeletedUser> {
        let id = self.id;
        let user = existing_user(tx, id).await?;
        if self.actor != id {
            return Err(Error::Forbidden("you may delete only your own account".into()));
        }
        if let Some(expected) = &self.expected_plan {
            plan_user(tx, &user).await?.confirm(Some(expected))?;
        }
        let mut posts: BTreeSet<ObjectId> = tx.post_ids_by_author(id).await?.into_iter().collect();
        posts.extend(user.posts.iter().copied());
        let posts: Vec<ObjectId> = posts.into_iter().collect();

        let mut comments = tx.delete_comments_on_posts(&posts).await?;
        let elsewhere = tx.delete_comments_by_author(id).await?;
        let mut decrements: BTreeMap<ObjectId, i64> = BTreeMap::new();
        for removed in &elsewhere {
            *decrements.entry(removed.post).or_default() -= 1;
        }
        let decrements: Vec<(ObjectId, i64)> = decrements.into_iter().collect();
        tx.add_comment_counts(&decrements).await?;
        comments.extend(elsewhere.iter().map(|c| c.id));
        let deleted_posts = tx.delete_posts(&posts).await?;
        let likes = tx.pull_liker_everywhere(id).await?;
        let follows = tx.pull_follow_refs_everywhere(id).await?;
        tx.delete_user(id).await?;

        let detached = (likes.len() + follows.len()) as u64;
        let gone: BTreeSet<ObjectId> = deleted_posts.iter().copied().collect();
        let mut affected_posts: BTreeSet<ObjectId> = likes.into_iter().collect();
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
        })
    }
}
