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

use bson::oid::ObjectId;

use async_graphql::{Context, ID, Object, Subscription};
use futures::stream::BoxStream;
use futures::{Stream, StreamExt};

use super::comment::Comment;
use super::error::{ApiError, ApiResult};
use super::post::Post;
use super::{CtxExt, load_viewer, parse_id, to_id};
use crate::domain::{CursorKey, MAX_PAGE, Page};
use crate::error::{Error, Result};
use crate::model::{Chronological, PostDoc, PostId, UserId};
use crate::store::events::{Event, Listener, Missed, Topic};
use crate::store::{CommentsOf, Paged, Store};

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

/// Replays what a list holds newer than `after` (the resume cursor), oldest
/// first, read `MAX_PAGE` at a time through `fetch` (a page of the list,
/// hidden documents left out); `BAD_USER_INPUT` past `max` items
/// (`--max-subscription-replay`): read the list's connection instead, then
/// resume from its newest.
async fn replay<D, F>(after: &str, max: usize, fetch: impl Fn(Page) -> F) -> Result<Vec<D>>
where
    D: Chronological,
    F: Future<Output = Result<Paged<D>>>,
{
    let mut page = Page::newer_than(CursorKey::decode(after, "after")?, MAX_PAGE);
    let mut replayed = Vec::new();
    loop {
        let Paged { mut docs, cut } = fetch(page).await?;
        let more = docs.len() > page.size();
        docs.truncate(page.size());
        let next = match (more, cut, docs.last()) {
            (true, _, Some(last)) => Some(last.cursor_key()),
            (false, Some(cut), _) => Some(cut),
            _ => None,
        };
        replayed.extend(docs);
        if replayed.len() > max {
            return Err(Error::bad_input(
                "after",
                format!(
                    "more than {max} items were added after this cursor; read them from the list, \
                     then resume from its newest"
                ),
            ));
        }
        match next {
            Some(last) => page = page.resume(last, MAX_PAGE),
            None => return Ok(replayed),
        }
    }
}

/// The seam between a replay and the live events. The subscription listens
/// before it reads, so a document committed in between is both replayed and
/// heard live: its live event is skipped. Each replayed id is forgotten once
/// matched, so the set only shrinks.
struct Seam(Mutex<HashSet<ObjectId>>);

impl Seam {
    fn after<D: Chronological>(replayed: &[D]) -> Arc<Seam> {
        Arc::new(Seam(Mutex::new(replayed.iter().map(|doc| doc.cursor_key().id).collect())))
    }

