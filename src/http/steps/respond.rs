//! Step 6: writing the answer out (see `encode`), within the size limit and
//! the answer budget, in the media type the request asks for. A mutation's
//! answer that will not fit is cut down to what identifies its writes
//! (`committed`), never dropped: the writes have committed.

use crate::code::Code;
use axum::body::Body;
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::outcome::{not_executed, request_error};
use crate::http::encode::{self, EncodeError, Over};
use crate::http::{GRAPHQL_RESPONSE, JSON, answers, budget, committed, error_response, idempotency};

/// Whether the client's `Accept` asks for `application/graphql-response+json`.
fn wants_graphql_response(headers: &HeaderMap) -> bool {
    headers.get_all(header::ACCEPT).iter().filter_map(|v| v.to_str().ok()).any(|v| v.contains(GRAPHQL_RESPONSE))
}

/// Seconds a client is told to wait when the answer budget is full: answers
/// in flight drain within the send deadline, usually far sooner.
const BUDGET_RETRY_AFTER_SECS: u64 = 1;

/// The most a cut-down mutation answer (see [`committed`]) may take outside
/// the answer budget when the budget is full: it reports writes that have
/// committed, and mutations are budgeted per user.
const CUT_DOWN_RESERVE_BYTES: usize = 64 * 1024;

/// Writes `resp` out (see [`encode`]). A mutation's answer that will not
/// fit (the size limit, the answer budget, or no encoding slot) is cut down
/// to what identifies its writes ([`committed`]), never dropped: the writes
/// have committed. A query's answer is handed to `keep` (the answer cache)
/// as encoded, when it was encoded whole.
pub(in crate::http) async fn respond(
    headers: &HeaderMap,
    resp: async_graphql::Response,
    mutation: bool,
    limit: usize,
    budget: &budget::ResponseBudget,
    slots: &encode::EncodeSlots,
    keep: Option<answers::Pending>,
) -> Response {
    let wants_graphql_response = wants_graphql_response(headers);
    // A response without data whose errors have no path never started executing:
    // GraphQL over HTTP asks for 400 then, under its own media type.
    let mut not_executed = not_executed(&resp);
    let resp = std::sync::Arc::new(resp);
    let encoded = match encode::encode_answer(&resp, not_executed, limit, budget, slots).await {
        Err(EncodeError::Over(_) | EncodeError::Busy) if mutation && !not_executed => {
            tracing::warn!(limit, "a mutation's answer would not fit; answering with its ids only");
            let cut = committed::cut_down(&resp, limit);
            match encode::encode_small(&cut, false, limit, budget) {
                Err(EncodeError::Over(Over::Budget)) => {
                    encode::encode_small(&cut, false, limit, &budget::ResponseBudget::new(CUT_DOWN_RESERVE_BYTES))
                }
                other => other,
            }
        }
        Err(EncodeError::Over(Over::Limit)) => {
            tracing::info!(limit, "a response exceeded the size limit and was refused");
            let refusal =
                request_error(Code::ResponseTooLarge, format!("the response would exceed {limit} bytes; ask for less"));
            not_executed = true;
            encode::encode_small(&refusal, true, limit.max(1024), budget)
        }
        other => other,
    };
    let (body, share) = match encoded {
        Ok((body, share)) => {
            let body = bytes::Bytes::from(body);
            if let Some(keep) = keep.filter(|_| !not_executed && !mutation) {
                keep.keep(&body);
            }
            (body, share)
        }
        Err(EncodeError::Over(_) | EncodeError::Busy) => {
            tracing::warn!(
                budget = budget.total_bytes(),
                "answer bytes in flight are at the budget, or large answers queue for encoding; refusing an answer"
            );
            return busy();
        }
        Err(EncodeError::Serde(err)) => {
            tracing::error!(error = %err, "serializing a GraphQL response failed");
            return error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                Code::InternalServerError,
                "internal server error",
            );
        }
    };
    let (status, content_type) = if wants_graphql_response {
        let status = if not_executed { StatusCode::BAD_REQUEST } else { StatusCode::OK };
        (status, GRAPHQL_RESPONSE)
    } else {
        (StatusCode::OK, JSON)
    };
    budgeted(status, content_type, body, share)
}

/// An answer from the answer cache, in the media type this request asks
/// for, holding its bytes' share of the answer budget as any answer does.
pub(in crate::http) fn cached(headers: &HeaderMap, body: bytes::Bytes, budget: &budget::ResponseBudget) -> Response {
    let mut share = budget.share();
    if !share.cover(body.len()) {
        return busy();
    }
    let content_type = if wants_graphql_response(headers) { GRAPHQL_RESPONSE } else { JSON };
    budgeted(StatusCode::OK, content_type, body, share)
}

