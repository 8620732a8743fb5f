//! Posts: the `Post` type, post queries, and writing, editing, deleting and liking posts.

use std::sync::Arc;

use async_graphql::parser::types::Field;
use async_graphql::{Context, ID, InputObject, Lookahead, Object, ScalarType, Value};

use super::batch::Found;
use super::comment::Comment;
use super::connection::{self, Connection, Listed, PageArgs, Total, related};
use super::deletion::{DeletionPlan, payload_ids};
use super::error::ApiResult;
use super::plain::{self, Env, Plain};
use super::scalars::Timestamp;
use super::user::{User, author_of, authors_for, load_user, plain_author};
use super::{CtxExt, Query, as_viewer, parse_id, read_as_viewer, require_viewer, run_as, to_id, to_int, viewer_id};
use crate::cmd::{CreatePost, DeletePost, DeletedPost, LikePost, PlanPostDeletion, UnlikePost, UpdatePost};
use crate::domain::{Page, PostBody, PostChanges, Title};
use crate::error::Result;
use crate::model::{Chronological, CommentDoc, PostDoc, UserDoc, UserId};
use crate::store::{Collection, CommentsOf, CountOf, Paged, PostsOf, UsersOf};

/// A blog post, with what the list it came from loaded for the whole page
/// at once (see [`Listed::wrap`]): its author, and its first page of comments.
pub struct Post {
    /// The stored post.
    pub doc: Arc<PostDoc>,
    /// The author, when already loaded with the page.
    author: Option<Arc<UserDoc>>,
    /// One page of comments, when already loaded with the page. Boxed: most
    /// lists load no comments ahead, and the page inline would make every
    /// `Post` (moved into its edge, then into its field futures) 160 bytes
    /// instead of 24.
    comments: Option<Box<CommentsAhead>>,
}

/// A page of a post's comments loaded by the list the post came from,
/// with the comments' authors when those are selected.
struct CommentsAhead {
    page: Page,
    docs: Paged<Arc<CommentDoc>>,
    authors: Arc<Found<UserId, UserDoc>>,
}

impl From<Arc<PostDoc>> for Post {
    fn from(doc: Arc<PostDoc>) -> Self {
        Post { doc, author: None, comments: None }
    }
}

impl From<PostDoc> for Post {
    fn from(doc: PostDoc) -> Self {
        Post::from(Arc::new(doc))
    }
}

impl Listed for Post {
    const CONNECTION: &'static str = "PostConnection";
    const EDGE: &'static str = "PostEdge";
    type Doc = PostDoc;

    /// Loads what the selection asks of every post on the page, each kind in
    /// one batch: the authors, and the comment pages (then their authors).
    /// These are the round trips the fields would make anyway, one per
    /// level, but each post's fields then resolve at once instead of each
    /// suspending on a batch of its own.
    async fn wrap(ctx: &Context<'_>, docs: Vec<Arc<PostDoc>>, node: Lookahead<'_>) -> Result<Vec<Self>> {
        let comments_page = connection::page_ahead(&node, "comments");
        let page_keys = match comments_page {
            Some(page) => docs.iter().map(|d| (CommentsOf::Post, d.id.oid(), page)).collect(),
            None => vec![],
        };
        let (authors, pages) = futures::try_join!(
            authors_for(ctx, &node, docs.iter().map(|d| d.author)),
            ctx.request()?.comment_pages.load_many(page_keys)
        )?;
        // No pages loaded ahead means no ids, and so no batch.
        let comment_node = node.field("comments").field("edges").field("node");
        let commenter_ids: Vec<UserId> = pages.values().flat_map(|p| p.docs.iter().map(|c| c.author)).collect();
        let commenters = Arc::new(authors_for(ctx, &comment_node, commenter_ids).await?);
        Ok(docs
            .into_iter()
            .map(|doc| Post {
                author: authors.get(&doc.author).cloned(),
                comments: comments_page.map(|page| {
                    Box::new(CommentsAhead {
                        page,
                        docs: pages
                            .get(&(CommentsOf::Post, doc.id.oid(), page))
                            .map(|p| Paged::clone(p))
                            .unwrap_or_default(),
                        authors: Arc::clone(&commenters),
                    })
                }),
                doc,
            })
            .collect())
    }
}

