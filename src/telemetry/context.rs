//! W3C Trace Context (`traceparent`, `tracestate`) and the request id.
//!
//! A request that arrives with a valid `traceparent` continues that trace, so
//! a trace begun in a gateway or a browser joins up with blogql's; one
//! without gets a fresh trace id. Either way the id goes in the request's log
//! line, which is how a log line and a trace are found from each other.

use std::fmt::{self, Write as _};

use axum::http::HeaderMap;

/// A 16-byte trace id, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct TraceId(pub [u8; 16]);

/// An 8-byte span id, never all zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct SpanId(pub [u8; 8]);

impl TraceId {
    /// A random trace id (never zero).
    pub fn random() -> TraceId {
        TraceId(rand::random::<u128>().max(1).to_be_bytes())
    }
}

impl SpanId {
    /// A random span id (never zero).
    pub fn random() -> SpanId {
        SpanId(rand::random::<u64>().max(1).to_be_bytes())
    }
}

fn write_hex(f: &mut fmt::Formatter<'_>, bytes: &[u8]) -> fmt::Result {
    for b in bytes {
        write!(f, "{b:02x}")?;
    }
    Ok(())
}

impl fmt::Display for TraceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

impl fmt::Display for SpanId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_hex(f, &self.0)
    }
}

/// The trace a request belongs to: its caller's, or a new one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TraceContext {
    /// The trace.
    pub trace_id: TraceId,
    /// The caller's span, when the request continued a trace.
    pub parent: Option<SpanId>,
    /// Whether the caller sampled it (`traceparent`'s flag); a new trace leaves
    /// the decision to the sampler.
    pub sampled: Option<bool>,
    /// The caller's `tracestate`, passed on unchanged.
    pub tracestate: Option<String>,
}

impl TraceContext {
    /// The caller's trace from `traceparent`/`tracestate`, or a new trace
    /// when `traceparent` is missing or invalid (the spec's rule: an invalid
    /// header starts a new trace, and `tracestate` goes with it).
    pub fn from_headers(headers: &HeaderMap) -> TraceContext {
        let parsed = headers.get("traceparent").and_then(|v| v.to_str().ok()).and_then(parse_traceparent);
        match parsed {
            Some((trace_id, parent, sampled)) => {
                TraceContext { trace_id, parent: Some(parent), sampled: Some(sampled), tracestate: tracestate(headers) }
            }
            None => TraceContext { trace_id: TraceId::random(), parent: None, sampled: None, tracestate: None },
        }
    }
}

/// Every `tracestate` header joined with commas, as the spec says a
/// repeated header is read; bounded at the spec's 512 characters.
fn tracestate(headers: &HeaderMap) -> Option<String> {
    let mut out = String::new();
    for value in headers.get_all("tracestate") {
        let Ok(value) = value.to_str() else { return None };
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(value.trim());
    }
    (!out.is_empty() && out.len() <= 512).then_some(out)
}

/// Parses a `traceparent` value: `version-traceid-parentid-flags`, lowercase
/// hex. Version `ff` and all-zero ids are invalid; a later version than `00`
/// is read by the `00` layout, ignoring what follows (the spec's forward rule).
pub fn parse_traceparent(value: &str) -> Option<(TraceId, SpanId, bool)> {
    let value = value.trim();
    let bytes = value.as_bytes();
    if bytes.len() < 55 {
        return None;
    }
    let version = hex::<1>(&value[0..2])?[0];
    if version == 0xff || (version == 0 && bytes.len() != 55) || (version > 0 && bytes.len() > 55 && bytes[55] != b'-')
    {
        return None;
    }
    if bytes[2] != b'-' || bytes[35] != b'-' || bytes[52] != b'-' {
        return None;
    }
    let trace = hex::<16>(&value[3..35])?;
    let parent = hex::<8>(&value[36..52])?;
    let flags = hex::<1>(&value[53..55])?[0];
    if trace == [0; 16] || parent == [0; 8] {
        return None;
    }
    Some((TraceId(trace), SpanId(parent), flags & 1 == 1))
}

/// `traceparent` for a span of this trace.
pub fn format_traceparent(trace: TraceId, span: SpanId, sampled: bool) -> String {
    let mut out = String::with_capacity(55);
    let _ = write!(out, "00-{trace}-{span}-{}", if sampled { "01" } else { "00" });
    out
}

