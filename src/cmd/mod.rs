//! Every write of blogql, one typed command per file, written once against [`Tx`].
//!
//! A command is a plain value (`DeleteUser { actor, id }`) whose
//! [`Command::apply`] does all its work through the transaction handle it
//! is given. A backend runs it with [`crate::store::Backend::run`] inside one
//! transaction, and may run it again on a transient conflict, so `apply`
//! takes `&self` and keeps no state between attempts. The result type is
//! the command's own [`Command::Output`], checked at compile time.
//!
//! There is deliberately no enum of all commands: one would have to erase
//! the output types again. Adding a command is adding a file here.
//!
//! Two rules hold for every command:
//! - **Authorization is checked inside the transaction**, on the documents the
//!   transaction read, so there is no check-then-act gap.
//! - **Whoever creates a reference to document X also writes X** in the same
//!   transaction (`users.posts`, `posts.commentCount`, or for a reference to
//!   a user that needs no other change, [`Tx::touch_user`]). A concurrent
//!   deletion of X then conflicts with the write instead of leaving an
//!   orphan behind.
//!
//! Each command's doc comment lists the collections it touches, in order.

mod change_password;
mod create_comment;
mod create_post;
mod delete_comment;
mod delete_post;
mod delete_user;
mod follow_user;
mod like_post;
mod log_out;
mod log_out_everywhere;
mod plan;
mod reap_deletion;
mod sign_up;
mod unfollow_user;
mod unlike_post;
mod update_post;
mod update_profile;

pub use change_password::ChangePassword;
pub use create_comment::CreateComment;
pub use create_post::CreatePost;
pub use delete_comment::{DeleteComment, DeletedComment};
pub use delete_post::{DeletePost, DeletedPost};
pub use delete_user::{DeleteUser, DeletedUser};
pub use follow_user::{FollowUser, MAX_FOLLOWING};
pub use like_post::LikePost;
pub use log_out::{LogOut, MAX_ENDED_TOKENS};
pub use log_out_everywhere::LogOutEverywhere;
pub use plan::{DeletionPlan, PlanPostDeletion, PlanUserDeletion};
pub use reap_deletion::{ReapDeletion, Reaped};
pub use sign_up::SignUp;
pub use unfollow_user::UnfollowUser;
pub use unlike_post::UnlikePost;
pub use update_post::UpdatePost;
pub use update_profile::UpdateProfile;

use crate::error::{Error, Result};
use crate::model::{PostDoc, PostId, UserDoc, UserId};
pub use crate::store::{Command, ReadCommand};
use crate::store::{Reads, Tx};

/// What a token whose account is gone is told.
const ACCOUNT_GONE: &str = "the account for this token no longer exists";

/// Loads the acting user; a token whose account is gone (or being deleted,
/// see [`UserDoc::deleting`]) no longer authenticates.
async fn actor<T: Tx>(tx: &mut T, id: UserId) -> Result<UserDoc> {
    tx.user(id).await?.filter(|u| u.deleting.is_none()).ok_or(Error::Unauthenticated(ACCOUNT_GONE.into()))
}

/// Loads a post the command needs, or `NOT_FOUND`: missing, being deleted,
/// or written by an account being deleted (a staged deletion hides it).
async fn existing_post<R: Reads>(tx: &mut R, id: PostId) -> Result<PostDoc> {
    let post = tx.post(id).await?.filter(|p| p.deleting.is_none()).ok_or_else(|| Error::not_found("post", id))?;
    if tx.user(post.author).await?.is_some_and(|a| a.deleting.is_some()) {
        return Err(Error::not_found("post", id));
    }
    Ok(post)
}

/// [`existing_post`] for a command that creates a reference to the post:
/// the author is written too ([`Tx::touch_user`]), so a concurrent staged
/// deletion of the author conflicts with the command instead of missing the
/// new reference. A post whose author is missing is `NOT_FOUND` as well:
/// nothing new may hang off an orphan.
async fn referenced_post<T: Tx>(tx: &mut T, id: PostId) -> Result<PostDoc> {
    let post = tx.post(id).await?.filter(|p| p.deleting.is_none()).ok_or_else(|| Error::not_found("post", id))?;
    if !tx.touch_user(post.author).await? {
        return Err(Error::not_found("post", id));
    }
    Ok(post)
}

/// Whether user `id` exists with a staged deletion in progress.
async fn being_deleted<R: Reads>(tx: &mut R, id: UserId) -> Result<bool> {
    Ok(tx.user(id).await?.is_some_and(|u| u.deleting.is_some()))
}

/// Loads a user the command targets, or `NOT_FOUND` (missing or being deleted).
async fn existing_user<R: Reads>(tx: &mut R, id: UserId) -> Result<UserDoc> {
    tx.user(id).await?.filter(|u| u.deleting.is_none()).ok_or_else(|| Error::not_found("user", id))
}

/// Both sides of a follow after `followUser` or `unfollowUser`, as committed:
/// each side's count changed, so clients get both.
#[derive(Debug, Clone, PartialEq)]
pub struct Follow {
    /// The viewer, whose `following` changed.
    pub follower: UserDoc,
    /// The other user, whose `followers` changed.
    pub followee: UserDoc,
}
