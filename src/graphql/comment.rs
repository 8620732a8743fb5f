//! Comments: the `Comment` type, the comment query, and commenting and deleting comments.

use std::sync::Arc;

use async_graphql::parser::types::Field;
use async_graphql::{Context, ID, InputObject, Lookahead, Object, ScalarType, Value};

use super::batch::Found;
use super::connection::Listed;
use super::error::ApiResult;
use super::plain::{Env, Plain};
use super::post::Post;
use super::scalars::Timestamp;
use super::user::{User, author_of, authors_for, plain_author};
use super::{CtxExt, Query, as_viewer, parse_id, require_viewer, run_as, to_id, vanished};
use crate::cmd::{CreateComment, DeleteComment, DeletedComment};
use crate::domain::CommentBody;
use crate::error::Result;
use crate::model::{Chronological, CommentDoc, UserDoc, UserId};

/// A comment on a post, with its author when the list it came from loaded
/// the authors of the whole page at once (see [`Listed::wrap`]).
pub struct Comment {
    /// The stored comment.
    pub doc: Arc<CommentDoc>,
    /// The author, when already loaded with the page.
    author: Option<Arc<UserDoc>>,
}

impl From<Arc<CommentDoc>> for Comment {
    fn from(doc: Arc<CommentDoc>) -> Self {
        Comment { doc, author: None }
    }
}

impl Comment {
    /// A comment whose author was loaded ahead, with its page; `authors` is that batch.
    pub(crate) fn ahead(doc: Arc<CommentDoc>, authors: &Found<UserId, UserDoc>) -> Self {
        Comment { author: authors.get(&doc.author).cloned(), doc }
    }
}

impl From<CommentDoc> for Comment {
    fn from(doc: CommentDoc) -> Self {
        Comment::from(Arc::new(doc))
    }
}

impl Listed for Comment {
    const CONNECTION: &'static str = "CommentConnection";
    const EDGE: &'static str = "CommentEdge";
    type Doc = CommentDoc;

    /// Loads the page's authors in one batch when `author` is selected (see `Post`'s).
    async fn wrap(ctx: &Context<'_>, docs: Vec<Arc<CommentDoc>>, node: Lookahead<'_>) -> Result<Vec<Self>> {
        let authors = authors_for(ctx, &node, docs.iter().map(|d| d.author)).await?;
        Ok(docs.into_iter().map(|doc| Comment::ahead(doc, &authors)).collect())
    }
}

/// The fields of a comment answered from memory (see [`super::plain`]): all but
/// `post`, which would load it; `author` only when its page loaded it.
impl Plain for Comment {
    fn plain(&self, field: &Field, env: &Env<'_>) -> Option<Value> {
        let doc = &self.doc;
        Some(match field.name.node.as_str() {
            "id" => Value::String(to_id(doc.id).0),
            "cursor" => Value::String(doc.cursor_key().encode()),
            "body" => Value::String(doc.body.clone()),
            "author" => plain_author(self.author.as_ref(), field, env)?,
            "createdAt" => Timestamp(doc.created_at).to_value(),
            _ => return None,
        })
    }
}

/// A comment on a post.
#[Object]
impl Comment {
    /// The comment's id.
    pub(crate) async fn id(&self) -> ID {
        to_id(self.doc.id)
    }

    /// The comment's place in any list of comments (the cursor its edge has
    /// in `Post.comments` and `User.comments`): pass the newest one you hold
    /// as `commentAdded(after:)` to resume without a gap.
    async fn cursor(&self) -> String {
        self.doc.cursor_key().encode()
    }

    /// Text, 1–5,000 characters. Costs 20 toward the query's complexity (one
    /// per 1,000 bytes it may answer: a character is up to 4 bytes of UTF-8).
    async fn body(&self) -> &str {
        &self.doc.body
    }

    /// Who wrote the comment.
    async fn author(&self, ctx: &Context<'_>) -> ApiResult<User> {
        author_of(ctx, self.author.as_ref(), self.doc.author).await
    }

    /// The post commented on.
    async fn post(&self, ctx: &Context<'_>) -> ApiResult<Post> {
        // Boxed: see `connection::related`.
        let post = Box::pin(ctx.request()?.posts.load_one(self.doc.post)).await?;
        Ok(post.map(Post::from).ok_or_else(|| vanished("post", self.doc.post))?)
    }

    /// When the comment was written.
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.doc.created_at)
    }
}

/// Comment queries.
#[derive(Default)]
pub struct CommentQuery;

#[Object]
impl CommentQuery {
    /// A comment by id, or null if there is none.
    async fn comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The comment's id.")] id: ID,
    ) -> ApiResult<Option<Comment>> {
        let id = parse_id("id", &id)?;
        Ok(ctx.request()?.comments.load_one(id).await?.map(Comment::from))
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

/// What `deleteComment` removed, with the post it changed.
pub struct DeleteCommentPayload(pub DeletedComment);

/// What `deleteComment` removed, with the post it changed.
#[Object]
impl DeleteCommentPayload {
    /// The deleted comment's id: evict it from your cache.
    async fn deleted_comment_id(&self) -> ID {
        to_id(self.0.comment)
    }

    /// The post the comment was on, as it is after the delete (`commentCount`
    /// is fresh); null if the post is gone.
    async fn post(&self, ctx: &Context<'_>) -> ApiResult<Option<Post>> {
        let Some(post) = self.0.post else {
            return Ok(None);
        };
        Ok(ctx.request()?.posts.load_one(post).await?.map(Post::from))
    }

    /// The root query, to refetch anything else in the same round trip.
    async fn query(&self) -> Query {
        Query::default()
    }
}

/// Comment mutations.
#[derive(Default)]
pub struct CommentMutation;

#[Object]
impl CommentMutation {
    /// Comments on a post as the viewer; the post's `commentCount` rises in the same transaction.
    async fn create_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to comment on and the text.")] input: CreateCommentInput,
    ) -> ApiResult<Comment> {
        let author = require_viewer(ctx).await?;
        let post = parse_id("postId", &input.post_id)?;
        let body = CommentBody::parse(&input.body)?;
        Ok(Comment::from(run_as(ctx, author, CreateComment { author, post, body }).await?))
    }

    /// Deletes a comment; its author or the post's author may.
    async fn delete_comment(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The comment to delete; yours, or one on your post.")] id: ID,
    ) -> ApiResult<DeleteCommentPayload> {
        Ok(DeleteCommentPayload(as_viewer(ctx, "id", &id, |actor, id| DeleteComment { actor, id }).await?))
    }
}
