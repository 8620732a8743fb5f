//! `Idempotency-Key` on mutations (the IETF httpapi draft): a retried
//! mutation gets the first attempt's answer instead of writing again.
//!
//! - The key is honoured on mutations by a signed-in viewer, and scoped to
//!   that viewer: [`record_key`] hashes the viewer's id with it. `signUp` and
//!   `logIn` ignore it. Their answers carry a token, which must not be kept
//!   at rest. `signUp` is already idempotent by its email, and `logIn`
//!   writes nothing.
//! - A request is identified by its [`fingerprint`]: the document's hash,
//!   the variables (object keys in any order), and the operation name. The
//!   same key with a different request is `422 IDEMPOTENCY_KEY_REUSED`, and
//!   while the first attempt runs it is `409 IDEMPOTENCY_KEY_IN_USE`.
//! - What is kept is the answer as sent ([`kept_form`]), at most
//!   [`MAX_KEPT_BYTES`], for `--idempotency-ttl-secs`. A larger answer is
//!   kept cut down to its ids (see `committed`). A request that wrote
//!   nothing ([`wrote_nothing`]) keeps nothing, so a retry runs again
//!   (after a `RATE_LIMITED`, say).
//! - The records live in the store ([`crate::store::idempotency`]), so on
//!   MongoDB every process shares them. One gap is left by design: a
//!   process that crashes after its mutation commits and before the answer
//!   is kept leaves a claim that lapses with its lease, and a retry after
//!   that writes again.

use crate::code::Code;
use std::collections::BTreeMap;
use std::net::IpAddr;

use crate::model::UserId;
use async_graphql::{Value as ConstValue, Variables};
use axum::http::{HeaderMap, StatusCode};
use bson::DateTime;
use sha2::{Digest, Sha256};

use super::steps::outcome::not_executed;
use crate::app::AppState;
use crate::store::idempotency::{Claim, Fingerprint, IdemKey, Lease};

/// The request header.
pub(super) const HEADER: &str = "idempotency-key";
/// The answer header that says an answer is a replay.
pub(super) const REPLAYED: &str = "idempotent-replayed";
/// The longest key accepted (UUIDs and ULIDs are far shorter).
pub(super) const MAX_KEY_BYTES: usize = 255;
/// The most a kept answer may take; a larger one is kept cut down to its ids.
pub(super) const MAX_KEPT_BYTES: usize = 64 * 1024;
/// How far past the request timeout a claim's lease runs, so a claim never
/// lapses while its request can still be running.
pub(super) const LEASE_MARGIN_SECS: u64 = 30;
/// The mutations whose answers carry a token: they never use a key.
const MINTS_TOKENS: [&str; 2] = ["signUp", "logIn"];

/// A mutation's claim on its key, settled once it has run.
pub(super) struct Claimed {
    /// Who sent it, whose write budget pays for the kept answer.
    viewer: UserId,
    record: IdemKey,
    lease: Lease,
    /// Its root mutation fields: if every one failed, nothing was written.
    fields: usize,
}

