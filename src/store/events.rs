//! Committed writes as events: the in-process hub that subscriptions listen on.
//!
//! A command says what its committed output means to a subscriber
//! ([`crate::store::Command::events`]); the backend hands those events to
//! the [`Hub`] right after the commit and never before it, so a write that
//! rolled back (or a MongoDB callback that ran again) publishes nothing.
//! The embedded store publishes on its one writer thread, so events leave
//! in commit order.
//!
//! One `tokio::sync::broadcast` channel per topic fans an event out to
//! every subscriber of that topic: publishing costs one send per topic,
//! never a task or a copy per subscriber. Each subscriber's queue is
//! bounded ([`QUEUE`]); one that falls behind by more is told so
//! ([`Missed::Lagged`]) and is ended, not buffered without end.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::sync::broadcast;

use crate::model::{CommentDoc, PostDoc, PostId, UserId};

/// Events one subscriber may fall behind by before it is ended.
pub const QUEUE: usize = 256;

/// What a committed write changed, as subscriptions see it.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// A comment was added (`commentAdded`); its post changed too.
    CommentAdded(Arc<CommentDoc>),
    /// A post changed: edited, liked or unliked, a comment added or deleted.
    PostChanged(PostId),
    /// A post is gone: deleted, with its author, or its deletion staged.
    /// The last event of its topic.
    PostDeleted(PostId),
    /// A new post (`feedPostAdded`).
    PostAdded(Arc<PostDoc>),
    /// `follower` started (`following: true`) or stopped following
    /// `followee`. It travels with the new posts, in the same order, so a
    /// feed subscription keeps its set of authors exact at every post
    /// without reading the store.
    FollowChanged {
        /// Who follows.
        follower: UserId,
        /// Whom.
        followee: UserId,
        /// Whether `follower` follows `followee` from now on.
        following: bool,
    },
}

/// Who listens for an event.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Everything that happens to one post.
    Post(PostId),
    /// New posts and follow changes, by anyone: each feed subscriber keeps
    /// its own set of authors.
    Feed,
}

impl Event {
    /// The topics this event goes to.
    fn topics(&self) -> impl Iterator<Item = Topic> {
        let post = match self {
            Event::CommentAdded(comment) => Some(comment.post),
            Event::PostChanged(id) | Event::PostDeleted(id) => Some(*id),
            Event::PostAdded(_) | Event::FollowChanged { .. } => None,
        };
        let feed = matches!(self, Event::PostAdded(_) | Event::FollowChanged { .. }).then_some(Topic::Feed);
        post.map(Topic::Post).into_iter().chain(feed)
    }
}

/// An event with its place in commit order: the number of the commit that
/// made it (the outbox's sequence number on MongoDB, the hub's own count of
/// commits on the embedded store).
pub type Numbered = (u64, Arc<Event>);

/// The topics somebody listens on, each with its broadcast channel.
#[derive(Debug, Default)]
pub struct Hub {
    topics: Mutex<HashMap<Topic, broadcast::Sender<Numbered>>>,
    /// The number of the last commit published.
    last: std::sync::atomic::AtomicU64,
    /// Events that reached a listener, since start-up.
    published: std::sync::atomic::AtomicU64,
    /// Where the published events come from.
    source: Mutex<Source>,
}

/// Where a hub's events come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Source {
    /// The store's own commits (the embedded store's writer).
    #[default]
    Commits,
    /// A change stream on the MongoDB outbox (a real replica set).
    ChangeStream,
    /// Polls of the MongoDB outbox (no change streams: mongoeco, or a stream that could not resume).
    Poll,
}

/// Why a subscriber got no next event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// It fell more than [`QUEUE`] events behind: the events in between are lost to it.
    Lagged,
    /// The hub is gone (the server is stopping).
    Closed,
}

/// One subscriber's place on one topic; leaving the topic when dropped.
#[derive(Debug)]
pub struct Listener {
    hub: Arc<Hub>,
    topic: Topic,
    rx: Option<broadcast::Receiver<Numbered>>,
    /// Commits up to this number were made before the subscriber started:
    /// what they did is in the store it reads, so their events are skipped.
    after: u64,
}