    /// Whether the live event for document `id` was already sent by the replay.
    fn replayed(&self, id: ObjectId) -> bool {
        self.0.lock().is_ok_and(|mut ids| !ids.is_empty() && ids.remove(&id))
    }
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
    let listener = store.listen(Topic::Post(id)).await?;
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
    /// New comments on a post, in commit order. Completes when the post is
    /// deleted. With `after`, first replays, oldest first, the comments added
    /// since that cursor, then goes live with no gap and no repeat.
    async fn comment_added(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "The post to watch.")] post_id: ID,
        #[graphql(desc = "Resume: a comment cursor (`Comment.cursor`, or an edge's in `Post.comments`). \
                          The comments added after it come first (at most `--max-subscription-replay`, default 1,000).")]
        after: Option<String>,
    ) -> std::result::Result<BoxStream<'static, ApiResult<Comment>>, ApiError> {
        let (id, store, listener) = watch_post(ctx, "postId", &post_id).await?;
        let max_replay = ctx.app()?.settings.http.max_subscription_replay;
        let earlier = match &after {
            Some(after) => {
                replay(after, max_replay, |page| {
                    let store = &store;
                    async move {
                        let mut pages = store.pages_of(CommentsOf::Post, &[(id.oid(), page)]).await?;
                        Ok(pages.pop().unwrap_or_default())
                    }
                })
                .await?
            }
            None => Vec::new(),
        };
        let seam = Seam::after(&earlier);
        let pick = move |_: Store, event: Arc<Event>| {
            let seam = Arc::clone(&seam);
            async move {
                match &*event {
                    Event::CommentAdded(comment) if seam.replayed(comment.id.oid()) => None,
                    Event::CommentAdded(comment) => Some(Ok(Some(Comment::from(Arc::clone(comment))))),
                    Event::PostDeleted(_) => Some(Ok(None)),
                    Event::PostChanged(_) | Event::PostAdded(_) | Event::FollowChanged { .. } => None,
                }
            }
        };
        let live = items(listener, store, pick, |item| matches!(item, Ok(None)));
        let earlier = futures::stream::iter(earlier.into_iter().map(|doc| Ok(Comment::from(Arc::new(doc)))));
        Ok(earlier.chain(live.filter_map(|item| async move { item.transpose() })).boxed())
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
    ///
    /// With `after`, first replays, oldest first, the feed's posts newer than
    /// that cursor (by whom the viewer follows now), then goes live with no
    /// gap and no repeat.
    async fn feed_post_added(
        &self,
        ctx: &Context<'_>,
        #[graphql(desc = "Resume: a post cursor (`Post.cursor`, or an edge's in `feed`). \
                          The feed's posts after it come first (at most `--max-subscription-replay`, default 1,000).")]
        after: Option<String>,
    ) -> std::result::Result<BoxStream<'static, ApiResult<Post>>, ApiError> {
        // Listen first, then read whom the viewer follows: a follow committed
        // in between is in both, which agree. No token is UNAUTHENTICATED here.
        let store = ctx.store()?.clone();
        let listener = store.listen(Topic::Feed).await?;
        let viewer = load_viewer(ctx).await?;
        let me = viewer.id;
        let authors: HashSet<UserId> = viewer.following.iter().copied().chain([me]).collect();
        let max_replay = ctx.app()?.settings.http.max_subscription_replay;
        let earlier = match &after {
            Some(after) => {
                let mut listed: Vec<UserId> = authors.iter().copied().collect();
                listed.sort_unstable();
                replay(after, max_replay, |page| {
                    let (store, listed) = (&store, &listed);
                    async move { store.feed(listed, &page).await }
                })
                .await?
            }
            None => Vec::new(),
        };
        let seam = Seam::after(&earlier);
        let authors = Arc::new(Mutex::new(authors));
        let pick = move |_: Store, event: Arc<Event>| {
            let (authors, seam) = (Arc::clone(&authors), Arc::clone(&seam));
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
                    (Event::PostAdded(post), Ok(authors)) => (authors.contains(&post.author)
                        && !seam.replayed(post.id.oid()))
                    .then(|| Ok(Post::from(Arc::clone(post)))),
                    (_, Err(err)) => Some(Err(err.clone())),
                    _ => None,
                }
            }
        };
        let earlier = futures::stream::iter(earlier.into_iter().map(|doc| Ok(Post::from(Arc::new(doc)))));
        Ok(earlier.chain(items(listener, store, pick, |_| false)).boxed())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A stand-in document: its place is its index.
    struct Doc(ObjectId);

    impl Chronological for Doc {
        fn cursor_key(&self) -> CursorKey {
            CursorKey { created_ms: 0, id: self.0 }
        }
    }

    proptest! {
        /// Documents 0..n commit in order; the client holds document `cursor`,
        /// listens before document `listen` commits and reads before `read`
        /// does. The replay (newer than the cursor, committed before the read)
        /// followed by the live events the seam lets through is every
        /// document after the cursor, once each, in order.
        #[test]
        fn replay_then_live_is_each_later_document_once(
            n in 1usize..40, cursor in 0usize..40, listen in 0usize..41, read in 0usize..41,
        ) {
            let cursor = cursor % n;
            let listen = cursor + 1 + listen % (n - cursor);
            let read = listen + read % (n + 1 - listen);
            let ids: Vec<ObjectId> = (0..n).map(|_| ObjectId::new()).collect();
            let replayed: Vec<Doc> = ids[cursor + 1..read].iter().map(|id| Doc(*id)).collect();
            let seam = Seam::after(&replayed);
            let mut sent: Vec<ObjectId> = replayed.iter().map(|doc| doc.0).collect();
            sent.extend(ids[listen..].iter().copied().filter(|id| !seam.replayed(*id)));
            prop_assert_eq!(&sent[..], &ids[cursor + 1..]);
        }
    }
}
