//! Users: the `User` type, account mutations (sign-up, log-in, delete) and follows.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use bson::oid::ObjectId;
use chrono::{DateTime, Utc};

use super::comment::Comment;
use super::connection::{self, Connection, page_query};
use super::loader::ById;
use super::post::{Post, PostsOf};
use super::{CtxExt, parse_id, to_id, to_int, viewer_tx};
use crate::auth::BAD_CREDENTIALS;
use crate::cascade;
use crate::error::{Error, Result};
use crate::model::{Chronological, CursorKey, PageQuery, UserDoc, limits};
use crate::store::{CommentsOf, UsersOf, transact};

/// Loads users by id, batched per request.
pub type UserLoader = ById<UserDoc>;

/// A user account as clients see it. The password hash is never exposed,
/// and `email` only to its owner.
pub struct User(pub UserDoc);

/// Listing position of a user inside a relation (followers, following,
/// likers): relations order by id, newest account first.
pub(crate) fn relation_key(u: &UserDoc) -> CursorKey {
    CursorKey { created_ms: 0, id: u.id }
}

/// Loads one page of users related to `parent` and wraps it as a connection.
pub(crate) async fn related_users(
    ctx: &Context<'_>,
    of: UsersOf,
    parent: ObjectId,
    first: Option<i32>,
    after: Option<String>,
) -> Result<Connection<User>> {
    let page = page_query(first, after)?;
    let docs = ctx.request()?.user_pages.load_one((of, parent, page)).await?.unwrap_or_default();
    Ok(connection::build(docs, &page, relation_key, User))
}

#[Object]
impl User {
    /// The user's id.
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    /// Display name.
    async fn name(&self) -> &str {
        &self.0.name
    }

    /// The account's email; null unless the viewer is this user.
    async fn email(&self, ctx: &Context<'_>) -> Result<Option<&str>> {
        Ok((ctx.viewer_id()? == Some(self.0.id)).then_some(self.0.email.as_str()))
    }

