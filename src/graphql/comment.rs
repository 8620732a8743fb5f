//! Comments: the `Comment` type, the comment query, and commenting and deleting comments.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use chrono::{DateTime, Utc};

use super::loader::ById;
use super::post::Post;
use super::user::{User, load_user};
use super::{CtxExt, parse_id, to_id, vanished, viewer_tx};
use crate::cascade;
use crate::error::Result;
use crate::model::{CommentDoc, limits};
use crate::store::transact;

/// Loads comments by id, batched per request.
pub type CommentLoader = ById<CommentDoc>;

/// A comment on a post.
pub struct Comment(pub CommentDoc);

#[Object]
impl Comment {
    /// The comment's id.
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    /// Text, 1–5,000 characters.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// Who wrote the comment.
    async fn author(&self, ctx: &Context<'_>) -> Result<User> {
        load_user(ctx, self.0.author).await?.map(User).ok_or_else(|| vanished("author", self.0.author))
    }

    /// The post commented on.
    async fn post(&self, ctx: &Context<'_>) -> Result<Post> {
        ctx.request()?.posts.load_one(self.0.post).await?.map(Post).ok_or_else(|| vanished("post", self.0.post))
    }

    /// When the comment was written.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_chrono()
    }
}

/// Comment queries.
#[derive(Default)]
pub struct CommentQuery;

#[Object]
impl CommentQuery {
    /// A comment by id, or null if there is none.
    async fn comment(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Comment>> {
        let id = parse_id("id", &id)?;
        Ok(ctx.request()?.comments.load_one(id).await?.map(Comment))
    }
}

/// Input of `createComment`.
#[derive(InputObject)]
pub struct CreateCommentInput {
    /// The post to comment on.
    pub post_id: ID,
    /// 1–5,000 characters.
    pub body: String,
}

/// What `deleteComment` removed.
#[derive(SimpleObject)]
pub struct DeleteCommentPayload {
    /// The deleted comment's id.
    pub deleted_comment_id: ID,
}

/// Comment mutations.
#[derive(Default)]
pub struct CommentMutation;

#[Object]
impl CommentMutation {
    /// Comments on a post as the viewer; the post's `commentCount` rises in the same transaction.
    async fn create_comment(&self, ctx: &Context<'_>, input: CreateCommentInput) -> Result<Comment> {
        let me = ctx.require_viewer()?;
        let post = parse_id("postId", &input.post_id)?;
        limits::comment_body(&input.body)?;
        let body = input.body;
        let comment =
            transact(ctx.store()?, move |tx| Box::pin(cascade::create_comment(tx, me, post, body.clone()))).await?;
        Ok(Comment(comment))
    }

    /// Deletes a comment; its author or the post's author may.
    async fn delete_comment(&self, ctx: &Context<'_>, id: ID) -> Result<DeleteCommentPayload> {
        let id = viewer_tx(ctx, "id", &id, |tx, me, id| Box::pin(cascade::delete_comment(tx, me, id))).await?;
        Ok(DeleteCommentPayload { deleted_comment_id: to_id(id) })
    }
}
