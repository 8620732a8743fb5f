//! The `DeletionPlan` type that `deleteUserPreview` and `deletePostPreview`
//! answer, and the length bound every list in a deletion payload shares.

use async_graphql::Object;

use async_graphql::Context;

use async_graphql::ID;

use super::error::ApiResult;
use super::post::Post;
use super::user::{User, load_users};
use super::{CtxExt, Query, to_id, to_int};
use crate::cmd;
use crate::cmd::DeletedUser;
use crate::error::{Error, Result};

/// Most entries a payload list (`deletedPostIds`, `affectedPosts`, ...)
/// answers, and its default. An unstaged delete writes at most
/// `--cascade-budget-docs` (default 1,000) documents, so its lists are
/// whole; a staged one may name far more, and its counts say how many.
pub const MAX_PAYLOAD_LIST: usize = 1_000;

/// The first `first` of `ids` as GraphQL ids (see [`payload_list`]).
pub fn payload_ids<D>(ids: &[crate::model::Id<D>], first: Option<i32>) -> Result<Vec<async_graphql::ID>> {
    Ok(payload_list(ids, first)?.iter().copied().map(super::to_id).collect())
}

/// Refuses, before the delete writes anything, a selection whose payload
/// lists ask for an out-of-range `first`: the resolver would refuse it only
/// after the commit, losing the committed delete's answer.
pub fn check_payload_selection(ctx: &Context<'_>) -> Result<()> {
    for field in ctx.field().selection_set() {
        let arguments = field.arguments().map_err(|_| Error::bad_input("first", "first must be an integer"))?;
        for (name, value) in arguments {
            if name.as_str() != "first" {
                continue;
            }
            let first = match value {
                async_graphql::Value::Null => None,
                async_graphql::Value::Number(n) => Some(n.as_i64().and_then(|n| i32::try_from(n).ok()).unwrap_or(-1)),
                _ => Some(-1),
            };
            payload_list::<u8>(&[], first)?;
        }
    }
    Ok(())
}

/// The first `first` entries of a payload list, or `BAD_USER_INPUT` when
/// `first` is out of range.
pub fn payload_list<T: Copy>(entries: &[T], first: Option<i32>) -> Result<&[T]> {
    let n = match first {
        None => MAX_PAYLOAD_LIST,
        Some(n) => usize::try_from(n)
            .ok()
            .filter(|n| *n <= MAX_PAYLOAD_LIST)
            .ok_or_else(|| Error::bad_input("first", format!("first must be between 0 and {MAX_PAYLOAD_LIST}")))?,
    };
    Ok(&entries[..n.min(entries.len())])
}

impl DeletionPlan {
    /// Wraps a computed plan, marking it staged when it exceeds this server's cascade budget.
    pub(crate) fn new(ctx: &Context<'_>, plan: cmd::DeletionPlan) -> Result<Self> {
        let staged = plan.writes() > ctx.cascade_budget()?;
        Ok(DeletionPlan { plan, staged })
    }
}

/// What a delete would do if nothing changed before it runs: the counts it
/// would report, and a token to pass as `expectedPlan` so the delete
/// refuses (`CONFLICT`, `extensions.reason: "PLAN_CHANGED"`) instead of
/// deleting more or less than was shown.
pub struct DeletionPlan {
    /// The plan itself.
    pub plan: cmd::DeletionPlan,
    /// Whether it is over the cascade budget, so the delete would be staged.
    pub staged: bool,
}

/// What a delete would do if nothing changed before it runs: the counts it
/// would report, and a token to pass as `expectedPlan` so the delete refuses
/// (`CONFLICT` with `extensions.reason` `PLAN_CHANGED` and the fresh counts)
/// instead of deleting more or less than was shown.
#[Object]
impl DeletionPlan {
    /// Posts that would be deleted.
    async fn post_count(&self) -> i32 {
        to_int(self.plan.posts.len())
    }

    /// Comments that would be deleted: on those posts, and (for an account) its own elsewhere.
    async fn comment_count(&self) -> i32 {
        to_int(self.plan.comments.len())
    }

    /// Surviving documents the id would be pulled out of (`likedBy`,
    /// `followers`, `following`; for a post, its author's `posts`).
    async fn detached_reference_count(&self) -> i32 {
        to_int(self.plan.detached.len())
    }

    /// True when the delete would be staged: it writes more documents than
    /// one transaction may (`--cascade-budget-docs`), so the delete hides
    /// everything in one transaction and a background job deletes the rest.
    async fn staged(&self) -> bool {
        self.staged
    }

