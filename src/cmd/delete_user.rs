//! `deleteUser`: delete an account and everything hanging off it.

use std::collections::BTreeSet;

use bson::oid::ObjectId;

use super::{Command, existing_user};
use crate::error::{Error, Result};
use crate::store::Tx;

/// Deletes an account with its posts, the comments on them and its own
/// comments elsewhere, and pulls its id from every like and follow; only the
/// user may.
///
/// Touches, in order:
/// 1. `users` (read the user) and `posts` (read ids by author);
/// 2. `comments` (delete those on the user's posts);
/// 3. `comments` (delete the user's own comments elsewhere), then `posts`
///    (decrement those posts' `commentCount`);
/// 4. `posts` (delete the union of the author index and `user.posts`, so
///    drifted data is cleaned too);
/// 5. `posts` (pull the id out of every `likedBy`);
/// 6. `users` (pull the id out of every `followers` and `following`);
/// 7. `users` (delete the user).
#[derive(Debug, Clone, Copy)]
pub struct DeleteUser {
    /// The signed-in user.
    pub actor: ObjectId,
    /// The account to delete.
    pub id: ObjectId,
}

/// What `deleteUser` removed, reported back to the client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedUser {
    /// The user's id.
    pub user: ObjectId,
    /// Posts deleted (the union of the author index and `user.posts`).
    pub posts: u64,
    /// Comments deleted: those on the user's posts plus the user's own elsewhere.
    pub comments: u64,
    /// Other documents the id was pulled out of (`likedBy`, `followers`, `following`).
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
        let mut posts: BTreeSet<ObjectId> = tx.post_ids_by_author(id).await?.into_iter().collect();
        posts.extend(user.posts.iter().copied());
        let posts: Vec<ObjectId> = posts.into_iter().collect();

        let on_own_posts = tx.delete_comments_on_posts(&posts).await?;
        let elsewhere = tx.delete_comments_by_author(id).await?;
        let own_elsewhere: i64 = elsewhere.iter().map(|(_, n)| n).sum();
        let decrements: Vec<(ObjectId, i64)> = elsewhere.iter().map(|(post, n)| (*post, -n)).collect();
        tx.add_comment_counts(&decrements).await?;
        let deleted_posts = tx.delete_posts(&posts).await?;
        let likes = tx.pull_liker_everywhere(id).await?;
        let follows = tx.pull_follow_refs_everywhere(id).await?;
        tx.delete_user(id).await?;
        Ok(DeletedUser {
            user: id,
            posts: deleted_posts,
            comments: on_own_posts + own_elsewhere.unsigned_abs(),
            detached: likes + follows,
        })
    }
}