/// Why a keyed mutation does not run.
pub(super) enum Unclaimed {
    /// It ran before: this is its answer, as sent.
    Replay(Vec<u8>),
    /// The key is in use (`409`) or was used for another request (`422`).
    Refused { status: StatusCode, code: Code, message: &'static str },
    /// The store could not say.
    Failed(async_graphql::Response),
}

/// Claims `key`, sent by `viewer` with `req` (the document `document`,
/// `fields` root mutation fields), for as long as the request may run.
pub(super) async fn claim(
    state: &AppState,
    viewer: UserId,
    key: &str,
    document: &[u8; 32],
    req: &async_graphql::Request,
    fields: usize,
) -> Result<Claimed, Unclaimed> {
    let record = record_key(viewer, key);
    let fingerprint = fingerprint(document, &req.variables, req.operation_name.as_deref());
    let lease_secs = state.settings.http.request_timeout_secs.saturating_add(LEASE_MARGIN_SECS);
    match state.store.claim_key(&record, &fingerprint, after_secs(lease_secs)).await {
        Ok(Claim::Fresh(lease)) => Ok(Claimed { viewer, record, lease, fields }),
        Ok(Claim::Replay(body)) => Err(Unclaimed::Replay(body)),
        Ok(Claim::InProgress) => Err(Unclaimed::Refused {
            status: StatusCode::CONFLICT,
            code: Code::IdempotencyKeyInUse,
            message: "a request with this Idempotency-Key is still running; retry after it has answered",
        }),
        Ok(Claim::Mismatch) => Err(Unclaimed::Refused {
            status: StatusCode::UNPROCESSABLE_ENTITY,
            code: Code::IdempotencyKeyReused,
            message: "this Idempotency-Key was sent with a different request; use a new key for a new request",
        }),
        Err(err) => {
            let err = async_graphql::Error::from(crate::graphql::error::ApiError::from(err));
            let err = err.into_server_error(async_graphql::Pos::default());
            Err(Unclaimed::Failed(async_graphql::Response::from_errors(vec![err])))
        }
    }
}

/// Keeps a keyed mutation's answer for its retries, or gives the key up if
/// the mutation wrote nothing. A failure here is logged, never answered: the
/// mutation's own answer still goes out, and the claim lapses with its lease.
pub(super) async fn settle(state: &AppState, claimed: Claimed, resp: &async_graphql::Response, client: Option<IpAddr>) {
    let Claimed { viewer, record, lease, fields } = claimed;
    if not_executed(resp) || wrote_nothing(resp, fields) {
        if let Err(err) = state.store.release_key(&record, lease).await {
            tracing::warn!(error = %err.chain(), "giving up an Idempotency-Key failed; it lapses with its lease");
        }
        return;
    }
    let limit = state.settings.http.max_response_bytes;
    let mut kept = match kept_form(resp, limit) {
        Ok(kept) => kept,
        Err(err) => {
            tracing::error!(error = %err, "encoding an answer to keep failed");
            return;
        }
    };
    // Kept bytes are written bytes: over the writer's budget, only the ids are kept.
    if state.write_budget.charge_bytes(&viewer, client, kept.len()).is_err()
        && let Ok(ids) = ids_form(resp, limit)
    {
        kept = ids;
    }
    let until = after_secs(state.settings.graphql.idempotency_ttl_secs);
    if let Err(err) = state.store.keep_answer(&record, lease, kept, until).await {
        tracing::warn!(error = %err.chain(), "keeping an Idempotency-Key's answer failed; a retry will run again");
    }
}

/// `secs` from now.
fn after_secs(secs: u64) -> DateTime {
    let ms = i64::try_from(secs.saturating_mul(1000)).unwrap_or(i64::MAX);
    DateTime::from_millis(DateTime::now().timestamp_millis().saturating_add(ms))
}

/// The request's key, if it sent one: printable ASCII, 1 to
/// [`MAX_KEY_BYTES`] bytes, as a bare value or (as the draft writes it) a
/// structured-field string in double quotes.
pub(super) fn parse_key(headers: &HeaderMap) -> Result<Option<&str>, &'static str> {
    let mut values = headers.get_all(HEADER).iter();
    let Some(value) = values.next() else { return Ok(None) };
    if values.next().is_some() {
        return Err("send one Idempotency-Key header");
    }
    let value = value.to_str().map_err(|_| "the Idempotency-Key must be printable ASCII")?.trim();
    let key = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')).unwrap_or(value);
    if key.is_empty() || key.len() > MAX_KEY_BYTES {
        return Err("the Idempotency-Key must be 1 to 255 characters");
    }
    if !key.bytes().all(|b| b.is_ascii_graphic() || b == b' ') || key.contains('"') {
        return Err("the Idempotency-Key must be printable ASCII");
    }
    Ok(Some(key))
}