impl Hub {
    /// Starts listening on `topic`: every event published from now on reaches the listener.
    pub fn listen(self: &Arc<Self>, topic: Topic) -> Listener {
        let rx = self
            .topics
            .lock()
            .ok()
            .map(|mut topics| topics.entry(topic).or_insert_with(|| broadcast::channel(QUEUE).0).subscribe());
        Listener { hub: Arc::clone(self), topic, rx, after: 0 }
    }

    /// The number of the last commit published here (the embedded store's
    /// horizon: it publishes each commit's events once its group is durable;
    /// a subscription's replay drops, by id, what it already read).
    pub fn last(&self) -> u64 {
        self.last.load(std::sync::atomic::Ordering::Acquire)
    }

    /// Whether anybody listens at all: a command skips building its events otherwise.
    pub fn is_heard(&self) -> bool {
        self.topics.lock().map(|topics| !topics.is_empty()).unwrap_or(false)
    }

    /// Sends each event to its topics' listeners, in order, numbered as the
    /// next commit. Called once the commit that the events describe is durable.
    pub fn publish(&self, events: Vec<Event>) {
        let next = self.last() + 1;
        self.publish_numbered(next, events);
    }

    /// Sends each event to its topics' listeners, in order, as commit
    /// number `seq` (the MongoDB outbox's tail, which knows the number).
    pub fn publish_numbered(&self, seq: u64, events: Vec<Event>) {
        let Ok(topics) = self.topics.lock() else { return };
        self.last.fetch_max(seq, std::sync::atomic::Ordering::AcqRel);
        if events.is_empty() {
            return;
        }
        let mut heard = 0;
        for event in events {
            let event = Arc::new(event);
            let mut sent = false;
            for topic in event.topics() {
                if let Some(sender) = topics.get(&topic) {
                    // No receiver left is not an error: the last one is leaving.
                    sent |= sender.send((seq, Arc::clone(&event))).is_ok();
                }
            }
            heard += u64::from(sent);
        }
        self.published.fetch_add(heard, std::sync::atomic::Ordering::Relaxed);
    }

    /// Events that reached at least one listener, since start-up (for `/metrics`).
    pub fn published(&self) -> u64 {
        self.published.load(std::sync::atomic::Ordering::Relaxed)
    }

    /// Where the events come from now.
    pub fn source(&self) -> Source {
        self.source.lock().map(|source| *source).unwrap_or_default()
    }

    /// Records where the events come from (the MongoDB outbox's tail).
    pub fn set_source(&self, source: Source) {
        if let Ok(mut current) = self.source.lock() {
            *current = source;
        }
    }

    /// How many topics have listeners (for `/metrics` and tests).
    pub fn topics(&self) -> usize {
        self.topics.lock().map(|topics| topics.len()).unwrap_or(0)
    }

    /// How many listeners there are, over every topic (for `/metrics` and tests).
    pub fn listeners(&self) -> usize {
        self.topics.lock().map(|topics| topics.values().map(broadcast::Sender::receiver_count).sum()).unwrap_or(0)
    }
}

impl Listener {
    /// Skips the events of commits up to number `horizon`: the subscriber
    /// reads the store after them, so it sees what they did already.
    pub fn skip_through(&mut self, horizon: u64) {
        self.after = self.after.max(horizon);
    }

