//! argon2id hashing with bounded concurrency and bounded memory.
//!
//! argon2id is deliberately expensive: 19 MiB and tens of milliseconds per
//! hash with the default costs. Unbounded, 200 concurrent sign-ups take
//! gigabytes. So:
//! - at most `concurrency` hashes run at once (one per slot, on the blocking pool);
//! - at most `queue` requests wait for a slot; beyond that a request is
//!   refused at once with `RATE_LIMITED` instead of piling up;
//! - each slot owns one memory buffer, allocated on first use and reused by
//!   every later hash, so memory stays at `concurrency` × the argon2 memory
//!   cost instead of churning through the allocator (glibc keeps freed
//!   buffers of this size resident).
//!
//! The slot and its buffer travel with the blocking task, so a client that
//! disconnects mid-hash frees neither before the hash is really done.

use std::sync::{Arc, Mutex};

use crate::error::{Error, Result};
use crate::limits::gate::Gate;
use argon2::password_hash::rand_core::OsRng;
use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};

/// Length of the hashes this server writes.
const OUTPUT_LEN: usize = 32;

/// The bounded argon2id pool.
pub(super) struct Hasher {
    params: Params,
    slots: Gate,
    buffers: Mutex<Vec<Vec<Block>>>,
}

fn hashing_error(context: &'static str, err: argon2::password_hash::Error) -> Error {
    Error::internal_from(context, err)
}

impl Hasher {
    /// A pool hashing with `memory_kib` and `iterations`, `concurrency` at a
    /// time, with up to `queue` requests waiting.
    pub(super) fn new(memory_kib: u32, iterations: u32, concurrency: usize, queue: usize) -> Result<Self> {
        let params = Params::new(memory_kib, iterations, 1, Some(OUTPUT_LEN))
            .map_err(|e| Error::internal_from("argon2 parameters", e))?;
        let concurrency = concurrency.max(1);
        Ok(Hasher {
            params,
            slots: Gate::new(concurrency, queue),
            buffers: Mutex::new(Vec::with_capacity(concurrency)),
        })
    }

    /// Hashes `password` into a PHC string, in a slot.
    pub(super) async fn hash(self: &Arc<Self>, password: String) -> Result<String> {
        self.in_slot(move |hasher, memory| hasher.hash_now(&password, memory)).await
    }

    /// Checks `password` against the PHC string `hash`, in a slot. The check
    /// costs the same whether or not it matches.
    pub(super) async fn verify(self: &Arc<Self>, password: String, hash: String) -> Result<bool> {
        self.in_slot(move |hasher, memory| hasher.verify_now(&password, &hash, memory)).await
    }

    /// Hashes on the calling thread (start-up only), with a buffer that then
    /// joins the pool as a slot's, so this hash adds no memory of its own.
    pub(super) fn hash_blocking(&self, password: &str) -> Result<String> {
        let mut memory = self.buffers.lock().ok().and_then(|mut b| b.pop()).unwrap_or_default();
        let out = self.hash_now(password, &mut memory);
        if let Ok(mut buffers) = self.buffers.lock() {
            buffers.push(memory);
        }
        out
    }

    /// Runs `work` in a slot on the blocking pool with the slot's buffer.
    async fn in_slot<T, F>(self: &Arc<Self>, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Hasher, &mut Vec<Block>) -> Result<T> + Send + 'static,
    {
        let permit = self.slots.enter().await?;
        let hasher = Arc::clone(self);
        tokio::task::spawn_blocking(move || {
            let mut memory = hasher.buffers.lock().ok().and_then(|mut b| b.pop()).unwrap_or_default();
            let out = work(&hasher, &mut memory);
            if let Ok(mut buffers) = hasher.buffers.lock() {
                buffers.push(memory);
            }
            drop(permit);
            out
        })
        .await?
    }

