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
//! subscription (`after:`) is never shared: its replay is its own. A member that falls more than [`QUEUE`] answers
//! behind is ended with an error, as a hub listener is.

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

/// Answers a member may fall behind its fan by before it is ended.
pub const QUEUE: usize = 256;

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
    /// The key of `request` as run by `viewer`; one that may not be shared
    /// gets a key of its own.
    pub(super) fn of(request: &async_graphql::Request, viewer: &Viewer, shareable: bool) -> Key {
        Key {
            document: Sha256::digest(request.query.as_bytes()).into(),
            operation: request.operation_name.clone(),
            variables: serde_json::to_string(&request.variables).unwrap_or_default(),
            viewer: match viewer {
                // Never shared: a fresh id per subscription.
                _ if !shareable => Some(bson::oid::ObjectId::new()),
                Viewer::Invalid(_) => Some(bson::oid::ObjectId::new()),
                Viewer::User(token) => Some(token.id),
                Viewer::Anonymous => None,
            },
        }
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
    /// Where the fan counts itself (`blogql_subscription_runs`).
    metrics: Option<Arc<Metrics>>,
}

/// One subscriber's place in a fan.
pub(super) struct Member {
    _fan: Arc<Fan>,
    rx: broadcast::Receiver<Shared>,
    /// It fell behind and was sent the error: it ends next.
    behind: bool,
}

impl Fans {
    /// Joins the running fan for `key`, or starts one from `start` (called
    /// only then, so a shared subscription runs its resolver once).
    pub(super) fn join(
        self: &Arc<Self>,
        key: Key,
        parses: bool,
        metrics: Option<&Arc<Metrics>>,
        start: impl FnOnce() -> BoxStream<'static, async_graphql::Response>,
    ) -> Member {
        let Ok(mut running) = self.running.lock() else {
            // A poisoned registry only stops sharing: this member runs alone.
            return Fan::start(key, Weak::new(), parses, metrics, start());
        };
        if let Some(fan) = running.get(&key).and_then(Weak::upgrade) {
            let rx = fan.sender.subscribe();
            if !fan.finished.load(Ordering::Acquire) {
                return Member { _fan: fan, rx, behind: false };
            }
        }
        let member = Fan::start(key.clone(), Arc::downgrade(self), parses, metrics, start());
        running.insert(key, Arc::downgrade(&member._fan));
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
    /// Spawns the task that runs `answers` once for every member; returns the first member.
    fn start(
        key: Key,
        fans: Weak<Fans>,
        parses: bool,
        metrics: Option<&Arc<Metrics>>,
        answers: BoxStream<'static, async_graphql::Response>,
    ) -> Member {
        let (sender, rx) = broadcast::channel(QUEUE);
        let finished = Arc::new(AtomicBool::new(false));
        let task = tokio::spawn(run(answers, parses, sender.clone(), Arc::clone(&finished), metrics.cloned()));
        if let Some(metrics) = metrics {
            metrics.subscriptions.runs.fetch_add(1, Ordering::Relaxed);
        }
        let fan = Arc::new(Fan { key, fans, sender, finished, task: task.abort_handle(), metrics: metrics.cloned() });
        Member { _fan: fan, rx, behind: false }
    }
}

impl Drop for Fan {
    fn drop(&mut self) {
        self.task.abort();
        if let Some(metrics) = &self.metrics {
            metrics.subscriptions.runs.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(fans) = self.fans.upgrade()
            && let Ok(mut running) = fans.running.lock()
            && running.get(&self.key).is_some_and(|fan| fan.strong_count() == 0)
        {
            running.remove(&self.key);
        }
    }
}

/// Runs the schema's stream once, encoding each answer for every member.
async fn run(
    mut answers: BoxStream<'static, async_graphql::Response>,
    parses: bool,
    sender: broadcast::Sender<Shared>,
    finished: Arc<AtomicBool>,
    metrics: Option<Arc<Metrics>>,
) {
    let mut first = true;
    while let Some(mut answer) = answers.next().await {
        outcome::label_request_errors(&mut answer, parses);
        outcome::cap_errors(&mut answer);
        if let Some(metrics) = &metrics {
            metrics.subscriptions.resolved.fetch_add(1, Ordering::Relaxed);
        }
        if first && answer.data == async_graphql::Value::Null && !answer.errors.is_empty() {
            finished.store(true, Ordering::Release);
            let _ = sender.send(Shared::Refused(encode(&answer.errors)));
            return;
        }
        first = false;
        let _ = sender.send(Shared::Next(encode(&answer)));
    }
    finished.store(true, Ordering::Release);
    let _ = sender.send(Shared::Complete);
}

/// `value` as JSON bytes; an answer that cannot be encoded becomes an error answer.
fn encode(value: &impl serde::Serialize) -> Bytes {
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
        if self.behind {
            return Shared::Complete;
        }
        match self.rx.recv().await {
            Ok(shared) => shared,
            Err(broadcast::error::RecvError::Lagged(_)) => {
                self.behind = true;
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

    fn key(variables: &str, viewer: Option<bson::oid::ObjectId>) -> Key {
        Key { document: [0; 32], operation: None, variables: variables.to_owned(), viewer }
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

    fn unreachable_stream() -> BoxStream<'static, async_graphql::Response> {
        panic!("a second member must join the running fan, not start one")
    }
}
