//! The write rules of blogql, written once against the transaction handle.
//!
//! Every function here takes `&mut dyn Tx`, which only exists inside
//! [`crate::store::transact`], so none of these steps can run outside a
//! transaction. Each doc comment lists the collections it touches, in order.
//!
//! Two rules hold throughout:
//! - **Authorization is checked inside the transaction**, on the documents the
//!   transaction read, so there is no check-then-act gap.
//! - **Whoever creates a reference to document X also writes X** in the same
//!   transaction (`users.posts`, `posts.commentCount`, `users.rev`, ...). A
//!   concurrent deletion of X then conflicts with the write instead of
//!   leaving an orphan behind.

use std::collections::BTreeSet;

use bson::oid::ObjectId;

use crate::error::{Error, Result};
use crate::model::{CommentDoc, PostDoc, UserDoc};
use crate::store::Tx;

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

/// What `deletePost` removed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DeletedPost {
    /// The post's id.
    pub post: ObjectId,
    /// Comments deleted with it.
    pub comments: u64,
}

/// Loads the acting user; a token whose account is gone no longer authenticates.
async fn actor(tx: &mut dyn Tx, id: ObjectId) -> Result<UserDoc> {
    tx.user(id).await?.ok_or_else(|| Error::Unauthenticated("the account for this token no longer exists".into()))
}

async fn existing_post(tx: &mut dyn Tx, id: ObjectId) -> Result<PostDoc> {
    tx.post(id).await?.ok_or_else(|| Error::not_found("post", id))
}

/// Creates an account. Touches: `users` (insert; the unique email is checked by the store).
pub async fn sign_up(tx: &mut dyn Tx, name: String, email: String, password_hash: String) -> Result<UserDoc> {
    let user = UserDoc {
        id: ObjectId::new(),
        name,
        email,
        password_hash,
        created_at: tx.now(),
        posts: Vec::new(),
        followers: Vec::new(),
        following: Vec::new(),
        rev: 0,
    };
    tx.insert_user(&user).await?;
    Ok(user)
}

/// Writes a post. Touches: `users` (read author), `posts` (insert),
/// `users` (push the id into the author's `posts`).
pub async fn create_post(tx: &mut dyn Tx, author: ObjectId, title: String, body: String) -> Result<PostDoc> {
    let mut user = actor(tx, author).await?;
    let now = tx.now();
    let post = PostDoc {
        id: ObjectId::new(),
        title,
        body,
        author,
        liked_by: Vec::new(),
        comment_count: 0,
        created_at: now,
        updated_at: now,
    };
    tx.insert_post(&post).await?;
    user.posts.push(post.id);
    tx.replace_user(&user).await?;
    Ok(post)
}

/// Edits a post's title and/or body; only its author may. Touches: `posts` (read, replace).
pub async fn update_post(
    tx: &mut dyn Tx,
    actor_id: ObjectId,
    id: ObjectId,
    title: Option<String>,
    body: Option<String>,
) -> Result<PostDoc> {
    let mut post = existing_post(tx, id).await?;
    if post.author != actor_id {
        return Err(Error::Forbidden("only the author may edit this post".into()));
    }
    if let Some(title) = title {
        post.title = title;
    }
    if let Some(body) = body {
        post.body = body;
    }
    post.updated_at = tx.now();
    tx.replace_post(&post).await?;
    Ok(post)
}

/// Deletes a post and everything that hangs off it; only its author may.
/// Touches, in order: `posts` (read), `comments` (delete those on the post),
/// `posts` (delete), `users` (read author, pull the id out of `posts`).
pub async fn delete_post(tx: &mut dyn Tx, actor_id: ObjectId, id: ObjectId) -> Result<DeletedPost> {
    let post = existing_post(tx, id).await?;
    if post.author != actor_id {
        return Err(Error::Forbidden("only the author may delete this post".into()));
    }
    let comments = tx.delete_comments_on_posts(&[id]).await?;
    tx.delete_posts(&[id]).await?;
    if let Some(mut author) = tx.user(post.author).await? {
        author.posts.retain(|p| *p != id);
        tx.replace_user(&author).await?;
    }
    Ok(DeletedPost { post: id, comments })
}

