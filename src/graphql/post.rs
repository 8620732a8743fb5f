//! Posts: the `Post` type, post queries, and writing, editing, deleting and liking posts.

use async_graphql::{Context, ID, InputObject, Object, SimpleObject};
use bson::oid::ObjectId;
use chrono::{DateTime, Utc};

use super::comment::Comment;
use super::connection::{self, Connection, page_query};
use super::loader::{ById, Relation};
use super::user::{User, load_user, related_users};
use super::{CtxExt, parse_id, to_id, to_int, vanished, viewer_tx};
use crate::cascade;
use crate::error::{Error, Result};
use crate::model::{Chronological, PageQuery, PostDoc, limits};
use crate::store::{CommentsOf, DynStore, Pages, UsersOf, transact};

/// Loads posts by id, batched per request.
pub type PostLoader = ById<PostDoc>;

/// Which posts a one-to-many page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostsOf {
    /// The posts a user wrote (`User.posts`).
    Author,
}

impl Relation for PostsOf {
    type Doc = PostDoc;
    async fn fetch(self, store: &DynStore, keys: &[(ObjectId, PageQuery)]) -> Result<Pages<PostDoc>> {
        match self {
            PostsOf::Author => store.posts_by_authors(keys).await,
        }
    }
}

/// A blog post.
pub struct Post(pub PostDoc);

#[Object]
impl Post {
    /// The post's id.
    async fn id(&self) -> ID {
        to_id(self.0.id)
    }

    /// Title, 1–200 characters.
    async fn title(&self) -> &str {
        &self.0.title
    }

    /// Body text, at most 50,000 characters.
    async fn body(&self) -> &str {
        &self.0.body
    }

    /// Who wrote the post.
    async fn author(&self, ctx: &Context<'_>) -> Result<User> {
        load_user(ctx, self.0.author).await?.map(User).ok_or_else(|| vanished("author", self.0.author))
    }

    /// When the post was created.
    async fn created_at(&self) -> DateTime<Utc> {
        self.0.created_at.to_chrono()
    }

    /// When the title or body last changed.
    async fn updated_at(&self) -> DateTime<Utc> {
        self.0.updated_at.to_chrono()
    }

    /// Comments on the post, newest first.
    #[graphql(complexity = "connection::page_cost(first, child_complexity)")]
    async fn comments(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
    ) -> Result<Connection<Comment>> {
        let page = page_query(first, after)?;
        let docs =
            ctx.request()?.comment_pages.load_one((CommentsOf::Post, self.0.id, page)).await?.unwrap_or_default();
        Ok(connection::build(docs, &page, Chronological::cursor_key, Comment))
    }

    /// How many comments the post has.
    async fn comment_count(&self) -> i32 {
        to_int(self.0.comment_count)
    }

    /// Users who like the post, newest account first.
    #[graphql(complexity = "connection::page_cost(first, child_complexity)")]
    async fn liked_by(&self, ctx: &Context<'_>, first: Option<i32>, after: Option<String>) -> Result<Connection<User>> {
        related_users(ctx, UsersOf::Likers, self.0.id, first, after).await
    }

    /// How many users like the post.
    async fn like_count(&self) -> i32 {
        to_int(self.0.liked_by.len())
    }

    /// Whether the signed-in viewer likes the post; false when anonymous.
    async fn viewer_has_liked(&self, ctx: &Context<'_>) -> Result<bool> {
        Ok(ctx.viewer_id()?.is_some_and(|me| self.0.liked_by.contains(&me)))
    }
}

/// Post queries.
#[derive(Default)]
pub struct PostQuery;

