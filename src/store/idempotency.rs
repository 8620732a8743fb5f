//! The store's half of `Idempotency-Key`: a record per key, claimed before a
//! mutation runs and holding its answer after.
//!
//! A record is claimed with a lease (a token and a deadline) before the
//! mutation runs, so a retry that arrives while the first attempt still runs
//! is refused instead of writing again, and gets the kept answer once it
//! has settled. Records live in the store, not in memory: on MongoDB every
//! process sees every key (one document per key, written with single-document
//! atomic operations, removed by a TTL index), and on the embedded store the
//! answer outlives a restart. What a record may hold and for how long is
//! decided by the HTTP layer (`http::idempotency`); here is only what both
//! backends must agree on, with the one rule that decides a claim.

use bson::oid::ObjectId;
use bson::{Binary, DateTime};
use serde::{Deserialize, Serialize};

/// A record's key: SHA-256 of the scope (the viewer) and the client's key,
/// so a client's key never names another viewer's record and any key fits
/// in 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct IdemKey(pub [u8; 32]);

impl IdemKey {
    /// The record's `_id`: the key in lowercase hex.
    pub fn hex(&self) -> String {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        self.0.iter().flat_map(|b| [DIGITS[usize::from(b >> 4)], DIGITS[usize::from(b & 15)]]).map(char::from).collect()
    }
}

/// SHA-256 of what the request asked (document, variables, operation name):
/// a key sent again with a different request is refused, not replayed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fingerprint(pub [u8; 32]);

/// Proof of a claim: only its holder may settle or release the record, so
/// an attempt that outlived its lease cannot overwrite its successor's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease(pub ObjectId);

/// What claiming a key found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Claim {
    /// Nobody holds the key (or its record expired): run the mutation.
    Fresh(Lease),
    /// Another attempt with this key is running now.
    InProgress,
    /// The key was used for a different request.
    Mismatch,
    /// The key's mutation ran: here is its answer, as it was sent.
    Replay(Vec<u8>),
}

/// One key's record, the same BSON on both backends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KeptDoc {
    /// [`IdemKey::hex`].
    #[serde(rename = "_id")]
    pub id: String,
    /// [`Fingerprint`] of the request that claimed it.
    pub fingerprint: Binary,
    /// The running attempt's lease token; absent once the answer is kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lease: Option<ObjectId>,
    /// When the lease ends or the kept answer is forgotten (MongoDB's TTL index reads it).
    #[serde(rename = "expiresAt")]
    pub expires_at: DateTime,
    /// The answer's bytes, once kept.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<Binary>,
}

/// What a claim does with the record it found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Write a fresh claim over whatever is there.
    Take,
    /// Answer without writing.
    Answer(Claim),
}

impl KeptDoc {
    /// A fresh claim on `key` by `lease`, held until `until`.
    pub fn claim(key: &IdemKey, fingerprint: &Fingerprint, lease: Lease, until: DateTime) -> Self {
        KeptDoc {
            id: key.hex(),
            fingerprint: Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: fingerprint.0.to_vec() },
            lease: Some(lease.0),
            expires_at: until,
            answer: None,
        }
    }

    /// The one rule both backends apply to the record a claim finds: an
    /// expired record (a lease whose holder died, or an answer past its
    /// time) is taken over; a live one answers by what it holds. An
    /// expired record may still exist: TTL removal and sweeping lag.
    pub fn verdict(found: Option<&KeptDoc>, fingerprint: &Fingerprint, now: DateTime) -> Verdict {
        let Some(found) = found.filter(|f| f.expires_at > now) else { return Verdict::Take };
        if found.fingerprint.bytes != fingerprint.0 {
            return Verdict::Answer(Claim::Mismatch);
        }
        match (&found.lease, &found.answer) {
            (None, Some(answer)) => Verdict::Answer(Claim::Replay(answer.bytes.clone())),
            _ => Verdict::Answer(Claim::InProgress),
        }
    }

    /// Whether `lease` still holds this record.
    pub fn held_by(&self, lease: Lease) -> bool {
        self.lease == Some(lease.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(ms: i64) -> DateTime {
        DateTime::from_millis(ms)
    }

    fn kept(fp: u8, answer: Option<&[u8]>, until: i64) -> KeptDoc {
        let mut doc = KeptDoc::claim(&IdemKey([1; 32]), &Fingerprint([fp; 32]), Lease(ObjectId::new()), at(until));
        if let Some(answer) = answer {
            doc.lease = None;
            doc.answer = Some(Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: answer.to_vec() });
        }
        doc
    }

    /// No record, or an expired one (a dead attempt's lease, a forgotten answer), is taken.
    #[test]
    fn absent_or_expired_records_are_taken() {
        let fp = Fingerprint([7; 32]);
        assert_eq!(KeptDoc::verdict(None, &fp, at(10)), Verdict::Take);
        assert_eq!(KeptDoc::verdict(Some(&kept(7, None, 10)), &fp, at(10)), Verdict::Take);
        assert_eq!(KeptDoc::verdict(Some(&kept(9, Some(b"{}"), 5)), &fp, at(10)), Verdict::Take);
    }

    /// A live record answers: the same request replays or waits, another request is a mismatch.
    #[test]
    fn live_records_answer_by_what_they_hold() {
        let fp = Fingerprint([7; 32]);
        assert_eq!(KeptDoc::verdict(Some(&kept(7, None, 20)), &fp, at(10)), Verdict::Answer(Claim::InProgress));
        assert_eq!(
            KeptDoc::verdict(Some(&kept(7, Some(b"{\"data\":1}"), 20)), &fp, at(10)),
            Verdict::Answer(Claim::Replay(b"{\"data\":1}".to_vec()))
        );
        assert_eq!(KeptDoc::verdict(Some(&kept(8, None, 20)), &fp, at(10)), Verdict::Answer(Claim::Mismatch));
        assert_eq!(KeptDoc::verdict(Some(&kept(8, Some(b"{}"), 20)), &fp, at(10)), Verdict::Answer(Claim::Mismatch));
    }

    /// A key's `_id` is its 32 bytes in lowercase hex.
    #[test]
    fn ids_are_lowercase_hex() {
        let mut key = [0u8; 32];
        key[0] = 0xab;
        key[31] = 0x0f;
        let hex = IdemKey(key).hex();
        assert_eq!(hex.len(), 64);
        assert!(hex.starts_with("ab00") && hex.ends_with("000f"), "{hex}");
    }

    /// Only the lease that claimed a record holds it.
    #[test]
    fn only_the_claiming_lease_holds_a_record() {
        let lease = Lease(ObjectId::new());
        let doc = KeptDoc::claim(&IdemKey([2; 32]), &Fingerprint([3; 32]), lease, at(1));
        assert!(doc.held_by(lease));
        assert!(!doc.held_by(Lease(ObjectId::new())));
    }
}