/// Whether a mutation selecting `fields` may use a key (see [`MINTS_TOKENS`]).
pub(super) fn applies_to(fields: &[&str]) -> bool {
    !fields.is_empty() && !fields.iter().any(|f| MINTS_TOKENS.contains(f))
}

/// The store's key for `key` sent by `viewer`.
pub(super) fn record_key(viewer: UserId, key: &str) -> IdemKey {
    let mut hash = Sha256::new();
    hash.update(viewer.bytes());
    hash.update(key.as_bytes());
    IdemKey(hash.finalize().into())
}

/// What the request asked: its document's hash, its variables in a
/// canonical form (object keys sorted, every value tagged and
/// length-prefixed so no two values encode alike), its operation name.
pub(super) fn fingerprint(document: &[u8; 32], variables: &Variables, operation_name: Option<&str>) -> Fingerprint {
    let mut hash = Sha256::new();
    hash.update(document);
    match operation_name {
        Some(name) => {
            hash.update([1]);
            text(&mut hash, name);
        }
        None => hash.update([0]),
    }
    hash.update((variables.len() as u64).to_be_bytes());
    for (name, value) in variables.iter() {
        text(&mut hash, name);
        canonical(&mut hash, value, 0);
    }
    Fingerprint(hash.finalize().into())
}

fn text(hash: &mut Sha256, s: &str) {
    hash.update((s.len() as u64).to_be_bytes());
    hash.update(s.as_bytes());
}

/// Feeds `value` to `hash` canonically. Depth is bounded by the lexical
/// pass and the body size already; the cap here only keeps it total.
fn canonical(hash: &mut Sha256, value: &ConstValue, depth: usize) {
    if depth > 64 {
        hash.update([0xff]);
        return;
    }
    match value {
        ConstValue::Null => hash.update([0]),
        ConstValue::Boolean(b) => hash.update([1, u8::from(*b)]),
        ConstValue::Number(n) => {
            hash.update([2]);
            text(hash, &n.to_string());
        }
        ConstValue::String(s) => {
            hash.update([3]);
            text(hash, s);
        }
        ConstValue::Enum(e) => {
            hash.update([4]);
            text(hash, e);
        }
        ConstValue::Binary(b) => {
            hash.update([5]);
            hash.update((b.len() as u64).to_be_bytes());
            hash.update(b);
        }
        ConstValue::List(items) => {
            hash.update([6]);
            hash.update((items.len() as u64).to_be_bytes());
            items.iter().for_each(|v| canonical(hash, v, depth + 1));
        }
        ConstValue::Object(fields) => {
            hash.update([7]);
            hash.update((fields.len() as u64).to_be_bytes());
            let sorted: BTreeMap<&str, &ConstValue> = fields.iter().map(|(k, v)| (k.as_str(), v)).collect();
            for (k, v) in sorted {
                text(hash, k);
                canonical(hash, v, depth + 1);
            }
        }
    }
}

/// Whether an executed mutation wrote nothing: every one of its `fields`
/// root fields failed at the field itself (a command that fails rolls back
/// whole). An error deeper down means the write committed and only part of
/// its answer failed.
pub(super) fn wrote_nothing(resp: &async_graphql::Response, fields: usize) -> bool {
    let failed: std::collections::HashSet<&str> = resp
        .errors
        .iter()
        .filter_map(|e| match e.path.as_slice() {
            [async_graphql::PathSegment::Field(field)] => Some(field.as_str()),
            _ => None,
        })
        .collect();
    fields > 0 && failed.len() >= fields
}

/// The bytes kept for `resp`: the answer as sent when it fits in
/// [`MAX_KEPT_BYTES`], else [`ids_form`].
pub(super) fn kept_form(resp: &async_graphql::Response, limit: usize) -> Result<Vec<u8>, serde_json::Error> {
    let whole = serde_json::to_vec(resp)?;
    if whole.len() <= MAX_KEPT_BYTES {
        return Ok(whole);
    }
    ids_form(resp, limit)
}

