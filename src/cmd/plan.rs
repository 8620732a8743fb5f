//! Deletion plans: exactly what a `deleteUser` or `deletePost` would delete
//! and detach, computed inside a transaction, and the token that names it.
//!
//! A preview shows a plan's counts and token; the delete, given that token
//! as `expectedPlan`, recomputes the plan in its own transaction and refuses
//! (`CONFLICT`, reason `PLAN_CHANGED`) if anything differs, so "this will
//! delete 12 posts" is never silently wrong. The token is a digest of the
//! ids, so two plans with the same counts but different documents differ.

use std::collections::BTreeSet;

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bson::oid::ObjectId;
use sha2::{Digest, Sha256};

use super::{ReadCommand, existing_post, existing_user};
use crate::error::{Error, Result};
use crate::model::{CommentId, Id, PostDoc, PostId, UserDoc, UserId};
use crate::store::{IdsOf, Reads};

/// Every id a deletion would delete or detach, each list sorted and unique.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeletionPlan {
    /// What is deleted at the root: `user` or `post`.
    pub kind: &'static str,
    /// The root document's id.
    pub root: ObjectId,
    /// Posts that would be deleted.
    pub posts: Vec<PostId>,
    /// Comments that would be deleted.
    pub comments: Vec<CommentId>,
    /// Surviving documents the root's id would be pulled out of (posts
    /// that it likes, users that it follows or that follow it).
    pub detached: Vec<ObjectId>,
}

/// Version prefix of plan tokens, so a future digest layout cannot be mistaken for this one.
const TOKEN_VERSION: &str = "p1.";

impl DeletionPlan {
    fn new(
        kind: &'static str,
        root: ObjectId,
        posts: BTreeSet<PostId>,
        comments: BTreeSet<CommentId>,
        detached: BTreeSet<ObjectId>,
    ) -> Self {
        DeletionPlan {
            kind,
            root,
            posts: posts.into_iter().collect(),
            comments: comments.into_iter().collect(),
            detached: detached.into_iter().collect(),
        }
    }

    /// The plan's token: a SHA-256 of the kind, the root and every id, by category.
    pub fn token(&self) -> String {
        let mut digest = Sha256::new();
        digest.update(self.kind.as_bytes());
        digest.update(self.root.bytes());
        let lists = [Id::oids(&self.posts), Id::oids(&self.comments)];
        for ids in lists.iter().chain([&self.detached]) {
            digest.update((ids.len() as u64).to_be_bytes());
            for id in ids {
                digest.update(id.bytes());
            }
        }
        format!("{TOKEN_VERSION}{}", URL_SAFE_NO_PAD.encode(digest.finalize()))
    }

    /// The documents the deletion writes when it runs in one transaction:
    /// every deleted and every detached document, and the root. Above the
    /// cascade budget the deletion is staged instead.
    pub fn writes(&self) -> usize {
        self.posts.len() + self.comments.len() + self.detached.len() + 1
    }

    /// Refuses with `PLAN_CHANGED` (and this plan's counts and token) unless `expected` is this plan's token.
    pub fn confirm(&self, expected: Option<&str>) -> Result<()> {
        match expected {
            Some(token) if token != self.token() => Err(Error::PlanChanged {
                posts: self.posts.len() as u64,
                comments: self.comments.len() as u64,
                detached: self.detached.len() as u64,
                token: self.token(),
            }),
            _ => Ok(()),
        }
    }
}

/// What deleting `user` reaches, by kind, before [`UserReach::plan`]
/// merges the detached ids: a staged deletion needs the liked posts and the
/// follow-holding users apart.
pub(crate) struct UserReach {
    /// The posts from the author index and from `user.posts` that exist.
    pub posts: BTreeSet<PostId>,
    /// The comments on them and the user's own.
    pub comments: BTreeSet<CommentId>,
    /// Surviving posts whose `likedBy` holds the user.
    pub liked: Vec<PostId>,
    /// Users whose `followers` or `following` holds the user.
    pub follows: Vec<UserId>,
}

impl UserReach {
    /// The plan: these ids, with the detached ones merged.
    pub(crate) fn plan(&self, user: UserId) -> DeletionPlan {
        let detached = Id::oids(&self.liked).into_iter().chain(Id::oids(&self.follows)).collect();
        DeletionPlan::new("user", user.oid(), self.posts.clone(), self.comments.clone(), detached)
    }
}

/// What deleting `user` reaches, read through `tx`.
pub(crate) async fn reach_user<R: Reads>(tx: &mut R, user: &UserDoc) -> Result<UserReach> {
    let id = user.id;
    let mut posts: BTreeSet<PostId> = tx.ids(IdsOf::PostsBy(id)).await?.into_iter().map(Id::from_oid).collect();
    for listed in &user.posts {
        if !posts.contains(listed) && tx.post(*listed).await?.is_some() {
            posts.insert(*listed);
        }
    }
    let post_ids: Vec<PostId> = posts.iter().copied().collect();
    let mut comments: BTreeSet<CommentId> =
        tx.ids(IdsOf::CommentsOn(&post_ids)).await?.into_iter().map(Id::from_oid).collect();
    comments.extend(tx.ids(IdsOf::CommentsBy(id)).await?.into_iter().map(Id::from_oid));
    let liked =
        Id::from_oids(tx.ids(IdsOf::PostsLikedBy(id)).await?).into_iter().filter(|p| !posts.contains(p)).collect();
    let follows = Id::from_oids(tx.ids(IdsOf::UsersFollowingOrFollowedBy(id)).await?);
    Ok(UserReach { posts, comments, liked, follows })
}