    /// When the account was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_chrono()
    }

    /// The user's posts, newest first.
    #[graphql(complexity = "connection::page_cost(first, child_complexity)")]
    async fn posts(&self, ctx: &Context<'_>, first: Option<i32>, after: Option<String>) -> Result<Connection<Post>> {
        let page = page_query(first, after)?;
        let docs = ctx.request()?.post_pages.load_one((PostsOf::Author, self.0.id, page)).await?.unwrap_or_default();
        Ok(connection::build(docs, &page, Chronological::cursor_key, Post))
    }

    /// How many posts the user has written.
    async fn post_count(&self) -> i32 {
        to_int(self.0.posts.len())
    }

    /// The user's comments on any post, newest first.
    #[graphql(complexity = "connection::page_cost(first, child_complexity)")]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<Comment>> {
        let page = page_query(first, after)?;
        let docs =
            ctx.request()?.comment_pages.load_one((CommentsOf::Author, self.0.id, page)).await?.unwrap_or_default();
        Ok(connection::build(docs, &page, Chronological::cursor_key, Comment))
    }

    /// Users following this user, newest account first.
    #[graphql(complexity = "connection::page_cost(first, child_complexity)")]
    async fn followers(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<User>> {
        related_users(ctx, UsersOf::Followers, self.0.id, first, after).await
    }

    /// Users this user follows, newest account first.
    #[graphql(complexity = "connection::page_cost(first, child_complexity)")]
    async fn following(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<User>> {
        related_users(ctx, UsersOf::Following, self.0.id, first, after).await
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

/// Loads one user by id through the request's loader.
pub(crate) async fn load_user(ctx: &Context<'_>, id: ObjectId) -> Result<Option<UserDoc>> {
    ctx.request()?.users.load_one(id).await
}

/// User queries.
#[derive(Default)]
pub struct UserQuery;

#[Object]
impl UserQuery {
    /// The signed-in user, or null when no token is sent.
    async fn viewer(&self, ctx: &Context<'_>) -> Result<Option<User>> {
        let Some(id) = ctx.viewer_id()? else {
            return Ok(None);
        };
        Ok(load_user(ctx, id).await?.map(User))
    }

    /// A user by id, or null if there is none.
    async fn user(&self, ctx: &Context<'_>, id: ID) -> Result<Option<User>> {
        let id = parse_id("id", &id)?;
        Ok(load_user(ctx, id).await?.map(User))
    }

    /// All users, newest first.
    #[graphql(complexity = "connection::page_cost(first, child_complexity)")]
    async fn users(&self, ctx: &Context<'_>, first: Option<i32>, after: Option<String>) -> Result<Connection<User>> {
        let page: PageQuery = page_query(first, after)?;
        let docs = ctx.store()?.users_page(&page).await?;
        Ok(connection::build(docs, &page, Chronological::cursor_key, User))
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

/// What `deleteUser` removed.
#[derive(SimpleObject)]
pub struct DeleteUserPayload {
    /// The deleted account's id.
    pub deleted_user_id: ID,
    /// Posts deleted with it.
    pub deleted_post_count: i32,
    /// Comments deleted with it: those on its posts and its own elsewhere.
    pub deleted_comment_count: i32,
    /// Other documents its id was pulled from (`likedBy`, `followers`, `following`).
    pub detached_reference_count: i32,
}

/// Account and follow mutations.
#[derive(Default)]
pub struct UserMutation;

#[Object]
impl UserMutation {
    /// Creates an account and signs it in. A taken email is `CONFLICT`.
    async fn sign_up(&self, ctx: &Context<'_>, input: SignUpInput) -> Result<AuthPayload> {
        let name = limits::name(&input.name)?;
        let email = limits::email(&input.email)?;
        limits::password(&input.password)?;
        let app = ctx.app()?;
        let hash = app.auth.hash_password(input.password).await?;
        let user =
            transact(ctx.store()?, move |tx| Box::pin(cascade::sign_up(tx, name.clone(), email.clone(), hash.clone())))
                .await?;
        let token = app.auth.issue(user.id)?;
        // A second sign-in in one request keeps the first identity; that is harmless.
        let _ = ctx.request()?.signed_in.set(user.id);
        Ok(AuthPayload { token, user: User(user) })
    }

    /// Signs in. A wrong password and an unknown email get the same `UNAUTHENTICATED` answer.
    async fn log_in(&self, ctx: &Context<'_>, input: LogInInput) -> Result<AuthPayload> {
        let app = ctx.app()?;
        let email = input.email.trim().to_lowercase();
        if let Some(ip) = ctx.request()?.client_ip {
            app.logins_per_ip.hit(&ip.to_string())?;
        }
        app.logins_per_email.hit(&email)?;
        let user = if email.len() <= 254 { ctx.store()?.user_by_email(&email).await? } else { None };
        let hash = user.as_ref().map(|u| u.password_hash.clone());
        if !app.auth.verify_password(input.password, hash).await? {
            return Err(Error::Unauthenticated(BAD_CREDENTIALS.into()));
        }
        let user = user.ok_or_else(|| Error::Unauthenticated(BAD_CREDENTIALS.into()))?;
        let token = app.auth.issue(user.id)?;
        // A second sign-in in one request keeps the first identity; that is harmless.
        let _ = ctx.request()?.signed_in.set(user.id);
        Ok(AuthPayload { token, user: User(user) })
    }

    /// Follows a user (idempotent). Following yourself is `BAD_USER_INPUT`.
    async fn follow_user(&self, ctx: &Context<'_>, user_id: ID) -> Result<User> {
        let user = viewer_tx(ctx, "userId", &user_id, |tx, me, u| Box::pin(cascade::follow_user(tx, me, u))).await?;
        Ok(User(user))
    }

    /// Stops following a user (idempotent).
    async fn unfollow_user(&self, ctx: &Context<'_>, user_id: ID) -> Result<User> {
        let user = viewer_tx(ctx, "userId", &user_id, |tx, me, u| Box::pin(cascade::unfollow_user(tx, me, u))).await?;
        Ok(User(user))
    }

    /// Deletes your own account with its posts, the comments on them and your
    /// comments elsewhere, and pulls your id from every like and follow, all in
    /// one transaction.
    async fn delete_user(&self, ctx: &Context<'_>, id: ID) -> Result<DeleteUserPayload> {
        let done = viewer_tx(ctx, "id", &id, |tx, me, id| Box::pin(cascade::delete_user(tx, me, id))).await?;
        Ok(DeleteUserPayload {
            deleted_user_id: to_id(done.user),
            deleted_post_count: to_int(done.posts),
            deleted_comment_count: to_int(done.comments),
            detached_reference_count: to_int(done.detached),
        })
    }
}
