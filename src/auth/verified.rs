//! Bearer tokens this process has already verified, so a client's next
//! request with the same token skips the signature check and the decode of
//! its JSON, which together cost about 3 µs: more than the rest of the token
//! check, and a fifth of a small signed-in query (see the README's "Tokens
//! verified once").
//!
//! What it keeps, and why that is safe:
//! - Only a token that passed [`Auth::verify`](super::Auth::verify) in full,
//!   under its exact text: a request gets a hit only by sending the very
//!   bytes that were verified, which only the token's holder has.
//! - A hit still checks the expiry, with the same leeway and clock as the
//!   full check, so a kept token expires exactly when it would have.
//! - Whether the account still accepts the token (log-out, a password
//!   change, a deletion) is not the signature's question: it is asked of the
//!   account's record on every request, as before, so nothing here outlives
//!   a session (see `Token::accepted_by`).
//!
//! Direct-mapped, in shards: a token has one slot, picked by a hash keyed
//! at random per process, and a newer token in that slot replaces it. So a
//! lookup is one short lock and one comparison, memory is bounded by
//! [`SLOTS`] whatever the traffic, and a token that lost its slot is simply
//! verified in full again. The comparison takes the same time however much
//! of the text matches, so a guess that lands on a live token's slot learns
//! nothing from timing.

use std::hash::BuildHasher;
use std::sync::Mutex;

use subtle::ConstantTimeEq;

use super::Token;

/// Tokens kept at most: about 1.2 MiB when every slot holds a 250-byte token.
pub(super) const SLOTS: usize = 4096;

/// Locks the slots are spread over, so concurrent requests rarely wait on one another.
const SHARDS: usize = 16;

/// One kept token.
struct Kept {
    /// The token's text, as verified.
    text: Box<str>,
    /// What it verified to.
    token: Token,
    /// Its `exp` claim, in seconds since the epoch.
    exp: u64,
}

/// One lock's slots.
type Shard = Mutex<Box<[Option<Kept>]>>;

/// Tokens verified in full, by their text.
pub(super) struct Verified {
    shards: Box<[Shard]>,
    hasher: foldhash::quality::RandomState,
}

impl Verified {
    /// An empty set of [`SLOTS`] slots.
    pub(super) fn new() -> Self {
        let shard = || Mutex::new((0..SLOTS / SHARDS).map(|_| None).collect());
        Verified { shards: (0..SHARDS).map(|_| shard()).collect(), hasher: foldhash::quality::RandomState::default() }
    }

    /// The shard and slot `text` lives in.
    fn slot(&self, text: &str) -> (usize, usize) {
        let hash = self.hasher.hash_one(text) as usize;
        (hash % SHARDS, (hash / SHARDS) % (SLOTS / SHARDS))
    }

    /// The token `text` verified to, if it was kept and has not expired at
    /// `now` (seconds since the epoch), allowing `leeway` seconds as the full
    /// check does.
    pub(super) fn get(&self, text: &str, now: u64, leeway: u64) -> Option<Token> {
        let (shard, slot) = self.slot(text);
        let slots = self.shards[shard].lock().ok()?;
        let kept = slots[slot].as_ref()?;
        let same = kept.text.len() == text.len() && bool::from(kept.text.as_bytes().ct_eq(text.as_bytes()));
        (same && kept.exp.saturating_add(leeway) >= now).then_some(kept.token)
    }

    /// Keeps `text`, which verified in full to `token` and expires at `exp`.
    pub(super) fn keep(&self, text: &str, token: Token, exp: u64) {
        let (shard, slot) = self.slot(text);
        if let Ok(mut slots) = self.shards[shard].lock() {
            slots[slot] = Some(Kept { text: text.into(), token, exp });
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::UserId;
    use bson::oid::ObjectId;

    fn token() -> Token {
        Token { user: UserId::from_oid(ObjectId::new()), session: 3, id: ObjectId::new() }
    }

    /// A kept token answers only its exact text, and only until its expiry plus the leeway.
    #[test]
    fn a_kept_token_answers_its_own_text_until_it_expires() {
        let verified = Verified::new();
        let kept = token();
        verified.keep("abc.def.ghi", kept, 1_000);
        assert_eq!(verified.get("abc.def.ghi", 1_000, 5), Some(kept));
        assert_eq!(verified.get("abc.def.ghi", 1_005, 5), Some(kept), "inside the leeway");
        assert_eq!(verified.get("abc.def.ghi", 1_006, 5), None, "expired");
        assert_eq!(verified.get("abc.def.ghj", 1_000, 5), None, "another text");
        assert_eq!(verified.get("abc.def.gh", 1_000, 5), None, "a prefix");
        assert_eq!(verified.get("abc.def.ghii", 1_000, 5), None, "a longer text");
    }

    /// However many tokens are kept, the slots stay [`SLOTS`], and every
    /// token still kept answers what it verified to.
    #[test]
    fn memory_is_bounded_and_answers_stay_right() {
        let verified = Verified::new();
        let tokens: Vec<(String, Token)> = (0..3 * SLOTS).map(|n| (format!("token-{n}"), token())).collect();
        for (text, token) in &tokens {
            verified.keep(text, *token, u64::MAX / 2);
        }
        let slots: usize = verified.shards.iter().map(|s| s.lock().map(|s| s.len()).unwrap_or(0)).sum();
        assert_eq!(slots, SLOTS);
        let mut hits = 0;
        for (text, token) in &tokens {
            if let Some(found) = verified.get(text, 0, 0) {
                assert_eq!(found, *token, "{text} answers its own token");
                hits += 1;
            }
        }
        assert!(hits > 0 && hits <= SLOTS, "{hits} hits");
        let (newest, kept) = &tokens[tokens.len() - 1];
        assert_eq!(verified.get(newest, 0, 0), Some(*kept), "the newest is kept");
    }
}