/// `resp` kept by its ids alone (see `committed`) within [`MAX_KEPT_BYTES`],
/// else only the error that says it committed.
fn ids_form(resp: &async_graphql::Response, limit: usize) -> Result<Vec<u8>, serde_json::Error> {
    let mut cut = super::committed::cut_down(resp, limit);
    let bytes = serde_json::to_vec(&cut)?;
    if bytes.len() <= MAX_KEPT_BYTES {
        return Ok(bytes);
    }
    cut.data = async_graphql::Value::Null;
    cut.errors.truncate(1);
    serde_json::to_vec(&cut)
}

#[cfg(test)]
mod tests {
    use async_graphql::indexmap::IndexMap;
    use async_graphql::{Name, PathSegment, ServerError, Value};
    use axum::http::HeaderValue;
    use proptest::prelude::*;

    use super::*;

    fn headers(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(HEADER, HeaderValue::from_str(v).expect("a header value"));
        }
        h
    }

    /// Bare and quoted keys are read; empty, long, non-ASCII, quoted-inside and repeated keys are refused.
    #[test]
    fn keys_are_parsed_and_bounded() {
        assert_eq!(parse_key(&HeaderMap::new()), Ok(None));
        assert_eq!(parse_key(&headers(&["abc-123"])), Ok(Some("abc-123")));
        assert_eq!(parse_key(&headers(&["\"8e03978e-40d5\""])), Ok(Some("8e03978e-40d5")));
        assert!(parse_key(&headers(&[""])).is_err());
        assert!(parse_key(&headers(&["\"\""])).is_err());
        assert!(parse_key(&headers(&[&"k".repeat(256)])).is_err());
        assert_eq!(parse_key(&headers(&[&"k".repeat(255)])).map(|k| k.map(str::len)), Ok(Some(255)));
        assert!(parse_key(&headers(&["a\"b"])).is_err());
        assert!(parse_key(&headers(&["a", "b"])).is_err());
        let mut h = HeaderMap::new();
        h.insert(HEADER, HeaderValue::from_bytes("zoë".as_bytes()).expect("opaque bytes"));
        assert!(parse_key(&h).is_err());
    }

    /// Token-minting mutations never use a key; other mutations do; a query never does.
    #[test]
    fn keys_apply_to_writes_without_tokens() {
        assert!(applies_to(&["createPost", "likePost"]));
        assert!(!applies_to(&["createPost", "logIn"]));
        assert!(!applies_to(&["signUp"]));
        assert!(!applies_to(&[]));
    }

    /// One key names different records for different viewers.
    #[test]
    fn keys_are_scoped_to_the_viewer() {
        let (a, b) = (UserId::new(), UserId::new());
        assert_eq!(record_key(a, "k"), record_key(a, "k"));
        assert_ne!(record_key(a, "k"), record_key(b, "k"));
        assert_ne!(record_key(a, "k"), record_key(a, "k2"));
    }

    fn object(fields: &[(&str, ConstValue)]) -> ConstValue {
        ConstValue::Object(fields.iter().map(|(k, v)| (Name::new(k), v.clone())).collect::<IndexMap<_, _>>())
    }

    fn vars(value: ConstValue) -> Variables {
        Variables::from_value(object(&[("input", value)]))
    }

    /// The fingerprint ignores object key order but not values, names or the document.
    #[test]
    fn fingerprints_are_canonical() {
        let doc = [9u8; 32];
        let ab = vars(object(&[("a", ConstValue::from(1)), ("b", ConstValue::from("x"))]));
        let ba = vars(object(&[("b", ConstValue::from("x")), ("a", ConstValue::from(1))]));
        assert_eq!(fingerprint(&doc, &ab, None), fingerprint(&doc, &ba, None));
        let other = vars(object(&[("a", ConstValue::from(2)), ("b", ConstValue::from("x"))]));
        assert_ne!(fingerprint(&doc, &ab, None), fingerprint(&doc, &other, None));
        assert_ne!(fingerprint(&doc, &ab, None), fingerprint(&doc, &ab, Some("Op")));
        assert_ne!(fingerprint(&doc, &ab, None), fingerprint(&[8u8; 32], &ab, None));
        // A string "1" and a number 1 differ.
        let s = vars(ConstValue::from("1"));
        let n = vars(ConstValue::from(1));
        assert_ne!(fingerprint(&doc, &s, None), fingerprint(&doc, &n, None));
    }

    proptest! {
        /// Different string values never share a fingerprint (length-prefixing leaves no ambiguity).
        #[test]
        fn distinct_strings_fingerprint_apart(a in ".{0,12}", b in ".{0,12}") {
            prop_assume!(a != b);
            let doc = [1u8; 32];
            let fa = fingerprint(&doc, &vars(object(&[("x", ConstValue::from(a.clone())), ("y", ConstValue::from(""))])), None);
            let fb = fingerprint(&doc, &vars(object(&[("x", ConstValue::from(b.clone())), ("y", ConstValue::from(""))])), None);
            prop_assert_ne!(fa, fb);
        }
    }

    fn error_at(path: &[&str]) -> ServerError {
        let mut e = ServerError::new("no", None);
        e.path = path.iter().map(|p| PathSegment::Field((*p).to_owned())).collect();
        e
    }

    /// Only when every root field failed at itself did nothing commit.
    #[test]
    fn nothing_written_only_when_every_root_field_failed() {
        let mut resp = async_graphql::Response::new(Value::Null);
        resp.errors = vec![error_at(&["a"]), error_at(&["b"])];
        assert!(wrote_nothing(&resp, 2));
        assert!(!wrote_nothing(&resp, 3), "a third field committed");
        resp.errors = vec![error_at(&["a", "author"]), error_at(&["b"])];
        assert!(!wrote_nothing(&resp, 2), "a committed, only its author failed");
        resp.errors = vec![error_at(&["a"]), error_at(&["a"])];
        assert!(!wrote_nothing(&resp, 2));
        assert!(!wrote_nothing(&async_graphql::Response::new(Value::Null), 1));
    }

    /// A small answer is kept as is; a large one cut down to its ids, with the committed error.
    #[test]
    fn large_answers_are_kept_cut_down() {
        let small = async_graphql::Response::new(object(&[("id", ConstValue::from("p1"))]));
        assert_eq!(kept_form(&small, 1000).expect("encodes"), serde_json::to_vec(&small).expect("encodes"));
        let big = async_graphql::Response::new(object(&[(
            "createPost",
            object(&[("id", ConstValue::from("p1")), ("body", ConstValue::from("x".repeat(100_000)))]),
        )]));
        let kept = kept_form(&big, 1000).expect("encodes");
        assert!(kept.len() <= MAX_KEPT_BYTES);
        let json: serde_json::Value = serde_json::from_slice(&kept).expect("json");
        assert_eq!(json["data"]["createPost"]["id"], "p1");
        assert_eq!(json["errors"][0]["extensions"]["committed"], true);
    }

    /// The ids-only form (what a writer over budget keeps) stays within the bound however many ids the answer names.
    #[test]
    fn the_ids_only_form_is_bounded_too() {
        let ids: Vec<ConstValue> = (0..20_000).map(|i| ConstValue::from(format!("{i:024}"))).collect();
        let many = async_graphql::Response::new(object(&[(
            "deleteUser",
            object(&[("deletedPostIds", ConstValue::List(ids))]),
        )]));
        let kept = ids_form(&many, 1000).expect("encodes");
        assert!(kept.len() <= MAX_KEPT_BYTES, "{} bytes", kept.len());
        let json: serde_json::Value = serde_json::from_slice(&kept).expect("json");
        assert_eq!(json["errors"][0]["extensions"]["committed"], true);
    }
}
