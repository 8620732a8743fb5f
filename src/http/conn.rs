//! The accept loop: one task per connection, with the limits that keep idle
//! or slow clients from holding the server's sockets.
//!
//! - At most `max_connections` are served at once (a semaphore, as in
//!   mini-redis); beyond that the server stops accepting until one closes.
//!   One client address holds at most `max_connections_per_ip` of them;
//!   a connection past that is closed as soon as it is accepted, so one
//!   client cannot take every slot.
//! - A request is in flight until its answer's body has been handed to the
//!   connection (or the connection dropped), not merely until the answer
//!   exists. An answer not handed over within the send timeout (a peer that
//!   stops reading, an HTTP/2 window left at zero) closes its connection,
//!   which frees the answer's memory. HTTP/2 connections open at most
//!   `max_concurrent_streams` streams at once.
//! - A connection must start its first request within the read timeout,
//!   whatever the protocol: a silent socket, or an HTTP/2 client that sends
//!   only the preface, is closed then.
//! - A connection with no request in flight for the idle timeout is closed
//!   (HTTP/2 in particular). HTTP/1.1 headers must arrive within the read
//!   timeout, and hyper runs that timer while a keep-alive connection waits
//!   for its next request too, so HTTP/1.1 idles out at the read timeout.
//!   HTTP/2 peers are pinged.
//! - On shutdown, every connection is asked to finish gracefully and the
//!   loop waits for them.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;
use tower::ServiceExt;

use crate::settings::HttpSettings;

/// How long an idle connection that was told to close may take to do so.
const IDLE_GRACE: Duration = Duration::from_millis(100);

/// The connection limits, from the HTTP settings.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Time to start the first request, and to send HTTP/1.1 headers.
    pub read_timeout: Duration,
    /// Time a connection may sit with no request in flight.
    pub idle_timeout: Duration,
    /// Longest a request may run (bounds the graceful close too).
    pub request_timeout: Duration,
    /// Connections served at once.
    pub max_connections: usize,
    /// Connections served at once for one client address.
    pub max_connections_per_ip: usize,
    /// Concurrent HTTP/2 streams per connection.
    pub max_concurrent_streams: u32,
    /// Longest an answer may wait to be handed to the connection.
    pub send_timeout: Duration,
}

impl From<&HttpSettings> for ConnLimits {
    fn from(http: &HttpSettings) -> Self {
        ConnLimits {
            read_timeout: http.read_timeout(),
            idle_timeout: http.idle_timeout(),
            request_timeout: http.request_timeout(),
            max_connections: http.max_connections.max(1),
            max_connections_per_ip: http.max_connections_per_ip.max(1),
            max_concurrent_streams: http.max_concurrent_streams.max(1),
            send_timeout: http.send_timeout(),
        }
    }
}

/// What a connection has been doing, for the idle rules.
struct Activity {
    opened: Instant,
    in_flight: AtomicUsize,
    requests: AtomicU64,
    /// Milliseconds after `opened` when the last request finished.
    last_done_ms: AtomicU64,
    /// Answers whose bodies are not yet handed over, by request number, with
    /// the moment each was ready.
    sending: Mutex<HashMap<u64, Instant>>,
}

impl Activity {
    fn new() -> Self {
        Activity {
            opened: Instant::now(),
            in_flight: AtomicUsize::new(0),
            requests: AtomicU64::new(0),
            last_done_ms: AtomicU64::new(0),
            sending: Mutex::new(HashMap::new()),
        }
    }

    /// Whether an answer has waited longer than `limit` to be handed over.
    fn send_overdue(&self, limit: Duration) -> bool {
        self.sending.lock().map(|sending| sending.values().any(|ready| ready.elapsed() >= limit)).unwrap_or(false)
    }

    /// Whether the connection should be closed now.
    fn idle(&self, limits: &ConnLimits) -> bool {
        if self.in_flight.load(Ordering::Acquire) > 0 {
            return false;
        }
        let now = self.opened.elapsed();
        if self.requests.load(Ordering::Acquire) == 0 {
            return now >= limits.read_timeout;
        }
        let last = Duration::from_millis(self.last_done_ms.load(Ordering::Acquire));
        now.saturating_sub(last) >= limits.idle_timeout
    }
}

/// Marks a request in flight until dropped: it travels with the answer's
/// body, so a request ends when its body has been handed over.
struct InFlight {
    activity: Arc<Activity>,
    number: u64,
}

impl InFlight {
    fn start(activity: &Arc<Activity>) -> Self {
        let number = activity.requests.fetch_add(1, Ordering::AcqRel);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        InFlight { activity: Arc::clone(activity), number }
    }

    /// The answer exists: from now on the send timeout runs.
    fn answered(self) -> Self {
        if let Ok(mut sending) = self.activity.sending.lock() {
            sending.insert(self.number, Instant::now());
        }
        self
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        if let Ok(mut sending) = self.activity.sending.lock() {
            sending.remove(&self.number);
        }
        let done = u64::try_from(self.activity.opened.elapsed().as_millis()).unwrap_or(u64::MAX);
        self.activity.last_done_ms.store(done, Ordering::Release);
        self.activity.in_flight.fetch_sub(1, Ordering::AcqRel);
    }
}

/// An answer's body that keeps its request in flight until it is dropped.
struct Sending {
    inner: axum::body::Body,
    _in_flight: InFlight,
}

