//! Subscriptions over Server-Sent Events: graphql-sse's distinct
//! connections mode, on `POST /graphql` (and `GET`, for `EventSource`)
//! with `Accept: text/event-stream`. One stream per subscription; the
//! token travels in the `Authorization` header, as for any request.
//!
//! Each answer is a `next` event, and a `complete` event ends the stream.
//! A refusal (a bad document, a missing post, an ended token) is a `next`
//! event carrying only `errors`, then `complete`: the protocol reports
//! these inside an accepted stream, since a browser's `EventSource` shows
//! nothing of a 4xx. A comment line every `--ws-ping-interval-secs` keeps
//! proxies from closing a quiet stream and finds a client that went away.
//!
//! The stream is not an answer waiting to be taken: the connection's send
//! timeout ([`crate::http::conn`]) does not apply to it, and no idle timeout
//! closes it. A peer that does not read is found here instead: an event
//! that waits the send timeout for room in the stream's queue aborts it.

use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use bytes::Bytes;
use futures::StreamExt;
use tokio::sync::{mpsc, oneshot};

use super::{
    Ended, Frame, Gauge, Live, OUT_QUEUE, RECHECK, Series, accepted, count_slow_consumer, pump, refusal_errors, start,
};
use crate::auth::Token;
use crate::code::Code;
use crate::graphql::Viewer;
use crate::http::Routes;
use crate::http::conn::Streaming;
use crate::http::steps::Refusal;

/// The media type of an event stream.
const EVENT_STREAM: &str = "text/event-stream";

/// The keep-alive: an SSE comment, which clients ignore.
const KEEP_ALIVE: &[u8] = b":\n\n";

/// The event that ends a stream (with an empty `data`, which `EventSource` needs to fire it).
const COMPLETE: &[u8] = b"event: complete\ndata: \n\n";

/// Whether the request's `Accept` asks for an event stream.
pub(in crate::http) fn wants_events(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(',')).any(|range| {
        let essence = range.split(';').next().unwrap_or("").trim();
        essence.eq_ignore_ascii_case(EVENT_STREAM)
    })
}

/// Answers a subscription request with its event stream.
pub(in crate::http) async fn serve(
    routes: Arc<Routes>,
    client: IpAddr,
    viewer: Viewer,
    request: async_graphql::Request,
) -> Response {
    let token = match &viewer {
        Viewer::User(token) => Some(*token),
        Viewer::Anonymous | Viewer::Invalid(_) => None,
    };
    let started = match &viewer {
        Viewer::Invalid(_) => Err(ended_token()),
        Viewer::User(token) if !accepted(&routes, token).await => Err(ended_token()),
        _ => start(&routes, viewer, client, request),
    };
    let (out, queued) = mpsc::channel::<Bytes>(OUT_QUEUE);
    let (abort, aborted) = oneshot::channel::<()>();
    match started {
        Ok(live) => {
            tokio::spawn(run(routes, live, out, abort, token));
        }
        Err(refusal) => {
            // Room for it is certain: the queue is new and nothing else writes to it.
            let _ = out.try_send(frame(Frame::Refused(&refusal_errors(&refusal))));
        }
    }
    let events = futures::stream::unfold(queued, |mut queued| async move {
        queued.recv().await.map(|bytes| (Ok::<_, std::io::Error>(bytes), queued))
    });
    // Resolves only if the run aborts the stream (a sender dropped without a send ends nothing).
    let abort = futures::stream::once(aborted).filter_map(|signal| async move {
        signal.ok().map(|()| Err(std::io::Error::other("the peer did not read the event stream")))
    });
    let mut response = Response::new(Body::from_stream(futures::stream::select(events, abort)));
    *response.status_mut() = StatusCode::OK;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/event-stream; charset=utf-8"));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    // Tells nginx-style proxies not to buffer the stream.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response.extensions_mut().insert(Streaming);
    response
}

