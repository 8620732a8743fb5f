//! `Idempotency-Key` records on the embedded store, written on the writer
//! thread (redb's one writer makes each claim atomic).
//!
//! Each runs in its group's transaction as every write on the writer thread
//! does, answered once the group's durable commit covers it (see `group`):
//! a kept answer is durable before the client is answered, so a retry after
//! a crash gets it. Expired records go a few at a time with each claim, in
//! expiry order (their own index), so the table never needs a sweeper and a
//! claim's work is bounded.

use bson::DateTime;
use bson::oid::ObjectId;
use redb::{ReadableTable, Table};

use super::group::Group;
use super::schema::{KEPT_ANSWERS, KEPT_BY_EXPIRY};
use crate::error::{Error, Result};
use crate::store::idempotency::{Claim, Fingerprint, IdemKey, KeptDoc, Lease, Verdict};

/// Most expired records one claim removes: enough to outpace new keys, few
/// enough that a claim stays a handful of B-tree writes.
const SWEEP_PER_CLAIM: usize = 8;

type Records<'t> = Table<'t, &'static [u8], &'static [u8]>;
type Expiry<'t> = Table<'t, &'static [u8], ()>;

/// Claims `key` (see [`crate::store::Backend::claim_key`]).
pub(super) fn claim(group: &mut Group, key: &IdemKey, fingerprint: &Fingerprint, until: DateTime) -> Result<Claim> {
    write(group, |records, expiry| {
        let now = DateTime::now();
        sweep(records, expiry, now)?;
        let found = get(records, key)?;
        match KeptDoc::verdict(found.as_ref(), fingerprint, now) {
            Verdict::Answer(claim) => Ok(claim),
            Verdict::Take => {
                let lease = Lease(ObjectId::new());
                put(records, expiry, found.as_ref(), &KeptDoc::claim(key, fingerprint, lease, until), key)?;
                Ok(Claim::Fresh(lease))
            }
        }
    })
}

/// Keeps `answer` under `key` if `lease` still holds it, durably.
pub(super) fn keep(group: &mut Group, key: &IdemKey, lease: Lease, answer: &[u8], until: DateTime) -> Result<()> {
    write(group, |records, expiry| {
        let Some(found) = get(records, key)?.filter(|f| f.held_by(lease)) else { return Ok(()) };
        let mut kept = found.clone();
        kept.lease = None;
        kept.expires_at = until;
        kept.answer = Some(bson::Binary { subtype: bson::spec::BinarySubtype::Generic, bytes: answer.to_vec() });
        put(records, expiry, Some(&found), &kept, key)
    })
}

/// Removes `key`'s record if `lease` still holds it.
pub(super) fn release(group: &mut Group, key: &IdemKey, lease: Lease) -> Result<()> {
    write(group, |records, expiry| {
        if let Some(found) = get(records, key)?.filter(|f| f.held_by(lease)) {
            records.remove(key.0.as_slice())?;
            expiry.remove(expiry_key(found.expires_at, key).as_slice())?;
        }
        Ok(())
    })
}

/// The two tables, in the group's transaction (see `group`).
fn write<T>(group: &mut Group, f: impl FnOnce(&mut Records<'_>, &mut Expiry<'_>) -> Result<T>) -> Result<T> {
    let wtx = group.tx()?;
    let mut records = wtx.open_table(KEPT_ANSWERS)?;
    let mut expiry = wtx.open_table(KEPT_BY_EXPIRY)?;
    f(&mut records, &mut expiry)
}

fn get(records: &Records<'_>, key: &IdemKey) -> Result<Option<KeptDoc>> {
    records
        .get(key.0.as_slice())?
        .map(|raw| bson::deserialize_from_slice(raw.value()).map_err(|e| Error::internal_from("a kept answer", e)))
        .transpose()
}

/// Writes `doc` over `old` (if any), keeping the expiry index in step.
fn put(
    records: &mut Records<'_>,
    expiry: &mut Expiry<'_>,
    old: Option<&KeptDoc>,
    doc: &KeptDoc,
    key: &IdemKey,
) -> Result<()> {
    let bytes = bson::serialize_to_vec(doc).map_err(|e| Error::internal_from("encoding a kept answer", e))?;
    if let Some(old) = old {
        expiry.remove(expiry_key(old.expires_at, key).as_slice())?;
    }
    records.insert(key.0.as_slice(), bytes.as_slice())?;
    expiry.insert(expiry_key(doc.expires_at, key).as_slice(), ())?;
    Ok(())
}

/// Removes up to [`SWEEP_PER_CLAIM`] records that expired before `now`.
fn sweep(records: &mut Records<'_>, expiry: &mut Expiry<'_>, now: DateTime) -> Result<()> {
    let end = expiry_key(now, &IdemKey([0; 32]));
    let due: Vec<Vec<u8>> = expiry
        .range(..end.as_slice())?
        .take(SWEEP_PER_CLAIM)
        .map(|entry| entry.map(|(k, _)| k.value().to_vec()))
        .collect::<Result<_, _>>()?;
    for entry in due {
        expiry.remove(entry.as_slice())?;
        if let Some(key) = entry.get(8..) {
            records.remove(key)?;
        }
    }
    Ok(())
}

/// An expiry index key: the time as big-endian millis with the sign bit
/// flipped (so byte order is time order, before 1970 too), then the key.
fn expiry_key(at: DateTime, key: &IdemKey) -> [u8; 40] {
    let mut out = [0u8; 40];
    out[..8].copy_from_slice(&((at.timestamp_millis() as u64) ^ (1 << 63)).to_be_bytes());
    out[8..].copy_from_slice(&key.0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expiry keys sort by time first, whatever the key bytes.
    #[test]
    fn expiry_keys_sort_by_time() {
        let early = expiry_key(DateTime::from_millis(-5), &IdemKey([255; 32]));
        let later = expiry_key(DateTime::from_millis(3), &IdemKey([0; 32]));
        let latest = expiry_key(DateTime::from_millis(1_700_000_000_000), &IdemKey([0; 32]));
        assert!(early < later && later < latest);
    }
}
