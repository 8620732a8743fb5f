//! Users: the `User` type, account mutations (sign-up, log-in, delete) and follows.

use std::sync::Arc;

use async_graphql::parser::types::Field;
use async_graphql::{Context, ID, InputObject, Lookahead, Object, ScalarType, SimpleObject, Value};
use futures::future::{BoxFuture, Either, Ready, ready};

use super::batch::Found;
use super::comment::Comment;
use super::connection::{self, Connection, Listed, PageArgs, Total, related};
use super::deletion::DeleteUserPayload;
use super::deletion::DeletionPlan;
use super::error::ApiResult;
use super::plain::{Env, Plain};
use super::post::Post;
use super::scalars::Timestamp;
use super::{CtxExt, as_viewer, parse_id, read_as_viewer, to_id, to_int, vanished, viewer_doc, viewer_id};
use crate::auth::accounts::SignedIn;
use crate::cmd::{DeleteUser, Follow, FollowUser, PlanUserDeletion, UnfollowUser};
use crate::error::Result;
use crate::model::{Chronological, UserDoc, UserId};
use crate::store::{Collection, CommentsOf, CountOf, PostsOf, UsersOf};

/// A user account as clients see it. The password hash is never exposed,
/// and `email` only to its owner.
pub struct User(pub Arc<UserDoc>);

impl From<UserDoc> for User {
    fn from(doc: UserDoc) -> Self {
        User(Arc::new(doc))
    }
}

impl Listed for User {
    const CONNECTION: &'static str = "UserConnection";
    const EDGE: &'static str = "UserEdge";
    type Doc = UserDoc;

    async fn wrap(_ctx: &Context<'_>, docs: Vec<Arc<UserDoc>>, _node: Lookahead<'_>) -> Result<Vec<Self>> {
        Ok(docs.into_iter().map(User).collect())
    }
}

/// The fields of a user answered from memory (see [`super::plain`]): all but the
/// lists, which take arguments, and `email`, which needs the viewer.
impl Plain for User {
    fn plain(&self, field: &Field, _env: &Env<'_>) -> Option<Value> {
        let doc = &self.0;
        Some(match field.name.node.as_str() {
            "id" => Value::String(to_id(doc.id).0),
            "name" => Value::String(doc.name.clone()),
            "bio" => doc.bio.clone().map_or(Value::Null, Value::String),
            "createdAt" => Timestamp(doc.created_at).to_value(),
            "postCount" => Value::from(to_int(doc.post_count)),
            "followerCount" => Value::from(to_int(doc.followers.len())),
            "followingCount" => Value::from(to_int(doc.following.len())),
            _ => return None,
        })
    }
}

/// A user account as clients see it. The password hash is never exposed,
/// and `email` only to its owner.
#[Object]
impl User {
    /// The user's id.
    pub(crate) async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// A short text the user wrote about themselves, at most 1,000
    /// characters; null when they have none (see `updateProfile`).
    async fn bio(&self) -> Option<&str> {
        self.0.bio.as_deref()
    }

    /// The account's email; null unless the viewer is this user.
    async fn email(&self, ctx: &Context<'_>) -> ApiResult<Option<&str>> {
        // Boxed: see `related`.
        Ok((Box::pin(viewer_id(ctx)).await? == Some(self.0.id)).then_some(self.0.email.as_str()))
    }

    /// When the account was created.
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.0.created_at)
    }

    /// The user's posts, newest first.
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page forward: at most this many items, 0–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Page forward: the items after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page backward: at most this many items from the end, 0–100.")] last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor.")] before: Option<String>,
    ) -> ApiResult<Connection<Post>> {
        let args = PageArgs { first, after, last, before };
        related(
            ctx,
            PostsOf::Author,
            self.0.id,
            args,
            Total::Known(usize::try_from(self.0.post_count).unwrap_or(usize::MAX)),
        )
        .await
    }

    /// How many posts the user has written.
    async fn post_count(&self) -> i32 {
        to_int(self.0.post_count)
    }

    /// The user's comments on any post, newest first.
    async fn comments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page forward: at most this many items, 0–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Page forward: the items after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page backward: at most this many items from the end, 0–100.")] last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor.")] before: Option<String>,
    ) -> ApiResult<Connection<Comment>> {
        let args = PageArgs { first, after, last, before };
        related(ctx, CommentsOf::Author, self.0.id, args, Total::Of(CountOf::CommentsByAuthor, self.0.id)).await
    }

    /// Users following this user, newest account first.
    async fn followers(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page forward: at most this many items, 0–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Page forward: the items after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page backward: at most this many items from the end, 0–100.")] last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor.")] before: Option<String>,
    ) -> ApiResult<Connection<User>> {
        let args = PageArgs { first, after, last, before };
        related(ctx, UsersOf::Followers, self.0.id, args, Total::Known(self.0.followers.len())).await
    }

    /// Users this user follows, newest account first.
    async fn following(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page forward: at most this many items, 0–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Page forward: the items after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page backward: at most this many items from the end, 0–100.")] last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor.")] before: Option<String>,
    ) -> ApiResult<Connection<User>> {
        let args = PageArgs { first, after, last, before };
        related(ctx, UsersOf::Following, self.0.id, args, Total::Known(self.0.following.len())).await
    }

    /// How many users follow this user.
    async fn follower_count(&self) -> i32 {
        to_int(self.0.followers.len())
    }

    /// How many users this user follows.
    async fn following_count(&self) -> i32 {
        to_int(self.0.following.len())
    }
}