    /// The next event on the topic, in publishing order.
    pub async fn next(&mut self) -> Result<Arc<Event>, Missed> {
        let Some(rx) = &mut self.rx else { return Err(Missed::Closed) };
        loop {
            match rx.recv().await {
                Ok((seq, _)) if seq <= self.after => {}
                Ok((_, event)) => return Ok(event),
                Err(broadcast::error::RecvError::Lagged(_)) => return Err(Missed::Lagged),
                Err(broadcast::error::RecvError::Closed) => return Err(Missed::Closed),
            }
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        // The last listener of a topic takes the topic with it, so the map
        // holds only topics somebody listens on.
        let Some(rx) = self.rx.take() else { return };
        if let Ok(mut topics) = self.hub.topics.lock() {
            drop(rx);
            if topics.get(&self.topic).is_some_and(|sender| sender.receiver_count() == 0) {
                topics.remove(&self.topic);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use bson::DateTime;

    use super::*;
    use crate::model::CommentId;

    fn comment(post: PostId) -> Event {
        Event::CommentAdded(Arc::new(CommentDoc {
            id: CommentId::new(),
            body: "c".into(),
            post,
            author: UserId::new(),
            created_at: DateTime::now(),
        }))
    }

    /// A listener gets its topic's events in publishing order and nobody
    /// else's; the last listener to leave takes its topic with it.
    #[tokio::test]
    async fn listeners_get_their_topics_events_in_order() {
        let hub = Arc::new(Hub::default());
        let (a, b) = (PostId::new(), PostId::new());
        let mut on_a = hub.listen(Topic::Post(a));
        let mut also_a = hub.listen(Topic::Post(a));
        assert!(hub.is_heard());
        let first = comment(a);
        hub.publish(vec![comment(b), first.clone(), Event::PostChanged(a), Event::PostDeleted(a)]);
        for listener in [&mut on_a, &mut also_a] {
            assert_eq!(*listener.next().await.expect("first"), first);
            assert_eq!(*listener.next().await.expect("second"), Event::PostChanged(a));
            assert_eq!(*listener.next().await.expect("third"), Event::PostDeleted(a));
        }
        drop(on_a);
        assert_eq!(hub.topics(), 1, "another listener remains");
        drop(also_a);
        assert_eq!(hub.topics(), 0);
        assert!(!hub.is_heard());
    }

    /// A listener that falls more than the queue behind is told it lagged,
    /// instead of the hub buffering for it without end.
    #[tokio::test]
    async fn a_listener_that_falls_behind_is_told() {
        let hub = Arc::new(Hub::default());
        let post = PostId::new();
        let mut slow = hub.listen(Topic::Post(post));
        hub.publish((0..=QUEUE).map(|_| Event::PostChanged(post)).collect());
        assert_eq!(slow.next().await, Err(Missed::Lagged));
    }

    /// New posts go to the feed topic, and nowhere else.
    #[tokio::test]
    async fn new_posts_go_to_the_feed_topic() {
        let hub = Arc::new(Hub::default());
        let post = Arc::new(PostDoc {
            id: PostId::new(),
            title: "t".into(),
            body: String::new(),
            author: UserId::new(),
            liked_by: vec![],
            comment_count: 0,
            created_at: DateTime::now(),
            updated_at: DateTime::now(),
            deleting: None,
        });
        let id = post.id;
        let mut feed = hub.listen(Topic::Feed);
        let mut on_post = hub.listen(Topic::Post(id));
        hub.publish(vec![Event::PostAdded(Arc::clone(&post)), Event::PostChanged(id)]);
        assert_eq!(*feed.next().await.expect("new post"), Event::PostAdded(post));
        assert_eq!(*on_post.next().await.expect("change"), Event::PostChanged(id), "not the new post");
    }

    /// A listener skips the events of commits up to its horizon (made
    /// before it started: its reads see them), whatever order they are
    /// published in, and gets every later one; the hub's number follows the
    /// highest commit published.
    #[tokio::test]
    async fn a_listener_skips_commits_before_its_horizon() {
        let hub = Arc::new(Hub::default());
        let post = PostId::new();
        let mut listener = hub.listen(Topic::Post(post));
        listener.skip_through(5);
        for seq in [4, 5, 6, 7] {
            hub.publish_numbered(seq, vec![Event::PostChanged(post)]);
        }
        hub.publish(vec![Event::PostDeleted(post)]);
        assert_eq!(hub.last(), 8);
        assert_eq!(*listener.next().await.expect("6"), Event::PostChanged(post));
        assert_eq!(*listener.next().await.expect("7"), Event::PostChanged(post));
        assert_eq!(*listener.next().await.expect("8"), Event::PostDeleted(post));
    }
}
