//! The home feed: the posts of the people the viewer follows, and the viewer's own.

use std::sync::Arc;

use crate::model::UserId;
use async_graphql::{Context, Object};

use super::connection::{self, Connection, PageArgs, Total};
use super::error::ApiResult;
use super::post::Post;
use super::{CtxExt, load_viewer};
use crate::model::Chronological;

/// The feed query.
#[derive(Default)]
pub struct FeedQuery;

#[Object]
impl FeedQuery {
    /// The posts written by the users you follow and by you, newest first:
    /// the first screen of a social app. Ordered like every post list, by
    /// `(createdAt desc, id desc)`, so a cursor from `posts` or `User.posts`
    /// works here too. Follows changes at once: a followee's new post is first
    /// on the next read, and an unfollowed, deleted or departing author's
    /// posts are gone. `totalCount` is the sum of the authors' post counts.
    /// Needs a token (`UNAUTHENTICATED` without one).
    async fn feed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Page forward: at most this many items, 0–100 (default 20).")] first: Option<i32>,
        #[graphql(desc = "Page forward: the items after this cursor.")] after: Option<String>,
        #[graphql(desc = "Page backward: at most this many items from the end, 0–100.")] last: Option<i32>,
        #[graphql(desc = "Page backward: the items before this cursor.")] before: Option<String>,
    ) -> ApiResult<Connection<Post>> {
        let viewer = load_viewer(ctx).await?;
        let page = PageArgs { first, after, last, before }.page()?;
        // The authors: whom the viewer follows, read fresh with this request,
        // and the viewer. Never a stored timeline per follower.
        let mut authors: Vec<UserId> = viewer.following.clone();
        authors.push(viewer.id);
        authors.sort_unstable();
        authors.dedup();
        let authors: Arc<[UserId]> = authors.into();
        let docs = ctx.store()?.feed(&authors, &page).await?;
        Ok(connection::build(ctx, docs.map(Arc::new), &page, Total::PostsBy(authors), Chronological::cursor_key)
            .await?)
    }
}