    /// A digest of every id the delete would delete or detach; pass it to the
    /// delete as `expectedPlan`. Opaque; equal tokens mean the same plan.
    async fn plan_token(&self) -> String {
        self.plan.token()
    }
}

/// What `deleteUser` removed and changed, read in the deleting transaction,
/// so a client cache can evict every deleted object and refresh every
/// surviving one whose lists or counts changed.
pub struct DeleteUserPayload(pub DeletedUser);

/// What `deleteUser` removed and changed, read in the deleting transaction,
/// so a client cache can evict every deleted object and refresh every
/// surviving one whose lists or counts changed.
#[Object]
impl DeleteUserPayload {
    /// The deleted account's id.
    async fn deleted_user_id(&self) -> ID {
        to_id(self.0.user)
    }

    /// The ids of the posts deleted with it: the first `first` (all of an
    /// unstaged delete's); `deletedPostCount` says how many in all.
    async fn deleted_post_ids(
        &self,
        #[graphql(desc = "At most this many (0 to 1,000; default 1,000).")] first: Option<i32>,
    ) -> ApiResult<Vec<ID>> {
        Ok(payload_ids(&self.0.posts, first)?)
    }

    /// The ids of the comments deleted with it, those on its posts and its own
    /// elsewhere: the first `first`; `deletedCommentCount` says how many in all.
    async fn deleted_comment_ids(
        &self,
        #[graphql(desc = "At most this many (0 to 1,000; default 1,000).")] first: Option<i32>,
    ) -> ApiResult<Vec<ID>> {
        Ok(payload_ids(&self.0.comments, first)?)
    }

    /// How many posts were deleted with it.
    async fn deleted_post_count(&self) -> i32 {
        to_int(self.0.posts.len())
    }

    /// How many comments were deleted with it: those on its posts and its own elsewhere.
    async fn deleted_comment_count(&self) -> i32 {
        to_int(self.0.comments.len())
    }

    /// How many other documents its id was pulled from (`likedBy`, `followers`, `following`).
    async fn detached_reference_count(&self) -> i32 {
        to_int(self.0.detached)
    }

    /// True when the deletion was staged (it was larger than one transaction
    /// may write): everything listed here is already gone for every read and
    /// count, and a background job is deleting it for good. The ids and
    /// counts are the plan's, fixed when the deletion committed.
    async fn staged(&self) -> bool {
        self.0.job.is_some()
    }

    /// The staged deletion's job, to find it in logs and `blogql check`; null when not staged.
    async fn deletion_job_id(&self) -> Option<ID> {
        self.0.job.map(to_id)
    }

    /// Every surviving user whose `followers` or `following` changed, as they
    /// are now: the first `first`; `affectedUserCount` says how many in all.
    async fn affected_users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (0 to 1,000; default 1,000).")] first: Option<i32>,
    ) -> ApiResult<Vec<User>> {
        Ok(load_users(ctx, payload_list(&self.0.affected_users, first)?).await?)
    }

    /// How many surviving users' `followers` or `following` changed.
    async fn affected_user_count(&self) -> i32 {
        to_int(self.0.affected_users.len())
    }

    /// Every surviving post whose `likedBy`, `likeCount` or `commentCount`
    /// changed, as they are now: the first `first`; `affectedPostCount` says how many in all.
    async fn affected_posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "At most this many (0 to 1,000; default 1,000).")] first: Option<i32>,
    ) -> ApiResult<Vec<Post>> {
        let request = ctx.request()?;
        let loads = payload_list(&self.0.affected_posts, first)?.iter().map(|id| request.posts.load_one(*id));
        let found = futures::future::try_join_all(loads).await?;
        Ok(found.into_iter().flatten().map(Post::from).collect())
    }

    /// How many surviving posts' `likedBy`, `likeCount` or `commentCount` changed.
    async fn affected_post_count(&self) -> i32 {
        to_int(self.0.affected_posts.len())
    }

    /// The root query, to refetch anything else in the same round trip.
    async fn query(&self) -> Query {
        Query::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A payload list is cut to `first` (default and at most 1,000); out-of-range `first` is refused.
    #[test]
    fn payload_lists_are_bounded() {
        let entries: Vec<u32> = (0..1500).collect();
        assert_eq!(payload_list(&entries, None).map(<[u32]>::len).ok(), Some(MAX_PAYLOAD_LIST));
        assert_eq!(payload_list(&entries, Some(2)).map(<[u32]>::to_vec).ok(), Some(vec![0, 1]));
        assert_eq!(payload_list(&entries[..3], Some(10)).map(<[u32]>::len).ok(), Some(3));
        assert!(payload_list(&entries, Some(-1)).is_err());
        assert!(payload_list(&entries, Some(1001)).is_err());
    }
}
