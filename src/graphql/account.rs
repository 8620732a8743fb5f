//! The viewer's own account: its profile, its password, and ending its sessions.

use async_graphql::{Context, InputObject, Object};

use super::error::ApiResult;
use super::user::{AuthPayload, User, signed_in};
use super::{CtxExt, forget_viewer, require_viewer, run_as, viewer_token};
use crate::cmd::UpdateProfile;
use crate::domain::ProfileChanges;

/// Input of `updateProfile`; omitted fields keep their value, and at least one must be given.
#[derive(InputObject)]
pub struct UpdateProfileInput {
    /// New display name, 1–64 characters, by the sign-up rules.
    pub name: Option<String>,
    /// New bio, at most 1,000 characters; line breaks are allowed. An empty
    /// string clears it.
    pub bio: Option<String>,
}

/// Input of `changePassword`.
#[derive(InputObject)]
pub struct ChangePasswordInput {
    /// The password the account has now.
    pub current_password: String,
    /// The new password, 8–1,024 characters, by the sign-up rules.
    pub new_password: String,
}

/// Mutations on the viewer's own account.
#[derive(Default)]
pub struct AccountMutation;

#[Object]
impl AccountMutation {
    /// Changes your name and/or bio; nobody else's. Writes your user record only.
    async fn update_profile(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The fields to change.")] input: UpdateProfileInput,
    ) -> ApiResult<User> {
        let actor = require_viewer(ctx).await?;
        let changes = ProfileChanges::parse(input.name.as_deref(), input.bio.as_deref())?;
        Ok(User::from(run_as(ctx, actor, UpdateProfile { actor, changes }).await?))
    }

    /// Changes your password, given the current one. A wrong current password
    /// is `UNAUTHENTICATED`, after the same work as a log-in and counting
    /// toward the same back-off. Every token issued before the change is
    /// refused from then on, on every server; the answer carries a fresh one.
    async fn change_password(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The current and the new password.")] input: ChangePasswordInput,
    ) -> ApiResult<AuthPayload> {
        let token = viewer_token(ctx).await?;
        let (accounts, store, ip) = (&ctx.app()?.accounts, ctx.store()?, ctx.request()?.client_ip);
        let done = accounts.change_password(store, ip, &token, input.current_password, &input.new_password).await?;
        forget_viewer(ctx)?;
        Ok(signed_in(ctx, done)?)
    }

    /// Ends the token this request was sent with: from now on it is refused,
    /// on every server, as if no token were sent. Your other tokens keep working.
    async fn log_out(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let token = viewer_token(ctx).await?;
        ctx.app()?.accounts.log_out(ctx.store()?, &token).await?;
        forget_viewer(ctx)?;
        Ok(true)
    }

    /// Ends every token of your account issued until now, this one included.
    async fn log_out_everywhere(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        let token = viewer_token(ctx).await?;
        ctx.app()?.accounts.log_out_everywhere(ctx.store()?, &token).await?;
        forget_viewer(ctx)?;
        Ok(true)
    }
}
