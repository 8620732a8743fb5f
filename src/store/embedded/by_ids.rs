//! Documents by id: one B-tree lookup each for a few, one ordered walk for
//! a page's worth (the ids of a page are mostly neighbours in the table).

use bson::oid::ObjectId;
use redb::ReadableTable;

use super::codec::decode;
use super::schema::Stored;
use crate::error::Result;

/// The document with `id` in `table`, if any.
pub(super) fn get_doc<D: Stored>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    id: &ObjectId,
) -> Result<Option<D>> {
    match table.get(id.bytes().as_slice())? {
        Some(guard) => Ok(Some(decode(guard.value())?)),
        None => Ok(None),
    }
}

/// From this many ids on, [`get_docs`] walks the table in key order
/// instead of descending the B-tree once per id.
const WALK_FROM: usize = 8;

/// The documents with these ids in `table`, one place per id in the order
/// asked, `None` where there is none.
pub(super) fn get_docs<D: Stored>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ids: &[impl Copy + Into<ObjectId>],
) -> Result<Vec<Option<D>>> {
    read_values(table, ids, decode)
}

/// What `read` makes of the stored value of each of these ids, one place
/// per id in the order asked, `None` where there is none.
///
/// A page's ids are mostly neighbours in the table (an ObjectId starts with
/// its creation second, and pages list by creation time), so from
/// [`WALK_FROM`] ids on they are read in order, walking the table: one
/// descent, then entry by entry, where a lookup per id pays a descent and a
/// binary search each. See [`walk_sorted`] for ids that are not neighbours.
pub(super) fn read_values<T>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    ids: &[impl Copy + Into<ObjectId>],
    read: impl Fn(&[u8]) -> Result<T>,
) -> Result<Vec<Option<T>>> {
    if ids.len() < WALK_FROM {
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            out.push(table.get((*id).into().bytes().as_slice())?.map(|v| read(v.value())).transpose()?);
        }
        return Ok(out);
    }
    let mut wanted: Vec<([u8; 12], usize)> =
        ids.iter().enumerate().map(|(at, id)| ((*id).into().bytes(), at)).collect();
    wanted.sort_unstable();
    let mut found: Vec<Option<T>> = std::iter::repeat_with(|| None).take(ids.len()).collect();
    walk_sorted(table, &wanted, &mut found, &read)?;
    Ok(found)
}

/// After this many unwanted entries in a row, [`walk_sorted`] seeks to the
/// next wanted id instead of stepping on.
const SKIPS_BEFORE_SEEK: usize = 2;

/// Reads `wanted` (sorted ids, each with its place in `found`) walking the
/// table in key order from the first to the last.
///
/// Where the ids are not neighbours it seeks instead of stepping over what
/// lies between: after [`SKIPS_BEFORE_SEEK`] unwanted entries in a row it
/// starts a new walk at the next wanted id (one descent, as a lookup costs).
/// So ids scattered over a large table cost at most that many steps more
/// each than lookups would, and neighbours cost one step each.
fn walk_sorted<T>(
    table: &impl ReadableTable<&'static [u8], &'static [u8]>,
    wanted: &[([u8; 12], usize)],
    found: &mut [Option<T>],
    read: &impl Fn(&[u8]) -> Result<T>,
) -> Result<()> {
    let Some((last, _)) = wanted.last() else { return Ok(()) };
    let mut next = 0;
    'seek: while let Some((from, _)) = wanted.get(next) {
        let mut skipped = 0;
        for entry in table.range::<&[u8]>(from.as_slice()..=last.as_slice())? {
            let (key, value) = entry?;
            let key = key.value();
            // Wanted ids below this key are not in the table.
            while wanted.get(next).is_some_and(|(id, _)| id.as_slice() < key) {
                next += 1;
            }
            if wanted.get(next).is_some_and(|(id, _)| id.as_slice() == key) {
                skipped = 0;
                // The same id asked twice is answered twice, as lookups would.
                while let Some((id, at)) = wanted.get(next)
                    && id.as_slice() == key
                {
                    found[*at] = Some(read(value.value())?);
                    next += 1;
                }
            } else {
                skipped += 1;
                if skipped == SKIPS_BEFORE_SEEK {
                    // `wanted[next]` is above this key, so the next walk starts further on.
                    continue 'seek;
                }
            }
            if next == wanted.len() {
                break;
            }
        }
        // This walk reached `last`: the ids not found are not in the table.
        break;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;
    use redb::ReadableDatabase as _;

    use super::*;
    use crate::store::embedded::schema::DocTable;

    proptest! {
        /// Reading by ids (an ordered walk from eight on, seeking past gaps;
        /// lookups below eight) answers exactly what one lookup per id would:
        /// one place per id asked, in order, duplicates twice, `None` where missing.
        #[test]
        fn reads_by_ids_match_lookups(stored in prop::collection::btree_set(0u16..400, 0..200),
                                      asked in prop::collection::vec(0u16..400, 0..60)) {
            let oid = |n: u16| { let mut b = [0u8; 12]; b[10..].copy_from_slice(&n.to_be_bytes()); ObjectId::from_bytes(b) };
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let db = redb::Database::create(dir.path().join("t.redb")).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let table: DocTable = redb::TableDefinition::new("t");
            let wtx = db.begin_write().map_err(|e| TestCaseError::fail(e.to_string()))?;
            {
                let mut t = wtx.open_table(table).map_err(|e| TestCaseError::fail(e.to_string()))?;
                for n in &stored {
                    t.insert(oid(*n).bytes().as_slice(), n.to_be_bytes().as_slice()).map_err(|e| TestCaseError::fail(e.to_string()))?;
                }
            }
            wtx.commit().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let rtx = db.begin_read().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let t = rtx.open_table(table).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let ids: Vec<ObjectId> = asked.iter().map(|n| oid(*n)).collect();
            let got = read_values(&t, &ids, |v| Ok(v.to_vec())).map_err(|e| TestCaseError::fail(e.to_string()))?;
            let want: Vec<Option<Vec<u8>>> = asked.iter().map(|n| stored.contains(n).then(|| n.to_be_bytes().to_vec())).collect();
            prop_assert_eq!(got, want);
        }
    }
}
