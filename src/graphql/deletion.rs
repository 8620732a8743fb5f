//! The `DeletionPlan` type that `deleteUserPreview` and `deletePostPreview` answer.

use async_graphql::Object;

use super::to_int;
use crate::cmd;

/// What a delete would do if nothing changed before it runs: the counts it
/// would report, and a token to pass as `expectedPlan` so the delete
/// refuses (`CONFLICT`, `extensions.reason: "PLAN_CHANGED"`) instead of
/// deleting more or less than was shown.
pub struct DeletionPlan(pub cmd::DeletionPlan);

/// What a delete would do if nothing changed before it runs: the counts it
/// would report, and a token to pass as `expectedPlan` so the delete refuses
/// (`CONFLICT` with `extensions.reason` `PLAN_CHANGED` and the fresh counts)
/// instead of deleting more or less than was shown.
#[Object]
impl DeletionPlan {
    /// Posts that would be deleted.
    async fn post_count(&self) -> i32 {
        to_int(self.0.posts.len())
    }

    /// Comments that would be deleted: on those posts, and (for an account) its own elsewhere.
    async fn comment_count(&self) -> i32 {
        to_int(self.0.comments.len())
    }

    /// Surviving documents the id would be pulled out of (`likedBy`,
    /// `followers`, `following`; for a post, its author's `posts`).
    async fn detached_reference_count(&self) -> i32 {
        to_int(self.0.detached.len())
    }

    /// A digest of every id the delete would delete or detach; pass it to the
    /// delete as `expectedPlan`. Opaque; equal tokens mean the same plan.
    async fn plan_token(&self) -> String {
        self.0.token()
    }
}