    fn hash_now(&self, password: &str, memory: &mut Vec<Block>) -> Result<String> {
        let salt = SaltString::generate(&mut OsRng);
        let mut salt_bytes = [0u8; 64];
        let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|e| hashing_error("salt", e))?;
        let argon = Argon2::new(Algorithm::Argon2id, Version::V0x13, self.params.clone());
        let mut out = [0u8; OUTPUT_LEN];
        fill(&argon, &self.params, password, salt_raw, &mut out, memory)?;
        let phc = PasswordHash {
            algorithm: Algorithm::Argon2id.ident(),
            version: Some(Version::V0x13.into()),
            params: ParamsString::try_from(&self.params).map_err(|e| hashing_error("parameters", e))?,
            salt: Some(salt.as_salt()),
            hash: Some(Output::new(&out).map_err(|e| hashing_error("output", e))?),
        };
        Ok(phc.to_string())
    }

    fn verify_now(&self, password: &str, hash: &str, memory: &mut Vec<Block>) -> Result<bool> {
        let parsed = PasswordHash::new(hash).map_err(|e| hashing_error("a stored hash", e))?;
        let params = Params::try_from(&parsed).map_err(|e| hashing_error("a stored hash's parameters", e))?;
        let algorithm =
            Algorithm::try_from(parsed.algorithm).map_err(|e| hashing_error("a stored hash's algorithm", e))?;
        let version = parsed
            .version
            .map_or(Ok(Version::V0x13), Version::try_from)
            .map_err(|e| Error::internal_from("a stored hash's version", e))?;
        let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
            return Err(Error::internal("a stored hash has no salt or output"));
        };
        let mut salt_bytes = [0u8; 64];
        let salt_raw = salt.decode_b64(&mut salt_bytes).map_err(|e| hashing_error("a stored salt", e))?;
        let argon = Argon2::new(algorithm, version, params.clone());
        let mut out = vec![0u8; expected.len()];
        fill(&argon, &params, password, salt_raw, &mut out, memory)?;
        let computed = Output::new(&out).map_err(|e| hashing_error("output", e))?;
        // `Output`'s equality is constant-time.
        Ok(computed == expected)
    }
}

/// Runs argon2 into `out`, growing `memory` to the parameters' size if it is smaller.
fn fill(
    argon: &Argon2<'_>,
    params: &Params,
    password: &str,
    salt: &[u8],
    out: &mut [u8],
    memory: &mut Vec<Block>,
) -> Result<()> {
    if memory.len() < params.block_count() {
        memory.resize(params.block_count(), Block::new());
    }
    argon
        .hash_password_into_with_memory(password.as_bytes(), salt, out, &mut memory[..])
        .map_err(|e| Error::internal_from("argon2", e))
}

#[cfg(test)]
mod tests {
    use argon2::PasswordVerifier;

    use super::*;

    fn pool(concurrency: usize, queue: usize) -> Arc<Hasher> {
        Arc::new(Hasher::new(64, 1, concurrency, queue).expect("pool"))
    }

    /// Hashes are standard PHC strings: the argon2 crate's own verifier accepts
    /// them, and ours accepts the right password and refuses a wrong one.
    #[tokio::test]
    async fn hashes_are_standard_and_verify() {
        let hasher = pool(1, 4);
        let hash = hasher.hash("correct horse".into()).await.expect("hash");
        let parsed = PasswordHash::new(&hash).expect("PHC");
        assert!(Argon2::default().verify_password(b"correct horse", &parsed).is_ok());
        assert!(hasher.verify("correct horse".into(), hash.clone()).await.expect("verify"));
        assert!(!hasher.verify("wrong horse".into(), hash).await.expect("verify"));
    }

    /// A hash made with other costs (a changed setting) still verifies, growing the buffer.
    #[tokio::test]
    async fn hashes_with_other_costs_verify() {
        let bigger = Hasher::new(256, 2, 1, 1).expect("pool").hash_blocking("pw-123456").expect("hash");
        assert!(pool(1, 1).verify("pw-123456".into(), bigger).await.expect("verify"));
    }

    /// With one slot busy and a queue of one, a second waiting request is
    /// refused at once with RATE_LIMITED, and the queued one completes once
    /// the slot frees. The slot is held by the test itself, so the queued
    /// state lasts until the test releases it, however slow the machine.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_full_queue_is_rate_limited() {
        let hasher = Arc::new(Hasher::new(64, 1, 1, 1).expect("pool"));
        let busy = hasher.slots.enter().await.expect("the one slot");
        let queued = {
            let h = Arc::clone(&hasher);
            tokio::spawn(async move { h.hash("password-1".into()).await })
        };
        let started = std::time::Instant::now();
        while hasher.slots.waiting() != 1 {
            assert!(started.elapsed() < std::time::Duration::from_secs(30), "the request never queued");
            tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        }
        // Refused at once, not queued behind the held slot (which would time out here).
        let third = tokio::time::timeout(std::time::Duration::from_secs(5), hasher.hash("password-1".into())).await;
        assert!(matches!(third, Ok(Err(Error::RateLimited { .. }))));
        drop(busy);
        assert!(queued.await.expect("task").is_ok());
        assert!(hasher.hash("password-1".into()).await.is_ok());
        assert_eq!(hasher.buffers.lock().map(|b| b.len()).unwrap_or(0), 1, "one slot, one buffer, reused");
    }
}
