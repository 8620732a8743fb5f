//! Token ids: an ObjectId whose time part is the token's expiry.
//!
//! `logOut` records the id of the token it ends on the account's record, and
//! the record is what every token check reads. With the expiry inside the id,
//! the record can drop an ended token once it would be refused anyway, with
//! no second field and no reading of the token again.

use argon2::password_hash::rand_core::{OsRng, RngCore};
use bson::DateTime;
use bson::oid::ObjectId;

/// A new token id for a token that expires at `expires` (seconds since the
/// epoch, capped to the 32 bits an ObjectId's time part holds), the other
/// 8 bytes random.
pub fn new_token_id(expires: i64) -> ObjectId {
    let mut bytes = [0u8; 12];
    let secs = u32::try_from(expires.max(0)).unwrap_or(u32::MAX);
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    OsRng.fill_bytes(&mut bytes[4..]);
    ObjectId::from_bytes(bytes)
}

/// Whether the token with id `id` has expired by `now`.
pub fn token_expired(id: &ObjectId, now: DateTime) -> bool {
    let b = id.bytes();
    i64::from(u32::from_be_bytes([b[0], b[1], b[2], b[3]])) < now.timestamp_millis().div_euclid(1000)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An id carries its expiry: expired after it, not before; two ids for
    /// the same expiry differ.
    #[test]
    fn an_id_knows_when_its_token_expires() {
        let expires = 1_900_000_000;
        let id = new_token_id(expires);
        assert!(!token_expired(&id, DateTime::from_millis(expires * 1000)));
        assert!(token_expired(&id, DateTime::from_millis((expires + 1) * 1000)));
        assert_ne!(id, new_token_id(expires));
        assert!(!token_expired(&new_token_id(i64::MAX), DateTime::from_millis(4_000_000_000_000)));
    }
}