/// The plan of deleting `user`, read through `tx`: the posts from the author
/// index and from `user.posts` that exist, the comments on them and the
/// user's own, and the surviving posts and users that reference the user.
pub(crate) async fn plan_user<R: Reads>(tx: &mut R, user: &UserDoc) -> Result<DeletionPlan> {
    Ok(reach_user(tx, user).await?.plan(user.id))
}

/// The plan of deleting `post`: the post, its comments, and its author's `posts` entry.
pub(crate) async fn plan_post<R: Reads>(tx: &mut R, post: &PostDoc) -> Result<DeletionPlan> {
    let comments = tx.ids(IdsOf::CommentsOn(&[post.id])).await?.into_iter().map(Id::from_oid).collect();
    let author = tx.user(post.author).await?;
    let detached = author.filter(|a| a.lists_post(post)).map(|a| a.id.oid()).into_iter().collect();
    Ok(DeletionPlan::new("post", post.id.oid(), BTreeSet::from([post.id]), comments, detached))
}

/// Previews `deleteUser`: the plan, with the same authorization as the delete.
///
/// Touches (reads only): `users`, `posts` (author index), `comments` (by
/// post, by author), `posts` (likers), `users` (follows).
#[derive(Debug, Clone, Copy)]
pub struct PlanUserDeletion {
    /// The signed-in user.
    pub actor: UserId,
    /// The account whose deletion is previewed.
    pub id: UserId,
}

impl ReadCommand for PlanUserDeletion {
    type Output = DeletionPlan;
    const NAME: &'static str = "deleteUserPreview";

    async fn read<R: Reads>(&self, view: &mut R) -> Result<DeletionPlan> {
        // Ownership first: another account's id costs one read, not a plan.
        if self.actor != self.id {
            existing_user(view, self.id).await?;
            return Err(Error::Forbidden("you may preview deleting only your own account".into()));
        }
        let user = existing_user(view, self.id).await?;
        plan_user(view, &user).await
    }
}

/// Previews `deletePost`: the plan, with the same authorization as the delete.
///
/// Touches (reads only): `posts`, `comments` (by post), `users` (the author).
#[derive(Debug, Clone, Copy)]
pub struct PlanPostDeletion {
    /// The signed-in user.
    pub actor: UserId,
    /// The post whose deletion is previewed.
    pub id: PostId,
}

impl ReadCommand for PlanPostDeletion {
    type Output = DeletionPlan;
    const NAME: &'static str = "deletePostPreview";

    async fn read<R: Reads>(&self, view: &mut R) -> Result<DeletionPlan> {
        let post = existing_post(view, self.id).await?;
        if post.author != self.actor {
            return Err(Error::Forbidden("only the author may preview deleting this post".into()));
        }
        plan_post(view, &post).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(posts: &[u8], comments: &[u8], detached: &[u8]) -> DeletionPlan {
        fn ids<D>(b: &[u8]) -> BTreeSet<Id<D>> {
            b.iter().map(|n| Id::from_oid(ObjectId::from_bytes([*n; 12]))).collect()
        }
        let detached = ids::<()>(detached).into_iter().map(Id::oid).collect();
        DeletionPlan::new("user", ObjectId::from_bytes([0; 12]), ids(posts), ids(comments), detached)
    }

    /// The token depends on every id and on which category it is in, not only on the counts.
    #[test]
    fn tokens_name_the_ids() {
        let base = plan(&[1, 2], &[3], &[4]);
        assert_eq!(base.token(), plan(&[2, 1], &[3], &[4]).token(), "order of discovery does not matter");
        for other in [plan(&[1, 5], &[3], &[4]), plan(&[1, 2], &[4], &[3]), plan(&[1, 2, 3], &[], &[4])] {
            assert_ne!(base.token(), other.token());
        }
        assert!(base.token().starts_with(TOKEN_VERSION));
    }

    /// Confirming with the plan's own token passes; any other refuses with the fresh counts.
    #[test]
    fn confirm_refuses_a_stale_token() {
        let p = plan(&[1], &[2, 3], &[]);
        assert!(p.confirm(None).is_ok());
        assert!(p.confirm(Some(&p.token())).is_ok());
        match p.confirm(Some("p1.stale")) {
            Err(Error::PlanChanged { posts: 1, comments: 2, detached: 0, token }) => assert_eq!(token, p.token()),
            other => panic!("{other:?}"),
        }
    }
}