/// The fields of a post answered from memory (see [`plain`]): all but
/// `likedBy`, a page of its own, and `viewerHasLiked`, which needs the
/// viewer; `author` and the `comments` page only when the list loaded them.
impl Plain for Post {
    fn plain(&self, field: &Field, env: &Env<'_>) -> Option<Value> {
        let doc = &self.doc;
        Some(match field.name.node.as_str() {
            "id" => Value::String(to_id(doc.id).0),
            "cursor" => Value::String(doc.cursor_key().encode()),
            "title" => Value::String(doc.title.clone()),
            "body" => Value::String(doc.body.clone()),
            "author" => plain_author(self.author.as_ref(), field, env)?,
            "createdAt" => Timestamp(doc.created_at).to_value(),
            "updatedAt" => Timestamp(doc.updated_at).to_value(),
            "commentCount" => Value::from(to_int(doc.comment_count)),
            "likeCount" => Value::from(to_int(doc.liked_by.len())),
            "comments" => {
                let page = connection::page_of(field, env.vars)?;
                plain::object(&self.comments_ahead(page)?, &field.selection_set.node, env)?
            }
            _ => return None,
        })
    }
}

impl Post {
    /// The post's comment count, as `comments { totalCount }` answers it.
    fn comments_total(&self) -> Total {
        Total::Known(usize::try_from(self.doc.comment_count).unwrap_or(0))
    }

    /// The connection of the comment page loaded ahead, with its authors,
    /// if the posts list loaded exactly `page` ahead: the one test both the
    /// `comments` field and the plain path answer by.
    fn comments_ahead(&self, page: Page) -> Option<Connection<Comment>> {
        let ahead = self.comments.as_ref().filter(|ahead| ahead.page == page)?;
        Some(connection::assemble_now(
            ahead.docs.clone(),
            &ahead.page,
            self.comments_total(),
            Chronological::cursor_key,
            |docs| docs.into_iter().map(|doc| Comment::ahead(doc, &ahead.authors)).collect(),
        ))
    }
}

/// A blog post.
#[Object]
impl Post {
    /// The post's id.
    pub(crate) async fn id(&self) -> ID {
        to_id(self.doc.id)
    }

    /// The post's place in any list of posts (the cursor its edge has in
    /// `posts`, `User.posts` and `feed`): pass the newest one you hold as
    /// `feedPostAdded(after:)` to resume without a gap.
    async fn cursor(&self) -> String {
        self.doc.cursor_key().encode()
    }

    /// Title, 1–200 characters.
    async fn title(&self) -> &str {
        &self.doc.title
    }

    /// Body text, at most 50,000 characters. Costs 200 toward the query's
    /// complexity (one per 1,000 bytes it may answer: a character is up to 4
    /// bytes of UTF-8), so aliasing it cannot multiply a small query into a
    /// huge response.
    async fn body(&self) -> &str {
        &self.doc.body
    }

    /// Who wrote the post.
    async fn author(&self, ctx: &Context<'_>) -> ApiResult<User> {
        author_of(ctx, self.author.as_ref(), self.doc.author).await
    }

    /// When the post was created.
    async fn created_at(&self) -> Timestamp {
        Timestamp(self.doc.created_at)
    }

    /// When the title or body last changed.
    async fn updated_at(&self) -> Timestamp {
        Timestamp(self.doc.updated_at)
    }

