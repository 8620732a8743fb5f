//! Shared resolution: subscribers who ask the same thing share one run.
//!
//! Subscriptions with the same document, operation name, variables and
//! viewer (the same token, or none) form one `Fan`. The schema's stream
//! runs once for all of them; each answer is labelled, capped and encoded to
//! JSON once; and the bytes go to every member through one bounded
//! broadcast channel. Each member frames the shared bytes for its transport
//! (its WebSocket id, or an SSE event) without encoding them again, so an
//! event costs one resolution per distinct subscription plus a copy per
//! member, not a resolution per member.
//!
//! The viewer is part of the key, so no answer resolved for one token ever
//! reaches a subscriber with another: only tabs sharing a token, and
//! anonymous subscribers, share. A member that joins a running fan gets
//! what it sends from then on. The fan listened when it started, so a
//! joiner may get an event committed a moment before it joined (one the
//! fan was resolving), never one from before the fan's start. A resumed
//! subscription (`after:`) is never shared: its replay is its own. A
//! member that falls more than [`QUEUE`] answers behind is ended with an
//! error, as a hub listener is.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use bytes::Bytes;
use futures::StreamExt;
use futures::stream::BoxStream;
use sha2::{Digest, Sha256};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::super::steps::outcome;
use crate::code::Code;
use crate::graphql::Viewer;
use crate::metrics::Metrics;

/// Answers a member may fall behind its fan by before it is ended, beyond
/// what its socket's own queue holds. A broadcast channel allocates every
/// slot up front, so this is memory per run: at 256 a run cost 37 KiB
/// idle in `bench/subs.sh`, at 32 it costs about 20 KiB less. A run that
/// cannot be shared needs none: its one member pulls it.
pub const QUEUE: usize = 32;

/// What a fan sends its members: encoded once, shared by all.
#[derive(Debug, Clone)]
pub(super) enum Shared {
    /// One answer's JSON.
    Next(Bytes),
    /// The subscription was refused before it ran: its errors' JSON array. Nothing follows.
    Refused(Bytes),
    /// The stream ended.
    Complete,
}

/// Which subscriptions share a fan.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Key {
    /// SHA-256 of the document's text.
    document: [u8; 32],
    operation: Option<String>,
    /// The variables as JSON (two spellings of the same values only miss a chance to share).
    variables: String,
    /// The token's id; `None` for anonymous subscribers.
    viewer: Option<bson::oid::ObjectId>,
}

impl Key {
    /// The key of `request` as run by `viewer`, or `None` when it must
    /// run alone (not `shareable`, or an untrusted token).
    pub(super) fn of(request: &async_graphql::Request, viewer: &Viewer, shareable: bool) -> Option<Key> {
        let viewer = match viewer {
            _ if !shareable => return None,
            Viewer::Invalid(_) => return None,
            Viewer::User(token) => Some(token.id),
            Viewer::Anonymous => None,
        };
        Some(Key {
            document: Sha256::digest(request.query.as_bytes()).into(),
            operation: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).unwrap_or_default(),
            viewer,
        })
    }
}

/// The fans running in the process, by key.
#[derive(Debug, Default)]
pub struct Fans {
    running: Mutex<HashMap<Key, Weak<Fan>>>,
}

/// One shared run of a subscription; it stops when its last member leaves.
pub(super) struct Fan {
    key: Key,
    fans: Weak<Fans>,
    sender: broadcast::Sender<Shared>,
    /// Set before the last message is sent: a member that finds it set
    /// after subscribing may have missed that message, so starts a new fan.
    finished: Arc<AtomicBool>,
    task: AbortHandle,
}

/// One subscriber's answers.
pub(super) enum Member {
    /// Its own run, pulled as it sends, so it never falls behind: a
    /// subscription nobody may share (a resumed one replays a burst).
    Alone(Shaper),
    /// Its place in a fan.
    InFan {
        _fan: Arc<Fan>,
        rx: broadcast::Receiver<Shared>,
        /// It fell behind and was sent the error: it ends next.
        behind: bool,
    },
}

/// A run's answers as members get them: labelled, capped and encoded once;
/// a first answer that refuses the subscription, then nothing; then the end.
pub(super) struct Shaper {
    answers: BoxStream<'static, async_graphql::Response>,
    parses: bool,
    first: bool,
    done: bool,
    metrics: Option<Arc<Metrics>>,
}

