//! A reader over the elements of one BSON document, for the element types
//! this store writes and nothing else.
//!
//! `bson`'s raw iterator validates each key as UTF-8 and builds a general
//! value for every element; decoding a post through it was a tenth of an
//! uncached list query's CPU (`bench/profile.sh nested`). The documents this
//! store writes hold five element types under known ASCII keys, so keys are
//! compared as bytes and values are read in place. It is at least as strict
//! as `bson`: a length, terminator or string that `bson` would refuse, or
//! any other element type, ends the read with `None`, and the caller then
//! decodes with serde, which reports the fault (a proptest over corrupted
//! documents checks that whatever this reader accepts, serde reads the same).

use bson::oid::ObjectId;

use super::RawId;

/// One element's value.
pub(in crate::store::embedded) enum Value<'a> {
    String(&'a str),
    ObjectId(ObjectId),
    DateTime(bson::DateTime),
    Int64(i64),
    /// An array: a document whose keys are positions.
    Array(Elements<'a>),
}

/// The elements of one document, read front to back.
pub(in crate::store::embedded) struct Elements<'a> {
    /// The elements, without the length in front and the terminating zero.
    rest: &'a [u8],
}

impl<'a> Elements<'a> {
    /// The elements of the document `bytes` holds exactly, if its length and terminator say so.
    pub(in crate::store::embedded) fn of(bytes: &'a [u8]) -> Option<Self> {
        let (len, body) = bytes.split_first_chunk::<4>()?;
        let (&last, rest) = body.split_last()?;
        (usize::try_from(i32::from_le_bytes(*len)).ok()? == bytes.len() && last == 0).then_some(Elements { rest })
    }

    /// The next element's key and value: `Some(None)` at the end, `None` if
    /// the element is malformed or of a type this store does not write.
    pub(in crate::store::embedded) fn next_element(&mut self) -> Option<Option<(&'a [u8], Value<'a>)>> {
        let Some((&kind, after)) = self.rest.split_first() else {
            return Some(None);
        };
        let nul = after.iter().position(|&b| b == 0)?;
        let (key, after) = (&after[..nul], &after[nul + 1..]);
        let (value, rest) = match kind {
            0x02 => {
                let (len, after) = after.split_first_chunk::<4>()?;
                let len = usize::try_from(i32::from_le_bytes(*len)).ok().filter(|&n| n >= 1)?;
                let (text, rest) = after.split_at_checked(len)?;
                let (&0, text) = text.split_last()? else { return None };
                (Value::String(std::str::from_utf8(text).ok()?), rest)
            }
            0x07 => {
                let (id, rest) = after.split_first_chunk::<12>()?;
                (Value::ObjectId(ObjectId::from_bytes(*id)), rest)
            }
            0x09 => {
                let (millis, rest) = after.split_first_chunk::<8>()?;
                (Value::DateTime(bson::DateTime::from_millis(i64::from_le_bytes(*millis))), rest)
            }
            0x12 => {
                let (n, rest) = after.split_first_chunk::<8>()?;
                (Value::Int64(i64::from_le_bytes(*n)), rest)
            }
            0x04 => {
                let (len, _) = after.split_first_chunk::<4>()?;
                let len = usize::try_from(i32::from_le_bytes(*len)).ok()?;
                let (array, rest) = after.split_at_checked(len)?;
                (Value::Array(Elements::of(array)?), rest)
            }
            _ => return None,
        };
        // `bson` refuses a key that is not UTF-8 (even an array's position, which is not read).
        if !key.is_ascii() {
            std::str::from_utf8(key).ok()?;
        }
        self.rest = rest;
        Some(Some((key, value)))
    }

    /// The ids of an array of ids; `None` if any element is something else.
    pub(super) fn ids<I: RawId>(mut self) -> Option<Vec<I>> {
        let mut out = Vec::new();
        while let Some((_, value)) = self.next_element()? {
            let Value::ObjectId(id) = value else { return None };
            out.push(I::from_raw(id));
        }
        Some(out)
    }
}