impl http_body::Body for Sending {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

/// Marks an answer that is a stream (an SSE subscription), not a body
/// waiting to be taken: the send timeout does not run for it, and it keeps
/// its request in flight (so the connection is not idle) until it ends. The
/// stream bounds its own queue and aborts itself on a peer that does not read.
#[derive(Debug, Clone, Copy)]
pub struct Streaming;

/// Connections per client address, released by [`AddressSlot`]'s drop.
#[derive(Default)]
struct PerAddress(Mutex<HashMap<IpAddr, usize>>);

/// One of an address's connections.
struct AddressSlot {
    table: Arc<PerAddress>,
    ip: IpAddr,
}

impl PerAddress {
    /// A slot for `ip`, or `None` when it already holds `max` connections.
    fn take(table: &Arc<PerAddress>, ip: IpAddr, max: usize) -> Option<AddressSlot> {
        let mut counts = table.0.lock().ok()?;
        let count = counts.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(AddressSlot { table: Arc::clone(table), ip })
    }
}

impl Drop for AddressSlot {
    fn drop(&mut self) {
        if let Ok(mut counts) = self.table.0.lock()
            && let Some(count) = counts.get_mut(&self.ip)
        {
            *count -= 1;
            if *count == 0 {
                counts.remove(&self.ip);
            }
        }
    }
}

/// A connection's place in the process's and its address's connection
/// counts. Every request carries a handle to it, so a socket that outlives
/// its HTTP connection (a WebSocket after the upgrade) keeps counting
/// against `max_connections` until it closes.
#[derive(Clone)]
pub struct ConnSlot {
    _held: Arc<(tokio::sync::OwnedSemaphorePermit, AddressSlot)>,
}

/// Accepts connections until `shutdown` resolves, then lets in-flight
/// requests finish. Each connection gets the client address (for per-IP
/// limits) and the limits above, which `axum::serve` does not offer.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> crate::error::Result<()> {
    let mut builder = Builder::new(TokioExecutor::new());
    builder.http1().timer(TokioTimer::new()).header_read_timeout(limits.read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(limits.idle_timeout))
        .keep_alive_timeout(limits.read_timeout)
        .max_concurrent_streams(limits.max_concurrent_streams);
    let builder = Arc::new(builder);
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let per_address = Arc::new(PerAddress::default());
    let (closing, closing_rx) = watch::channel(false);
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let slot = tokio::select! {
            slot = Arc::clone(&slots).acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            () = &mut shutdown => break,
        };
        let (stream, remote) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(err) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(error = %err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let Some(address_slot) = PerAddress::take(&per_address, remote.ip(), limits.max_connections_per_ip) else {
            tracing::debug!(%remote, "closing a connection: its address holds the most connections one address may");
            continue;
        };
        let (app, builder, closing) = (app.clone(), Arc::clone(&builder), closing_rx.clone());
        let held = ConnSlot { _held: Arc::new((slot, address_slot)) };
        connections.spawn(async move {
            serve_one(stream, remote, app, &builder, limits, closing, held).await;
        });
    }
    drop(listener);
    let _ = closing.send(true);
    while connections.join_next().await.is_some() {}
    Ok(())
}

/// Serves one connection until it ends, idles out, or the server shuts down.
async fn serve_one(
    stream: TcpStream,
    remote: SocketAddr,
    app: Router,
    builder: &Builder<TokioExecutor>,
    limits: ConnLimits,
    mut closing: watch::Receiver<bool>,
    held: ConnSlot,
) {
    let activity = Arc::new(Activity::new());
    let tracked = Arc::clone(&activity);
    let service = hyper::service::service_fn(move |mut req: hyper::Request<Incoming>| {
        let (app, in_flight) = (app.clone(), InFlight::start(&tracked));
        req.extensions_mut().insert(ConnectInfo(remote));
        req.extensions_mut().insert(held.clone());
        async move {
            let resp = app.oneshot(req).await?;
            let in_flight =
                if resp.extensions().get::<Streaming>().is_some() { in_flight } else { in_flight.answered() };
            Ok::<_, std::convert::Infallible>(
                resp.map(|inner| axum::body::Body::new(Sending { inner, _in_flight: in_flight })),
            )
        }
    });
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), service);
    tokio::pin!(conn);
    let tick =
        (limits.read_timeout.min(limits.idle_timeout).min(limits.send_timeout) / 4).max(Duration::from_millis(50));
    let mut ticker = tokio::time::interval(tick);
    let reason = loop {
        tokio::select! {
            done = conn.as_mut() => {
                if let Err(err) = done {
                    tracing::debug!(error = %err, "connection ended with an error");
                }
                return;
            }
            _ = closing.changed() => break "shutdown",
            _ = ticker.tick() => {
                if activity.send_overdue(limits.send_timeout) {
                    // The peer is not taking its answer: drop the connection
                    // (and with it the answer) instead of closing gracefully.
                    tracing::info!(%remote, "closing a connection whose answer was not taken within the send timeout");
                    return;
                }
                if activity.idle(&limits) { break "idle" }
            }
        }
    };
    tracing::debug!(%remote, reason, "closing a connection");
    conn.as_mut().graceful_shutdown();
    // On shutdown, in-flight requests may finish. An idle connection has none:
    // it gets a moment to flush HTTP/2's GOAWAY, not a handshake's worth of waiting.
    let grace = if reason == "idle" { IDLE_GRACE } else { limits.request_timeout + limits.read_timeout };
    let _ = tokio::time::timeout(grace, conn).await;
}