    /// Comments on the post, newest first.
    async fn comments(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page forward: at most this many items, 0–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Page forward: the items after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page backward: at most this many items from the end, 0–100.")] last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor.")] before: Option<String>,
    ) -> ApiResult<Connection<Comment>> {
        let args = PageArgs { first, after, last, before };
        match args.page().ok().and_then(|page| self.comments_ahead(page)) {
            Some(loaded) => Ok(loaded),
            None => related(ctx, CommentsOf::Post, self.doc.id, args, self.comments_total()).await,
        }
    }

    /// How many comments the post has.
    async fn comment_count(&self) -> i32 {
        to_int(self.doc.comment_count)
    }

    /// Users who like the post, newest account first.
    async fn liked_by(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page forward: at most this many items, 0–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Page forward: the items after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page backward: at most this many items from the end, 0–100.")] last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor.")] before: Option<String>,
    ) -> ApiResult<Connection<User>> {
        let args = PageArgs { first, after, last, before };
        related(ctx, UsersOf::Likers, self.doc.id, args, Total::Known(self.doc.liked_by.len())).await
    }

    /// How many users like the post.
    async fn like_count(&self) -> i32 {
        to_int(self.doc.liked_by.len())
    }

    /// Whether the signed-in viewer likes the post; false when anonymous.
    async fn viewer_has_liked(&self, ctx: &Context<'_>) -> ApiResult<bool> {
        // Boxed: see `connection::related`.
        Ok(Box::pin(viewer_id(ctx)).await?.is_some_and(|me| self.doc.liked_by.contains(&me)))
    }
}

/// Post queries.
#[derive(Default)]
pub struct PostQuery;

#[Object]
impl PostQuery {
    /// A post by id, or null if there is none.
    async fn post(&self, ctx: &Context<'_>, #[graphql(desc = "The post's id.")] id: ID) -> ApiResult<Option<Post>> {
        let id = parse_id("id", &id)?;
        Ok(ctx.request()?.posts.load_one(id).await?.map(Post::from))
    }

    /// What `deletePost` would delete, with a token to make it refuse if that
    /// changes first. Only the post's author may ask; reads only.
    async fn delete_post_preview(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post whose deletion to preview; it must be yours.")] id: ID,
    ) -> ApiResult<DeletionPlan> {
        let plan = read_as_viewer(ctx, "id", &id, |actor, id| PlanPostDeletion { actor, id }).await?;
        Ok(DeletionPlan::new(ctx, plan)?)
    }