/// Comments on a post. Touches: `posts` (read), `users` (read author),
/// `comments` (insert), `posts` (`commentCount` + 1), `users` (`rev` + 1).
pub async fn create_comment(tx: &mut dyn Tx, author: ObjectId, post_id: ObjectId, body: String) -> Result<CommentDoc> {
    let mut post = existing_post(tx, post_id).await?;
    let mut user = actor(tx, author).await?;
    let comment = CommentDoc { id: ObjectId::new(), body, post: post_id, author, created_at: tx.now() };
    tx.insert_comment(&comment).await?;
    post.comment_count += 1;
    tx.replace_post(&post).await?;
    user.rev += 1;
    tx.replace_user(&user).await?;
    Ok(comment)
}

/// Deletes a comment; its author or the post's author may. Touches:
/// `comments` (read), `posts` (read), `comments` (delete), `posts` (`commentCount` - 1).
pub async fn delete_comment(tx: &mut dyn Tx, actor_id: ObjectId, id: ObjectId) -> Result<ObjectId> {
    let comment = tx.comment(id).await?.ok_or_else(|| Error::not_found("comment", id))?;
    let post = tx.post(comment.post).await?;
    let post_author = post.as_ref().map(|p| p.author);
    if comment.author != actor_id && post_author != Some(actor_id) {
        return Err(Error::Forbidden("only the comment's author or the post's author may delete it".into()));
    }
    tx.delete_comment(id).await?;
    if let Some(mut post) = post {
        post.comment_count = (post.comment_count - 1).max(0);
        tx.replace_post(&post).await?;
    }
    Ok(id)
}

/// Likes a post (idempotent). Touches: `posts` (read), `users` (read liker),
/// then only if not yet liked: `posts` (push into `likedBy`), `users` (`rev` + 1).
pub async fn like_post(tx: &mut dyn Tx, liker: ObjectId, post_id: ObjectId) -> Result<PostDoc> {
    let mut post = existing_post(tx, post_id).await?;
    let mut user = actor(tx, liker).await?;
    if !post.liked_by.contains(&liker) {
        post.liked_by.push(liker);
        tx.replace_post(&post).await?;
        user.rev += 1;
        tx.replace_user(&user).await?;
    }
    Ok(post)
}

/// Withdraws a like (idempotent). Touches: `posts` (read), `users` (read),
/// then only if it was liked: `posts` (pull from `likedBy`).
pub async fn unlike_post(tx: &mut dyn Tx, liker: ObjectId, post_id: ObjectId) -> Result<PostDoc> {
    let mut post = existing_post(tx, post_id).await?;
    actor(tx, liker).await?;
    if post.liked_by.contains(&liker) {
        post.liked_by.retain(|u| *u != liker);
        tx.replace_post(&post).await?;
    }
    Ok(post)
}

/// Follows a user (idempotent); following yourself is refused before any
/// read. Touches: `users` (read target), `users` (read follower), then, as
/// needed: `users` (push into the follower's `following`), `users` (push
/// into the target's `followers`). Both sides are written, so a concurrent
/// deletion of either conflicts.
pub async fn follow_user(tx: &mut dyn Tx, follower: ObjectId, target: ObjectId) -> Result<UserDoc> {
    if follower == target {
        return Err(Error::bad_input("userId", "you cannot follow yourself"));
    }
    let mut followee = tx.user(target).await?.ok_or_else(|| Error::not_found("user", target))?;
    let mut me = actor(tx, follower).await?;
    if !me.following.contains(&target) {
        me.following.push(target);
        tx.replace_user(&me).await?;
    }
    if !followee.followers.contains(&follower) {
        followee.followers.push(follower);
        tx.replace_user(&followee).await?;
    }
    Ok(followee)
}

/// Unfollows a user (idempotent). Touches: `users` (read target, read
/// follower), then, as needed, `users` (pull from `following`, pull from `followers`).
pub async fn unfollow_user(tx: &mut dyn Tx, follower: ObjectId, target: ObjectId) -> Result<UserDoc> {
    if follower == target {
        return Err(Error::bad_input("userId", "you cannot unfollow yourself"));
    }
    let mut followee = tx.user(target).await?.ok_or_else(|| Error::not_found("user", target))?;
    let mut me = actor(tx, follower).await?;
    if me.following.contains(&target) {
        me.following.retain(|u| *u != target);
        tx.replace_user(&me).await?;
    }
    if followee.followers.contains(&follower) {
        followee.followers.retain(|u| *u != follower);
        tx.replace_user(&followee).await?;
    }
    Ok(followee)
}

/// Deletes an account and everything that hangs off it; only the user may.
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
pub async fn delete_user(tx: &mut dyn Tx, actor_id: ObjectId, id: ObjectId) -> Result<DeletedUser> {
    let user = tx.user(id).await?.ok_or_else(|| Error::not_found("user", id))?;
    if actor_id != id {
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