/// N bytes from 2N lowercase hex digits (the spec allows no uppercase).
pub(crate) fn hex<const N: usize>(text: &str) -> Option<[u8; N]> {
    let digits = text.as_bytes();
    if digits.len() != 2 * N {
        return None;
    }
    let digit = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    };
    let mut out = [0u8; N];
    for (i, pair) in digits.chunks_exact(2).enumerate() {
        out[i] = digit(pair[0])? << 4 | digit(pair[1])?;
    }
    Some(out)
}

/// The longest `X-Request-Id` taken from a caller.
pub const MAX_REQUEST_ID: usize = 128;

/// The caller's `X-Request-Id` when it is short printable ASCII (so it can
/// neither forge log lines nor grow them), else `None`.
pub fn caller_request_id(headers: &HeaderMap) -> Option<&str> {
    let id = headers.get("x-request-id")?.to_str().ok()?;
    let ok = !id.is_empty() && id.len() <= MAX_REQUEST_ID && id.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const EXAMPLE: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    /// The spec's example parses to its ids and sampled flag, and formats back to itself.
    #[test]
    fn the_specs_example_round_trips() {
        let (trace, span, sampled) = parse_traceparent(EXAMPLE).expect("valid");
        assert_eq!(trace.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(span.to_string(), "00f067aa0ba902b7");
        assert!(sampled);
        assert_eq!(format_traceparent(trace, span, sampled), EXAMPLE);
    }

    /// Uppercase, zero ids, version ff, a wrong length and a later version with extra fields are judged by the spec.
    #[test]
    fn invalid_traceparents_are_refused() {
        assert!(parse_traceparent(&EXAMPLE.to_uppercase()).is_none());
        assert!(parse_traceparent("00-00000000000000000000000000000000-00f067aa0ba902b7-01").is_none());
        assert!(parse_traceparent("00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01").is_none());
        assert!(parse_traceparent(&EXAMPLE.replacen("00", "ff", 1)).is_none());
        assert!(parse_traceparent(&format!("{EXAMPLE}-extra")).is_none());
        assert!(parse_traceparent(&EXAMPLE[..54]).is_none());
        let later = format!("{}-what-comes-next", EXAMPLE.replacen("00", "01", 1));
        assert!(parse_traceparent(&later).is_some());
    }

    /// A request without a valid traceparent starts a new trace and drops its tracestate.
    #[test]
    fn a_missing_or_bad_parent_starts_a_new_trace() {
        let mut headers = HeaderMap::new();
        headers.insert("traceparent", "garbage".parse().expect("header"));
        headers.insert("tracestate", "vendor=1".parse().expect("header"));
        let ctx = TraceContext::from_headers(&headers);
        assert_eq!((ctx.parent, ctx.sampled, ctx.tracestate), (None, None, None));
        headers.insert("traceparent", EXAMPLE.parse().expect("header"));
        let ctx = TraceContext::from_headers(&headers);
        assert_eq!(ctx.trace_id.to_string(), "4bf92f3577b34da6a3ce929d0e0e4736");
        assert_eq!(ctx.tracestate.as_deref(), Some("vendor=1"));
    }

    /// Only short printable request ids are taken from the caller.
    #[test]
    fn caller_request_ids_are_bounded() {
        let mut headers = HeaderMap::new();
        headers.insert("x-request-id", "abc-123".parse().expect("header"));
        assert_eq!(caller_request_id(&headers), Some("abc-123"));
        headers.insert("x-request-id", "a b".parse().expect("header"));
        assert_eq!(caller_request_id(&headers), None);
        headers.insert("x-request-id", "x".repeat(MAX_REQUEST_ID + 1).parse().expect("header"));
        assert_eq!(caller_request_id(&headers), None);
    }

    proptest! {
        /// Every formatted traceparent parses back to the same ids and flag.
        #[test]
        fn formatted_parents_parse_back(trace in 1u128.., span in 1u64.., sampled: bool) {
            let (t, s) = (TraceId(trace.to_be_bytes()), SpanId(span.to_be_bytes()));
            prop_assert_eq!(parse_traceparent(&format_traceparent(t, s, sampled)), Some((t, s, sampled)));
        }
    }
}