    /// All posts, or one author's, newest first.
    async fn posts(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page forward: at most this many items, 0–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Page forward: the items after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page backward: at most this many items from the end, 0–100.")] last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor.")] before: Option<String>,
        #[graphql(desc = "Only this user's posts.")] author_id: Option<ID>,
    ) -> ApiResult<Connection<Post>> {
        let page = PageArgs { first, after, last, before }.page()?;
        let store = ctx.store()?;
        let (docs, total) = match author_id {
            Some(author) => {
                let author: UserId = parse_id("authorId", &author)?;
                let docs = store.pages_of(PostsOf::Author, &[(author.oid(), page)]).await?.pop().unwrap_or_default();
                (docs, Total::Of(CountOf::PostsByAuthor, author))
            }
            None => (store.posts_page(&page).await?, Total::All(Collection::Posts)),
        };
        Ok(connection::build(ctx, docs.map(Arc::new), &page, total, Chronological::cursor_key).await?)
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

/// What `deletePost` removed, with the objects it changed, so a client
/// cache can evict the post and its comments and refresh the author.
pub struct DeletePostPayload(pub DeletedPost);

/// What `deletePost` removed, with the objects it changed, so a client
/// cache can evict the post and its comments and refresh the author.
#[Object]
impl DeletePostPayload {
    /// The deleted post's id: evict it from your cache.
    async fn deleted_post_id(&self) -> ID {
        to_id(self.0.post)
    }

    /// The ids of the comments deleted with it, read in the deleting
    /// transaction: the first `first`; `deletedCommentCount` says how many in all.
    async fn deleted_comment_ids(
        &self,
        #[graphql(desc = "At most this many (0 to 1,000; default 1,000).")] first: Option<i32>,
    ) -> ApiResult<Vec<ID>> {
        Ok(payload_ids(&self.0.comments, first)?)
    }

    /// How many comments were deleted with it.
    async fn deleted_comment_count(&self) -> i32 {
        to_int(self.0.comments.len())
    }

    /// True when the deletion was staged (it was larger than one transaction
    /// may write): the post and its comments are already gone for every read
    /// and count, and a background job is deleting them for good.
    async fn staged(&self) -> bool {
        self.0.job.is_some()
    }

    /// The staged deletion's job; null when not staged.
    async fn deletion_job_id(&self) -> Option<ID> {
        self.0.job.map(to_id)
    }

    /// The author as it is after the delete (`postCount` and `posts` are
    /// fresh); null only if the account was deleted meanwhile.
    async fn author(&self, ctx: &Context<'_>) -> ApiResult<Option<User>> {
        Ok(load_user(ctx, self.0.author).await?.map(User))
    }

    /// The root query, to refetch anything else in the same round trip.
    async fn query(&self) -> Query {
        Query::default()
    }
}

/// Post mutations.
#[derive(Default)]
pub struct PostMutation;

#[Object]
impl PostMutation {
    /// Writes a post as the viewer; its id joins the viewer's `posts` in the same transaction.
    async fn create_post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The new post's title and body.")] input: CreatePostInput,
    ) -> ApiResult<Post> {
        let author = require_viewer(ctx).await?;
        let cmd = CreatePost { author, title: Title::parse(&input.title)?, body: PostBody::parse(&input.body)? };
        Ok(Post::from(run_as(ctx, author, cmd).await?))
    }

    /// Edits a post's title or body; only its author may.
    async fn update_post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to edit; it must be yours.")] id: ID,
        #[graphql(desc = "The fields to change.")] input: UpdatePostInput,
    ) -> ApiResult<Post> {
        let actor = require_viewer(ctx).await?;
        let id = parse_id("id", &id)?;
        let changes = PostChanges::parse(input.title.as_deref(), input.body.as_deref())?;
        Ok(Post::from(run_as(ctx, actor, UpdatePost { actor, id, changes }).await?))
    }

    /// Deletes a post with its comments and pulls it from the author's `posts`, in one transaction.
    async fn delete_post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to delete; it must be yours.")] id: ID,
        #[graphql(
            desc = "A `deletePostPreview` token: refuse with `PLAN_CHANGED` unless the delete is exactly that plan."
        )]
        expected_plan: Option<String>,
    ) -> ApiResult<DeletePostPayload> {
        super::deletion::check_payload_selection(ctx)?;
        let budget = ctx.cascade_budget()?;
        if let Some(token) = expected_plan.as_deref() {
            // A stale token is refused from a read snapshot first, so
            // repeating one costs the single writer nothing.
            read_as_viewer(ctx, "id", &id, |actor, id| PlanPostDeletion { actor, id }).await?.confirm(Some(token))?;
        }
        let done = as_viewer(ctx, "id", &id, |actor, id| DeletePost { actor, id, expected_plan, budget }).await?;
        Ok(DeletePostPayload(done))
    }

    /// Likes a post as the viewer (idempotent).
    async fn like_post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to like.")] post_id: ID,
    ) -> ApiResult<Post> {
        Ok(Post::from(as_viewer(ctx, "postId", &post_id, |liker, post| LikePost { liker, post }).await?))
    }

    /// Withdraws the viewer's like (idempotent).
    async fn unlike_post(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to stop liking.")] post_id: ID,
    ) -> ApiResult<Post> {
        Ok(Post::from(as_viewer(ctx, "postId", &post_id, |liker, post| UnlikePost { liker, post }).await?))
    }
}