/// Loads users by id in one batch, in the order given, skipping any that are gone.
pub(crate) async fn load_users(ctx: &Context<'_>, ids: &[UserId]) -> Result<Vec<User>> {
    let request = ctx.request()?;
    let found = futures::future::try_join_all(ids.iter().map(|id| request.users.load_one(*id))).await?;
    Ok(found.into_iter().flatten().map(User).collect())
}

/// The authors of a page's documents, in one batch, when `node` (the
/// selection on one item) asks for `author`; empty otherwise. `Listed::wrap`
/// uses it so each item's `author` resolves without a batch of its own.
pub(crate) async fn authors_for(
    ctx: &Context<'_>,
    node: &Lookahead<'_>,
    ids: impl IntoIterator<Item = UserId>,
) -> Result<Found<UserId, UserDoc>> {
    if !node.field("author").exists() {
        return Ok(Found::default());
    }
    ctx.request()?.users.load_many(ids.into_iter().collect()).await
}

/// A document's author: the one its page loaded ahead, else through the
/// request's loader; `NOT_FOUND` if the author is gone.
///
/// Ready at once when loaded ahead (every item of a list), and boxed
/// otherwise, so the `author` field's future stays small (see [`related`]).
pub(crate) fn author_of<'a>(
    ctx: &'a Context<'_>,
    ahead: Option<&Arc<UserDoc>>,
    id: UserId,
) -> Either<Ready<ApiResult<User>>, BoxFuture<'a, ApiResult<User>>> {
    match ahead {
        Some(author) => Either::Left(ready(Ok(User(Arc::clone(author))))),
        None => Either::Right(Box::pin(async move {
            let author = ctx.request()?.users.load_one(id).await?;
            Ok(author.map(User).ok_or_else(|| vanished("author", id))?)
        })),
    }
}

/// A document's `author` as the plain path answers it: only an author its
/// page loaded ahead, else `None` and the executor loads it ([`author_of`]).
pub(crate) fn plain_author(ahead: Option<&Arc<UserDoc>>, field: &Field, env: &Env<'_>) -> Option<Value> {
    super::plain::object(&User(Arc::clone(ahead?)), &field.selection_set.node, env)
}

/// Loads one user by id through the request's loader.
pub(crate) async fn load_user(ctx: &Context<'_>, id: UserId) -> Result<Option<Arc<UserDoc>>> {
    // Boxed: see `connection::related`.
    Box::pin(ctx.request()?.users.load_one(id)).await
}

/// User queries.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user, or null when no token is sent.
    async fn viewer(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        Ok(viewer_doc(ctx).await?.map(User))
    }

    /// A user by id, or null if there is none.
    async fn user(&self, ctx: &Context<'_>, #[graphql(desc = "The user's id.")] id: ID) -> ApiResult<Option<User>> {
        let id = parse_id("id", &id)?;
        Ok(load_user(ctx, id).await?.map(User))
    }

    /// What `deleteUser` would delete and detach, with a token to make it
    /// refuse if that changes first. Only the account itself may ask; reads only.
    async fn delete_user_preview(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Your own account's id.")] id: ID,
    ) -> ApiResult<DeletionPlan> {
        let plan = read_as_viewer(ctx, "id", &id, |actor, id| PlanUserDeletion { actor, id }).await?;
        Ok(DeletionPlan::new(ctx, plan)?)
    }

    /// All users, newest first.
    async fn users(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page forward: at most this many items, 0–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Page forward: the items after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page backward: at most this many items from the end, 0–100.")] last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor.")] before: Option<String>,
    ) -> ApiResult<Connection<User>> {
        let page = PageArgs { first, after, last, before }.page()?;
        let docs = ctx.store()?.users_page(&page).await?.map(Arc::new);
        Ok(connection::build(ctx, docs, &page, Total::All(Collection::Users), Chronological::cursor_key).await?)
    }
}