/// Runs one subscription into its stream, with keep-alives and (for a
/// token) a re-check every [`RECHECK`]; aborts the stream on a peer that
/// does not read, and ends it with `UNAUTHENTICATED` once the token ends.
async fn run(
    routes: Arc<Routes>,
    live: Live,
    out: mpsc::Sender<Bytes>,
    abort: oneshot::Sender<()>,
    token: Option<Token>,
) {
    let metrics = routes.state.metrics.clone();
    let _counted = Gauge::hold(metrics.as_ref(), Series::Stream);
    let http = &routes.state.settings.http;
    let (send_timeout, keep_alive) = (http.send_timeout(), Duration::from_secs(http.ws_ping_interval_secs.max(1)));
    let mut pumping = Box::pin(pump(live, &out, send_timeout, frame));
    let mut ticker = tokio::time::interval(RECHECK.min(keep_alive));
    let (mut kept_alive, mut checked) = (Instant::now(), Instant::now());
    loop {
        tokio::select! {
            ended = &mut pumping => {
                if ended == Ended::NotRead {
                    count_slow_consumer(metrics.as_ref());
                    let _ = abort.send(());
                }
                return;
            }
            _ = ticker.tick() => {
                if kept_alive.elapsed() >= keep_alive {
                    kept_alive = Instant::now();
                    // A full queue already has bytes on their way; a closed one has no reader left.
                    if let Err(mpsc::error::TrySendError::Closed(_)) = out.try_send(Bytes::from_static(KEEP_ALIVE)) {
                        return;
                    }
                }
                if let Some(token) = &token && checked.elapsed() >= RECHECK {
                    checked = Instant::now();
                    if !accepted(&routes, token).await {
                        break;
                    }
                }
            }
        }
    }
    // The token ended: the subscription stops, and the stream says why.
    drop(pumping);
    let refused = frame(Frame::Refused(&refusal_errors(&ended_token())));
    if tokio::time::timeout(send_timeout, out.send(refused)).await.is_err() {
        count_slow_consumer(metrics.as_ref());
        let _ = abort.send(());
    }
}

/// The refusal of a token that is invalid or no longer accepted.
fn ended_token() -> Refusal {
    Refusal::new(Code::Unauthenticated, "the token is invalid or has ended; log in again")
}

/// `frame` as SSE bytes, around the shared JSON without encoding it again.
fn frame(frame: Frame<'_>) -> Bytes {
    match frame {
        Frame::Next(json) => raw_event(&[json]),
        Frame::Refused(errors) => {
            let mut bytes = raw_event(&[b"{\"errors\":", errors, b"}"]).to_vec();
            bytes.extend_from_slice(COMPLETE);
            Bytes::from(bytes)
        }
        Frame::Complete => Bytes::from_static(COMPLETE),
    }
}

/// A `next` event whose data is the JSON in `parts`, joined (JSON text has
/// no raw newline, so it stays one `data:` line).
fn raw_event(parts: &[&[u8]]) -> Bytes {
    let mut bytes = b"event: next\ndata: ".to_vec();
    for part in parts {
        bytes.extend_from_slice(part);
    }
    bytes.extend_from_slice(b"\n\n");
    Bytes::from(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// `Accept` asks for an event stream in any case, with parameters, among other types, or in a second header.
    #[test]
    fn event_streams_are_recognised_in_accept() {
        let accept = |values: &[&str]| {
            let mut headers = HeaderMap::new();
            for value in values {
                headers.append(header::ACCEPT, HeaderValue::from_str(value).expect("a header value"));
            }
            wants_events(&headers)
        };
        assert!(accept(&["text/event-stream"]));
        assert!(accept(&["Text/Event-Stream; charset=utf-8"]));
        assert!(accept(&["application/json, text/event-stream;q=0.5"]));
        assert!(accept(&["application/json", "text/event-stream"]));
        assert!(!accept(&["application/json"]));
        assert!(!accept(&["text/*"]));
        assert!(!accept(&[]));
    }

    /// A `next` event is one `data:` line of JSON even when a string holds
    /// newlines; a refusal is `next` with only `errors`, then `complete`.
    #[test]
    fn events_are_framed_on_one_data_line() {
        let bytes = frame(Frame::Next(&super::super::fan::encode(&json!({ "data": { "body": "two\nlines\r\n" } }))));
        let text = std::str::from_utf8(&bytes).expect("utf-8");
        assert_eq!(text, "event: next\ndata: {\"data\":{\"body\":\"two\\nlines\\r\\n\"}}\n\n");
        let bytes = frame(Frame::Refused(br#"[{"message":"no"}]"#));
        let text = std::str::from_utf8(&bytes).expect("utf-8");
        assert_eq!(text, "event: next\ndata: {\"errors\":[{\"message\":\"no\"}]}\n\nevent: complete\ndata: \n\n");
    }
}