#[Object]
impl PostQuery {
    /// A post by id, or null if there is none.
    async fn post(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Post>> {
        let id = parse_id("id", &id)?;
        Ok(ctx.request()?.posts.load_one(id).await?.map(Post))
    }

    /// All posts, or one author's, newest first.
    #[graphql(complexity = "connection::page_cost(first, child_complexity)")]
    async fn posts(
        &self,
        ctx: &Context<'_>,
        first: Option<i32>,
        after: Option<String>,
        author_id: Option<ID>,
    ) -> Result<Connection<Post>> {
        let page = page_query(first, after)?;
        let store = ctx.store()?;
        let docs = match author_id {
            Some(author) => {
                let author = parse_id("authorId", &author)?;
                store.posts_by_authors(&[(author, page)]).await?.pop().unwrap_or_default()
            }
            None => store.posts_page(&page).await?,
        };
        Ok(connection::build(docs, &page, Chronological::cursor_key, Post))
    }
}

/// Input of `createPost`.
#[derive(InputObject)]
pub struct CreatePostInput {
    /// 1–200 characters.
    pub title: String,
    /// At most 50,000 characters.
    pub body: String,
}

/// Input of `updatePost`; omitted fields keep their value, and at least one must be given.
#[derive(InputObject)]
pub struct UpdatePostInput {
    /// New title, 1–200 characters.
    pub title: Option<String>,
    /// New body, at most 50,000 characters.
    pub body: Option<String>,
}

/// What `deletePost` removed.
#[derive(SimpleObject)]
pub struct DeletePostPayload {
    /// The deleted post's id.
    pub deleted_post_id: ID,
    /// Comments deleted with it.
    pub deleted_comment_count: i32,
}

/// Post mutations.
#[derive(Default)]
pub struct PostMutation;

#[Object]
impl PostMutation {
    /// Writes a post as the viewer; its id joins the viewer's `posts` in the same transaction.
    async fn create_post(&self, ctx: &Context<'_>, input: CreatePostInput) -> Result<Post> {
        let me = ctx.require_viewer()?;
        limits::title(&input.title)?;
        limits::post_body(&input.body)?;
        let CreatePostInput { title, body } = input;
        let post =
            transact(ctx.store()?, move |tx| Box::pin(cascade::create_post(tx, me, title.clone(), body.clone())))
                .await?;
        Ok(Post(post))
    }

    /// Edits a post's title or body; only its author may.
    async fn update_post(&self, ctx: &Context<'_>, id: ID, input: UpdatePostInput) -> Result<Post> {
        let me = ctx.require_viewer()?;
        let id = parse_id("id", &id)?;
        if input.title.is_none() && input.body.is_none() {
            return Err(Error::bad_input("input", "give a new title or body"));
        }
        if let Some(title) = &input.title {
            limits::title(title)?;
        }
        if let Some(body) = &input.body {
            limits::post_body(body)?;
        }
        let UpdatePostInput { title, body } = input;
        let post =
            transact(ctx.store()?, move |tx| Box::pin(cascade::update_post(tx, me, id, title.clone(), body.clone())))
                .await?;
        Ok(Post(post))
    }

    /// Deletes a post with its comments and pulls it from the author's `posts`, in one transaction.
    async fn delete_post(&self, ctx: &Context<'_>, id: ID) -> Result<DeletePostPayload> {
        let done = viewer_tx(ctx, "id", &id, |tx, me, id| Box::pin(cascade::delete_post(tx, me, id))).await?;
        Ok(DeletePostPayload { deleted_post_id: to_id(done.post), deleted_comment_count: to_int(done.comments) })
    }

    /// Likes a post as the viewer (idempotent).
    async fn like_post(&self, ctx: &Context<'_>, post_id: ID) -> Result<Post> {
        let post = viewer_tx(ctx, "postId", &post_id, |tx, me, p| Box::pin(cascade::like_post(tx, me, p))).await?;
        Ok(Post(post))
    }

    /// Withdraws the viewer's like (idempotent).
    async fn unlike_post(&self, ctx: &Context<'_>, post_id: ID) -> Result<Post> {
        let post = viewer_tx(ctx, "postId", &post_id, |tx, me, p| Box::pin(cascade::unlike_post(tx, me, p))).await?;
        Ok(Post(post))
    }
}
