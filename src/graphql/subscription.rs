//! Subscriptions: committed writes, as they happen.
//!
//! Each field listens on the store's event hub ([`crate::store::events`])
//! before it checks its arguments, so nothing committed after the check is
//! missed. Before each event is resolved the subscription's store view takes
//! a new snapshot ([`Store::renew`]); its loaders keep nothing between
//! batches, so every event is resolved against the store as committed then,
//! never against the snapshot the subscription started with.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use async_graphql::{Context, ID, Object, Subscription};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use super::comment::Comment;
use super::error::{ApiError, ApiResult};
use super::post::Post;
use super::{CtxExt, load_viewer, parse_id, to_id};
use crate::error::{Error, Result};
use crate::model::{PostDoc, PostId, UserId};
use crate::store::Store;
use crate::store::events::{Event, Listener, Missed, Topic};

/// Every subscription.
#[derive(Default)]
pub struct Subscription;

/// A change to a post, as `postChanged` reports it.
pub struct PostChange {
    id: PostId,
    post: Option<Arc<PostDoc>>,
}

/// A change to a post: it was edited, liked or unliked, or a comment on it
/// was added or deleted; or it is gone (`deleted: true`, the last event).
#[Object]
impl PostChange {
    /// The post's id.
    async fn id(&self) -> ID {
        to_id(self.id)
    }

    /// The post as committed by the change; null once it is deleted.
    async fn post(&self) -> Option<Post> {
        self.post.clone().map(Post::from)
    }

    /// Whether the post is gone: deleted, with its author, or its deletion staged.
    async fn deleted(&self) -> bool {
        self.post.is_none()
    }
}

/// Why a subscriber's stream ended early: it fell behind the hub.
fn fell_behind() -> Error {
    Error::unavailable("this subscription fell too far behind the events and was ended; subscribe again")
}

/// The items `pick` makes of `listener`'s events (each event read with the
/// store view renewed first), until one is an error or `done` says the last
/// has gone out. The hub closing ends the stream; a listener that fell
/// behind ends it with an error.
fn items<T, F>(
    listener: Listener,
    store: Store,
    pick: impl Fn(Store, Arc<Event>) -> F + Send + Sync + 'static,
    done: impl Fn(&Result<T>) -> bool + Send + Sync + 'static,
) -> impl Stream<Item = ApiResult<T>>
where
    T: Send + 'static,
    F: Future<Output = Option<Result<T>>> + Send,
{
    let (pick, done) = (Arc::new(pick), Arc::new(done));
    futures::stream::unfold(Some((listener, store)), move |state| {
        let (pick, done) = (Arc::clone(&pick), Arc::clone(&done));
        async move {
            let (mut listener, store) = state?;
            let item = loop {
                match listener.next().await {
                    Ok(event) => {
                        store.renew().await;
                        if let Some(item) = pick(store.clone(), event).await {
                            break item;
                        }
                    }
                    Err(Missed::Lagged) => break Err(fell_behind()),
                    Err(Missed::Closed) => return None,
                }
            };
            let next = (!done(&item) && item.is_ok()).then_some((listener, store));
            Some((item.map_err(Into::into), next))
        }
    })
}

/// Loads post `id` as committed now (hidden and missing posts are `None`).
async fn fresh_post(store: &Store, id: PostId) -> Result<Option<Arc<PostDoc>>> {
    Ok(store.posts_by_ids(&[id]).await?.pop().map(Arc::new))
}

/// Parses the post id in argument `field`, starts listening on that post's
/// topic, then checks the post exists (`NOT_FOUND` otherwise): listening
/// first, so nothing committed after the check is missed.
async fn watch_post(ctx: &Context<'_>, field: &'static str, arg: &ID) -> Result<(PostId, Store, Listener)> {
    let id: PostId = parse_id(field, arg)?;
    let store = ctx.store()?.clone();
    let listener = store.hub().listen(Topic::Post(id));
    if fresh_post(&store, id).await?.is_none() {
        return Err(Error::not_found("post", id));
    }
    Ok((id, store, listener))
}

/// Committed writes as they happen, over WebSocket (`graphql-transport-ws`
/// on `/graphql`): new comments on a post, changes to a post, and new posts
/// in the viewer's feed.
#[Subscription]
impl Subscription {
    /// New comments on a post, in commit order. Completes when the post is deleted.
    async fn comment_added(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to watch.")] post_id: ID,
    ) -> std::result::Result<BoxStream<'static, ApiResult<Comment>>, ApiError> {
        let (_, store, listener) = watch_post(ctx, "postId", &post_id).await?;
        let pick = |_: Store, event: Arc<Event>| async move {
            match &*event {
                Event::CommentAdded(comment) => Some(Ok(Some(Comment::from(Arc::clone(comment))))),
                Event::PostDeleted(_) => Some(Ok(None)),
                Event::PostChanged(_) | Event::PostAdded(_) | Event::FollowChanged { .. } => None,
            }
        };
        let stream = items(listener, store, pick, |item| matches!(item, Ok(None)));
        Ok(stream.filter_map(|item| async move { item.transpose() }).boxed())
    }

    /// Any change to a post: an edit, a like or unlike, a comment added or
    /// deleted. The last event has `deleted: true`, and then the
    /// subscription completes.
    async fn post_changed(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to watch.")] id: ID,
    ) -> std::result::Result<BoxStream<'static, ApiResult<PostChange>>, ApiError> {
        let (id, store, listener) = watch_post(ctx, "id", &id).await?;
        let pick = move |store: Store, event: Arc<Event>| async move {
            match &*event {
                Event::PostChanged(_) => Some(fresh_post(&store, id).await.map(|post| PostChange { id, post })),
                Event::PostDeleted(_) => Some(Ok(PostChange { id, post: None })),
                Event::CommentAdded(_) | Event::PostAdded(_) | Event::FollowChanged { .. } => None,
            }
        };
        Ok(items(listener, store, pick, |item| item.as_ref().is_ok_and(|change| change.post.is_none())).boxed())
    }

    /// New posts by the users the viewer follows (needs a token), as they
    /// are committed: a post is delivered if the viewer followed its author
    /// when it was committed (or wrote it).
    async fn feed_post_added(
        &self,
        ctx: &Context<'_>,
    ) -> std::result::Result<BoxStream<'static, ApiResult<Post>>, ApiError> {
        // Listen first, then read whom the viewer follows: a follow committed
        // in between is in both, which agree. No token is UNAUTHENTICATED here.
        let store = ctx.store()?.clone();
        let listener = store.hub().listen(Topic::Feed);
        let viewer = load_viewer(ctx).await?;
        let me = viewer.id;
        let authors: HashSet<UserId> = viewer.following.iter().copied().chain([me]).collect();
        let authors = Arc::new(Mutex::new(authors));
        let pick = move |_: Store, event: Arc<Event>| {
            let authors = Arc::clone(&authors);
            async move {
                let mut authors = authors.lock().map_err(|_| Error::internal("feed authors lock poisoned"));
                match (&*event, &mut authors) {
                    (Event::FollowChanged { follower, followee, following }, Ok(authors)) if *follower == me => {
                        if *following {
                            authors.insert(*followee);
                        } else if *followee != me {
                            authors.remove(followee);
                        }
                        None
                    }
                    (Event::PostAdded(post), Ok(authors)) => {
                        authors.contains(&post.author).then(|| Ok(Post::from(Arc::clone(post))))
                    }
                    (_, Err(err)) => Some(Err(err.clone())),
                    _ => None,
                }
            }
        };
        Ok(items(listener, store, pick, |_| false).boxed())
    }
}
