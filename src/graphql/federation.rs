//! Apollo Federation v2: blogql as a subgraph that owns `User`, `Post` and `Comment`.
//!
//! Federation is a setting (`--federation`), off by default, because its root
//! fields (`_service`, `_entities`) and types (`_Any`, `_Entity`) mean nothing
//! to a client talking to blogql directly. With it on, the three types carry
//! `@key(fields: "id")`, `_service { sdl }` answers the subgraph SDL that
//! `blogql print-schema --federation` prints, and `_entities` resolves
//! references through the request's loaders: one batch per type, however
//! many representations a router sends.

use async_graphql::{Context, ID, MergedObject, Object};

use super::comment::Comment;
use super::error::ApiResult;
use super::post::Post;
use super::user::{User, load_user};
use super::{CtxExt, Query, parse_id};

/// The entity resolvers a router calls through `_entities`.
#[derive(Default)]
pub struct EntityQuery;

#[Object]
impl EntityQuery {
    /// Resolves a `User` reference by id.
    #[graphql(entity)]
    async fn user_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<User>> {
        Ok(load_user(ctx, parse_id("id", &id)?).await?.map(User))
    }

    /// Resolves a `Post` reference by id.
    #[graphql(entity)]
    async fn post_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Post>> {
        Ok(ctx.request()?.posts.load_one(parse_id("id", &id)?).await?.map(Post::from))
    }

    /// Resolves a `Comment` reference by id.
    #[graphql(entity)]
    async fn comment_by_id(&self, ctx: &Context<'_>, id: ID) -> ApiResult<Option<Comment>> {
        Ok(ctx.request()?.comments.load_one(parse_id("id", &id)?).await?.map(Comment::from))
    }
}

/// The root query of the subgraph: every client query plus the entity resolvers.
#[derive(MergedObject, Default)]
pub struct FederatedQuery(Query, EntityQuery);
