//! Relay's object identification: the `Node` interface and `node`/`nodes`.
//!
//! Ids are ObjectIds, which are unique across collections, so an id alone
//! names one object. Resolving one looks it up in all three collections at
//! once through the request's loaders; `nodes` with any number of ids is
//! therefore three batched reads, not three per id.

use async_graphql::{Context, ID, Interface, Object};
use bson::oid::ObjectId;

use super::comment::Comment;
use super::error::ApiResult;
use super::post::Post;
use super::user::User;
use super::{CtxExt, parse_any_id};
use crate::domain::MAX_PAGE;
use crate::error::{Error, Result};
use crate::model::Id;

/// An object with a globally unique id that can be refetched with `Query.node`.
#[derive(Interface)]
#[graphql(field(
    name = "id",
    ty = "ID",
    desc = "A globally unique id: pass it to `Query.node` to refetch this object."
))]
pub enum Node {
    /// A user account.
    User(User),
    /// A blog post.
    Post(Post),
    /// A comment on a post.
    Comment(Comment),
}

/// Finds the object with `id` in whichever collection holds it.
async fn find(ctx: &Context<'_>, id: ObjectId) -> Result<Option<Node>> {
    let request = ctx.request()?;
    let (user, post, comment) = futures::try_join!(
        request.users.load_one(Id::from_oid(id)),
        request.posts.load_one(Id::from_oid(id)),
        request.comments.load_one(Id::from_oid(id))
    )?;
    Ok(user
        .map(|u| Node::User(User(u)))
        .or(post.map(|p| Node::Post(Post::from(p))))
        .or(comment.map(|c| Node::Comment(Comment::from(c)))))
}

/// `node` and `nodes`.
#[derive(Default)]
pub struct NodeQuery;

#[Object]
impl NodeQuery {
    /// The user, post or comment with this id, or null if there is none.
    async fn node(&self, ctx: &Context<'_>, #[graphql(desc = "Any object's `id`.")] id: ID) -> ApiResult<Option<Node>> {
        Ok(find(ctx, parse_any_id("id", &id)?).await?)
    }

    /// The objects with these ids, in the same order; null where an id names
    /// nothing. At most 100 ids; any number costs three batched reads.
    async fn nodes(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Up to 100 ids, of any object types.")] ids: Vec<ID>,
    ) -> ApiResult<Vec<Option<Node>>> {
        if ids.len() > MAX_PAGE {
            return Err(Error::bad_input("ids", format!("ids may hold at most {MAX_PAGE} ids")).into());
        }
        let ids = ids.iter().map(|id| parse_any_id("ids", id)).collect::<Result<Vec<_>>>()?;
        Ok(futures::future::try_join_all(ids.into_iter().map(|id| find(ctx, id))).await?)
    }
}