/// The refusal when the answer budget has no room: `503` with `Retry-After`.
fn busy() -> Response {
    let mut refused = error_response(
        StatusCode::SERVICE_UNAVAILABLE,
        Code::ServiceUnavailable,
        "the server is busy sending other answers; retry shortly",
    );
    refused.headers_mut().insert(header::RETRY_AFTER, HeaderValue::from(BUDGET_RETRY_AFTER_SECS));
    refused
}

/// An encoded answer that holds its `share` of the budget until it is sent.
fn budgeted(status: StatusCode, content_type: &'static str, body: bytes::Bytes, share: budget::Share) -> Response {
    Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, content_type)
        .body(Body::new(budget::BudgetedBody::new(body, share)))
        .unwrap_or_else(|_| {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, Code::InternalServerError, "internal server error")
        })
}

/// A replayed answer, in the media type this request asks for.
pub(in crate::http) fn replay(headers: &HeaderMap, body: Vec<u8>) -> Response {
    let wants_graphql_response = wants_graphql_response(headers);
    let content_type = if wants_graphql_response { GRAPHQL_RESPONSE } else { JSON };
    Response::builder()
        .status(StatusCode::OK)
        .header(header::CONTENT_TYPE, content_type)
        .header(idempotency::REPLAYED, "true")
        .body(Body::from(body))
        .unwrap_or_else(|_| {
            error_response(StatusCode::INTERNAL_SERVER_ERROR, Code::InternalServerError, "internal server error")
        })
}

#[cfg(test)]
mod tests {
    use async_graphql::Value;

    use super::*;

    async fn send(accept: Option<&str>, resp: async_graphql::Response, limit: usize) -> (StatusCode, String, Vec<u8>) {
        let mut headers = HeaderMap::new();
        if let Some(accept) = accept {
            headers.insert(header::ACCEPT, HeaderValue::from_str(accept).expect("a header"));
        }
        let budget = budget::ResponseBudget::new(1 << 20);
        let answer = respond(&headers, resp, false, limit, &budget, &encode::EncodeSlots::new(), None).await;
        let content_type =
            answer.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        let status = answer.status();
        let body = axum::body::to_bytes(answer.into_body(), usize::MAX).await.expect("a body").to_vec();
        (status, content_type, body)
    }

    /// A request error is 400 under graphql-response+json and 200 under plain JSON; an answer that ran is 200 either way.
    #[tokio::test]
    async fn the_status_follows_the_media_type() {
        let refused = || request_error(Code::GraphqlParseFailed, "no".into());
        assert_eq!(send(Some(GRAPHQL_RESPONSE), refused(), 1000).await.0, StatusCode::BAD_REQUEST);
        let (status, content_type, _) = send(None, refused(), 1000).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, JSON));
        let ran = async_graphql::Response::new(Value::from(1));
        let (status, content_type, body) = send(Some(GRAPHQL_RESPONSE), ran, 1000).await;
        assert_eq!((status, content_type.as_str()), (StatusCode::OK, GRAPHQL_RESPONSE));
        assert_eq!(body, br#"{"data":1}"#);
    }

    /// A query's answer over the size limit is replaced by RESPONSE_TOO_LARGE, never truncated.
    #[tokio::test]
    async fn an_answer_over_the_limit_is_refused_whole() {
        let big = async_graphql::Response::new(Value::from("x".repeat(5000)));
        let (_, _, body) = send(None, big, 1000).await;
        let json: serde_json::Value = serde_json::from_slice(&body).expect("json");
        assert_eq!(json["errors"][0]["extensions"]["code"], "RESPONSE_TOO_LARGE");
        assert!(json.get("data").is_none());
    }

    /// A replay carries its bytes as kept, marked, in the media type asked for.
    #[tokio::test]
    async fn replays_are_marked() {
        let mut headers = HeaderMap::new();
        headers.insert(header::ACCEPT, HeaderValue::from_static(GRAPHQL_RESPONSE));
        let answer = replay(&headers, b"{}".to_vec());
        assert_eq!(answer.headers().get(idempotency::REPLAYED).and_then(|v| v.to_str().ok()), Some("true"));
        assert_eq!(answer.headers().get(header::CONTENT_TYPE).and_then(|v| v.to_str().ok()), Some(GRAPHQL_RESPONSE));
    }
}