/// Input of `signUp`.
#[derive(InputObject)]
pub struct SignUpInput {
    /// Display name, 1–64 characters.
    pub name: String,
    /// A valid email address; compared case-insensitively.
    pub email: String,
    /// At least 8 characters.
    pub password: String,
}

/// Input of `logIn`.
#[derive(InputObject)]
pub struct LogInInput {
    /// The account's email.
    pub email: String,
    /// The account's password.
    pub password: String,
}

/// A bearer token and the user it belongs to.
#[derive(SimpleObject)]
pub struct AuthPayload {
    /// Send as `Authorization: Bearer <token>`.
    pub token: String,
    /// The signed-in user.
    pub user: User,
}

/// Both users of a follow or unfollow, as they are after it: the viewer's
/// `followingCount` and the other user's `followerCount` both changed.
pub struct FollowPayload(pub Follow);

/// Both users of a follow or unfollow, as they are after it: the viewer's
/// `followingCount` and the other user's `followerCount` both changed.
#[Object]
impl FollowPayload {
    /// The viewer, who follows (or stopped following).
    async fn follower(&self) -> User {
        User::from(self.0.follower.clone())
    }

    /// The user followed (or no longer followed).
    async fn followee(&self) -> User {
        User::from(self.0.followee.clone())
    }
}

/// Account and follow mutations.
#[derive(Default)]
pub struct UserMutation;

/// Issues a token for `user` and signs it in for the rest of this response.
pub(crate) fn signed_in(ctx: &Context<'_>, SignedIn { user, token }: SignedIn) -> Result<AuthPayload> {
    // A second sign-in in one request keeps the first identity; that is harmless.
    let _ = ctx.request()?.signed_in.set(user.id);
    Ok(AuthPayload { token, user: User::from(user) })
}

#[Object]
impl UserMutation {
    /// Creates an account and signs it in. A taken email is `CONFLICT`.
    async fn sign_up(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new account's name, email and password.")] input: SignUpInput,
    ) -> ApiResult<AuthPayload> {
        let (accounts, store, ip) = (&ctx.app()?.accounts, ctx.store()?, ctx.request()?.client_ip);
        let done = accounts.sign_up(store, ip, &input.name, &input.email, &input.password).await?;
        Ok(signed_in(ctx, done)?)
    }

    /// Signs in. A wrong password and an unknown email get the same `UNAUTHENTICATED`
    /// answer after the same work. Repeated failures from one address for one
    /// email make that address wait; other addresses are not affected.
    async fn log_in(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The account's email and password.")] input: LogInInput,
    ) -> ApiResult<AuthPayload> {
        let (accounts, store, ip) = (&ctx.app()?.accounts, ctx.store()?, ctx.request()?.client_ip);
        let done = accounts.log_in(store, ip, &input.email, input.password).await?;
        Ok(signed_in(ctx, done)?)
    }

    /// Follows a user (idempotent). Following yourself is `BAD_USER_INPUT`;
    /// a new follow when you already follow 5,000 users is `FORBIDDEN`.
    async fn follow_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to follow.")] user_id: ID,
    ) -> ApiResult<FollowPayload> {
        Ok(FollowPayload(as_viewer(ctx, "userId", &user_id, |follower, target| FollowUser { follower, target }).await?))
    }

    /// Stops following a user (idempotent).
    async fn unfollow_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The user to stop following.")] user_id: ID,
    ) -> ApiResult<FollowPayload> {
        Ok(FollowPayload(
            as_viewer(ctx, "userId", &user_id, |follower, target| UnfollowUser { follower, target }).await?,
        ))
    }

    /// Deletes your own account with its posts, the comments on them and your
    /// comments elsewhere, and pulls your id from every like and follow, all in
    /// one transaction.
    async fn delete_user(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Your own account's id.")] id: ID,
        #[graphql(
            desc = "A `deleteUserPreview` token: refuse with `PLAN_CHANGED` unless the delete is exactly that plan."
        )]
        expected_plan: Option<String>,
    ) -> ApiResult<DeleteUserPayload> {
        super::deletion::check_payload_selection(ctx)?;
        let budget = ctx.cascade_budget()?;
        if let Some(token) = expected_plan.as_deref() {
            // A stale token is refused from a read snapshot first, so
            // repeating one costs the single writer nothing.
            read_as_viewer(ctx, "id", &id, |actor, id| PlanUserDeletion { actor, id }).await?.confirm(Some(token))?;
        }
        let done = as_viewer(ctx, "id", &id, |actor, id| DeleteUser { actor, id, expected_plan, budget }).await?;
        Ok(DeleteUserPayload(done))
    }
}