impl Drop for Shaper {
    fn drop(&mut self) {
        if let Some(metrics) = &self.metrics {
            metrics.subscriptions.runs.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl Shaper {
    /// A run of `answers`, counted in `blogql_subscription_runs` until dropped.
    fn new(answers: BoxStream<'static, async_graphql::Response>, parses: bool, metrics: Option<Arc<Metrics>>) -> Self {
        if let Some(metrics) = &metrics {
            metrics.subscriptions.runs.fetch_add(1, Ordering::Relaxed);
        }
        Shaper { answers, parses, first: true, done: false, metrics }
    }

    /// The next thing to send; [`Shared::Complete`] once the run is over.
    async fn next(&mut self) -> Shared {
        if self.done {
            return Shared::Complete;
        }
        let Some(mut answer) = self.answers.next().await else {
            self.done = true;
            return Shared::Complete;
        };
        outcome::label_request_errors(&mut answer, self.parses);
        outcome::cap_errors(&mut answer);
        if let Some(metrics) = &self.metrics {
            metrics.subscriptions.resolved.fetch_add(1, Ordering::Relaxed);
        }
        if self.first && answer.data == async_graphql::Value::Null && !answer.errors.is_empty() {
            self.done = true;
            return Shared::Refused(encode(&answer.errors));
        }
        self.first = false;
        Shared::Next(encode(&answer))
    }
}

impl Fans {
    /// Joins the running fan for `key`, or starts one from `start` (called
    /// only then, so a shared subscription runs its resolver once); with no
    /// key, the subscription runs alone.
    pub(super) fn join(
        self: &Arc<Self>,
        key: Option<Key>,
        parses: bool,
        metrics: Option<&Arc<Metrics>>,
        start: impl FnOnce() -> BoxStream<'static, async_graphql::Response>,
    ) -> Member {
        let Some(key) = key else {
            return Member::Alone(Shaper::new(start(), parses, metrics.cloned()));
        };
        let Ok(mut running) = self.running.lock() else {
            // A poisoned registry only stops sharing: this member runs alone.
            return Fan::start(key, Weak::new(), parses, metrics, start()).1;
        };
        if let Some(fan) = running.get(&key).and_then(Weak::upgrade) {
            let rx = fan.sender.subscribe();
            if !fan.finished.load(Ordering::Acquire) {
                return Member::InFan { _fan: fan, rx, behind: false };
            }
        }
        let (fan, member) = Fan::start(key.clone(), Arc::downgrade(self), parses, metrics, start());
        running.insert(key, Arc::downgrade(&fan));
        member
    }

    /// Fans running now (for tests).
    pub fn len(&self) -> usize {
        self.running.lock().map(|running| running.values().filter(|fan| fan.strong_count() > 0).count()).unwrap_or(0)
    }

    /// Whether no fan runs.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Fan {
    /// Spawns the task that runs `answers` once for every member; returns
    /// the fan and its first member.
    fn start(
        key: Key,
        fans: Weak<Fans>,
        parses: bool,
        metrics: Option<&Arc<Metrics>>,
        answers: BoxStream<'static, async_graphql::Response>,
    ) -> (Arc<Fan>, Member) {
        let (sender, rx) = broadcast::channel(QUEUE);
        let finished = Arc::new(AtomicBool::new(false));
        let shaper = Shaper::new(answers, parses, metrics.cloned());
        let task = tokio::spawn(run(shaper, sender.clone(), Arc::clone(&finished)));
        let fan = Arc::new(Fan { key, fans, sender, finished, task: task.abort_handle() });
        (Arc::clone(&fan), Member::InFan { _fan: fan, rx, behind: false })
    }
}

impl Drop for Fan {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(fans) = self.fans.upgrade()
            && let Ok(mut running) = fans.running.lock()
            && running.get(&self.key).is_some_and(|fan| fan.strong_count() == 0)
        {
            running.remove(&self.key);
        }
    }
}

/// Runs the schema's stream once, encoding each answer for every member,
/// and lets the members take each one before resolving the next (a burst
/// of events would otherwise outrun them on one thread).
async fn run(mut shaper: Shaper, sender: broadcast::Sender<Shared>, finished: Arc<AtomicBool>) {
    loop {
        let shared = shaper.next().await;
        let last = !matches!(shared, Shared::Next(_));
        if last {
            finished.store(true, Ordering::Release);
        }
        let _ = sender.send(shared);
        if last {
            return;
        }
        tokio::task::yield_now().await;
    }
}

/// `value` as JSON bytes; an answer that cannot be encoded becomes an error answer.
pub(super) fn encode(value: &impl serde::Serialize) -> Bytes {
    match serde_json::to_vec(value) {
        Ok(bytes) => Bytes::from(bytes),
        Err(_) => Bytes::from_static(
            br#"{"errors":[{"message":"the answer could not be encoded","extensions":{"code":"INTERNAL_SERVER_ERROR"}}]}"#,
        ),
    }
}

impl Member {
    /// The next thing to send; a member that fell behind its fan gets one
    /// error answer, then the end.
    pub(super) async fn next(&mut self) -> Shared {
        let (rx, behind) = match self {
            Member::Alone(shaper) => return shaper.next().await,
            Member::InFan { rx, behind, .. } => (rx, behind),
        };
        if *behind {
            return Shared::Complete;
        }
        match rx.recv().await {
            Ok(shared) => shared,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                *behind = true;
                let error = serde_json::json!({ "errors": [{
                    "message": "this subscription fell too far behind the events and was ended; subscribe again",
                    "extensions": { "code": Code::ServiceUnavailable.as_str() },
                }] });
                Shared::Next(encode(&error))
            }
            Err(broadcast::error::RecvError::Closed) => Shared::Complete,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::AtomicUsize;

    fn key(variables: &str, viewer: Option<bson::oid::ObjectId>) -> Option<Key> {
        Some(Key { document: [0; 32], operation: None, variables: variables.to_owned(), viewer })
    }

    /// A stream that never answers, counting how often one was started.
    fn quiet(started: &AtomicUsize) -> BoxStream<'static, async_graphql::Response> {
        started.fetch_add(1, Ordering::Relaxed);
        futures::stream::pending().boxed()
    }

    /// Members with one key share one run; another variable or another
    /// token starts its own; the last member leaving removes the fan.
    #[tokio::test]
    async fn one_run_per_key_until_the_last_member_leaves() {
        let fans = Arc::new(Fans::default());
        let started = AtomicUsize::new(0);
        let token = bson::oid::ObjectId::new();
        let a = fans.join(key("p1", None), true, None, || quiet(&started));
        let b = fans.join(key("p1", None), true, None, || quiet(&started));
        assert_eq!((started.load(Ordering::Relaxed), fans.len()), (1, 1));
        let c = fans.join(key("p2", None), true, None, || quiet(&started));
        let d = fans.join(key("p1", Some(token)), true, None, || quiet(&started));
        assert_eq!((started.load(Ordering::Relaxed), fans.len()), (3, 3));
        drop((a, c, d));
        assert_eq!(fans.len(), 1, "b keeps its fan");
        drop(b);
        assert!(fans.is_empty());
    }

    /// Every member gets each answer, encoded once; the end reaches all; a
    /// member that joins a finished fan starts a new run instead of waiting.
    #[tokio::test]
    async fn members_share_answers_and_the_end() {
        let fans = Arc::new(Fans::default());
        let (tx, rx) = tokio::sync::mpsc::unbounded_channel::<async_graphql::Response>();
        let answers = futures::stream::unfold(rx, |mut rx| async move { rx.recv().await.map(|a| (a, rx)) }).boxed();
        let mut a = fans.join(key("p", None), true, None, || answers);
        let mut b = fans.join(key("p", None), true, None, || unreachable_stream());
        let answer = async_graphql::Response::new(async_graphql::Value::from("x"));
        tx.send(answer).expect("send");
        for member in [&mut a, &mut b] {
            match member.next().await {
                Shared::Next(bytes) => assert_eq!(&bytes[..], br#"{"data":"x"}"#),
                other => panic!("expected the answer, got {other:?}"),
            }
        }
        drop(tx);
        assert!(matches!(a.next().await, Shared::Complete));
        assert!(matches!(b.next().await, Shared::Complete));
        let started = AtomicUsize::new(0);
        let _c = fans.join(key("p", None), true, None, || quiet(&started));
        assert_eq!(started.load(Ordering::Relaxed), 1, "a finished fan is not joined");
    }

    /// A subscription with no key runs alone: no fan is registered, and a
    /// burst larger than a fan's queue reaches it whole, since it pulls its
    /// own stream as it sends.
    #[tokio::test]
    async fn a_run_without_a_key_is_pulled_alone() {
        let fans = Arc::new(Fans::default());
        let burst = (0..QUEUE * 2).map(|n| async_graphql::Response::new(async_graphql::Value::from(n as i32)));
        let mut alone = fans.join(None, true, None, || futures::stream::iter(burst).boxed());
        assert!(fans.is_empty());
        for n in 0..QUEUE * 2 {
            match alone.next().await {
                Shared::Next(bytes) => assert_eq!(bytes, Bytes::from(format!(r#"{{"data":{n}}}"#))),
                other => panic!("answer {n}: {other:?}"),
            }
        }
        assert!(matches!(alone.next().await, Shared::Complete));
    }

    fn unreachable_stream() -> BoxStream<'static, async_graphql::Response> {
        panic!("a second member must join the running fan, not start one")
    }
}
