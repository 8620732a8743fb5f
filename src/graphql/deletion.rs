//! The `DeletionPlan` type that `deleteUserPreview` and `deletePostPreview` answer.

use async_graphql::Object;

use async_graphql::Context;

use super::{CtxExt, to_int};
use crate::cmd;
use crate::error::Result;

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
