//! Rate limiters over client keys (addresses, emails, users): fixed-window
//! counters, write budgets and growing log-in back-offs, each bounded in
//! memory however many distinct keys clients send.

use std::collections::HashMap;
use std::hash::{BuildHasher, Hash, RandomState};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::error::{Error, Result};

/// Whole seconds to wait, rounded up, at least one: a client that waits this long is admitted.
fn ceil_secs(wait: Duration) -> u64 {
    (wait.as_secs() + u64::from(wait.subsec_nanos() > 0)).max(1)
}

/// Most keys a limiter remembers. Keys are 8-byte hashes, so this bounds a
/// table to a few MiB however many distinct keys clients send.
const MAX_KEYS: usize = 100_000;

/// A keyed table that forgets stale entries and never grows past [`MAX_KEYS`].
///
/// Keys are stored as 64-bit hashes under a per-process random key, so a
/// client choosing long keys (a 1 MB "email") costs nothing to remember.
#[derive(Debug)]
struct Table<V> {
    hasher: RandomState,
    entries: HashMap<u64, V>,
    last_sweep: Instant,
}

impl<V> Table<V> {
    fn new() -> Self {
        Table { hasher: RandomState::new(), entries: HashMap::new(), last_sweep: Instant::now() }
    }

    fn key<K: Hash + ?Sized>(&self, key: &K) -> u64 {
        self.hasher.hash_one(key)
    }

    /// Drops entries `stale` says are stale, at most once per `every`.
    fn sweep(&mut self, now: Instant, every: Duration, stale: impl Fn(&V) -> bool) {
        if now.duration_since(self.last_sweep) >= every {
            self.entries.retain(|_, v| !stale(v));
            self.last_sweep = now;
        }
    }

    /// The entry for `key`, made room for if the table is full.
    fn entry(&mut self, key: u64, fresh: V) -> &mut V {
        if self.entries.len() >= MAX_KEYS && !self.entries.contains_key(&key) {
            // Full of live entries: forget an arbitrary one rather than grow.
            if let Some(victim) = self.entries.keys().next().copied() {
                self.entries.remove(&victim);
            }
        }
        self.entries.entry(key).or_insert(fresh)
    }
}

/// A fixed-window counter per key (a client address), in bounded memory.
#[derive(Debug)]
pub struct RateLimiter {
    per_window: u32,
    window: Duration,
    table: Mutex<Table<(Instant, u32)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_window` hits per key every `window`.
    pub fn new(per_window: u32, window: Duration) -> Self {
        RateLimiter { per_window, window, table: Mutex::new(Table::new()) }
    }

    /// Records a hit for `key`; refuses it with `RATE_LIMITED` when the key is over its budget.
    pub fn hit<K: Hash + ?Sized>(&self, key: &K) -> Result<()> {
        self.hit_n(key, 1)
    }

    /// Records `n` units for `key` (bytes, documents); refuses them, taking
    /// nothing, when they would pass the key's budget for this window.
    pub fn hit_n<K: Hash + ?Sized>(&self, key: &K, n: u32) -> Result<()> {
        let now = Instant::now();
        let window = self.window;
        let mut table = self.table.lock().map_err(|_| Error::internal("rate limiter lock poisoned"))?;
        table.sweep(now, window, |(start, _)| now.duration_since(*start) >= window);
        let key = table.key(key);
        let entry = table.entry(key, (now, 0));
        if now.duration_since(entry.0) >= window {
            *entry = (now, 0);
        }
        if entry.1.saturating_add(n) > self.per_window {
            let retry_after = window.saturating_sub(now.duration_since(entry.0));
            return Err(Error::RateLimited { retry_after_secs: ceil_secs(retry_after) });
        }
        entry.1 += n;
        Ok(())
    }

    /// How many keys the limiter remembers (tests and diagnostics).
    pub fn len(&self) -> usize {
        self.table.lock().map(|t| t.entries.len()).unwrap_or(0)
    }

    /// Whether the limiter remembers no key.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What writes may add per minute, per user and per client address: a
/// count of writes and the content bytes they add (titles, bodies). One
/// request of 499 aliased `createPost`s added 125 MB in half a second; now
/// a request holds at most `--max-mutation-fields` writes and a user at
/// most this budget a minute. Deletes are never charged.
#[derive(Debug)]
pub struct WriteBudget {
    writes_per_user: RateLimiter,
    bytes_per_user: RateLimiter,
    writes_per_ip: RateLimiter,
    bytes_per_ip: RateLimiter,
}

/// How many times the per-user budget one client address may spend (users behind one NAT).
pub const PER_IP_FACTOR: u32 = 4;

impl WriteBudget {
    /// A budget of `writes` writes and `bytes` content bytes per user per
    /// minute, and [`PER_IP_FACTOR`] times that per client address.
    pub fn new(writes: u32, bytes: u32) -> Self {
        let minute = Duration::from_secs(60);
        WriteBudget {
            writes_per_user: RateLimiter::new(writes, minute),
            bytes_per_user: RateLimiter::new(bytes, minute),
            writes_per_ip: RateLimiter::new(writes.saturating_mul(PER_IP_FACTOR), minute),
            bytes_per_ip: RateLimiter::new(bytes.saturating_mul(PER_IP_FACTOR), minute),
        }
    }

    /// Charges one write of `bytes` content bytes to `user` and `ip`, or
    /// refuses with `RATE_LIMITED`. (A refusal after the user's charge
    /// leaves it charged: the window is a minute, and the attempt was made.)
    pub fn charge(&self, user: &impl Hash, ip: Option<std::net::IpAddr>, bytes: usize) -> Result<()> {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.bytes_per_user.hit_n(user, bytes)?;
        self.writes_per_user.hit(user)?;
        if let Some(ip) = ip {
            self.bytes_per_ip.hit_n(&ip, bytes)?;
            self.writes_per_ip.hit(&ip)?;
        }
        Ok(())
    }

    /// Charges `bytes` kept on the writer's behalf (an `Idempotency-Key`'s
    /// answer) to `user` and `ip`, without counting a write.
    pub fn charge_bytes(&self, user: &impl Hash, ip: Option<std::net::IpAddr>, bytes: usize) -> Result<()> {
        let bytes = u32::try_from(bytes).unwrap_or(u32::MAX);
        self.bytes_per_user.hit_n(user, bytes)?;
        if let Some(ip) = ip {
            self.bytes_per_ip.hit_n(&ip, bytes)?;
        }
        Ok(())
    }
}

/// Growing delays after repeated failures, per key (an email and a client address).
///
/// After `threshold` failures each further attempt must wait 1 s, then 2 s,
/// 4 s, ... up to 15 minutes after the last failure. A success forgets the
/// key. Keyed by email *and* address, so nobody can lock an account's owner
/// out by failing from elsewhere.
#[derive(Debug)]
pub struct FailureBackoff {
    threshold: u32,
    table: Mutex<Table<(u32, Instant)>>,
}

/// Longest wait the back-off imposes.
const MAX_BACKOFF: Duration = Duration::from_secs(15 * 60);

impl FailureBackoff {
    /// A back-off that starts after `threshold` failures.
    pub fn new(threshold: u32) -> Self {
        FailureBackoff { threshold, table: Mutex::new(Table::new()) }
    }

    fn delay(&self, failures: u32) -> Duration {
        let over = failures.saturating_sub(self.threshold).min(20);
        Duration::from_secs(1u64 << over).min(MAX_BACKOFF)
    }

    fn lock(&self) -> Result<std::sync::MutexGuard<'_, Table<(u32, Instant)>>> {
        self.table.lock().map_err(|_| Error::internal("back-off lock poisoned"))
    }

    /// Refuses with `RATE_LIMITED` while `key` must wait.
    pub fn check<K: Hash + ?Sized>(&self, key: &K) -> Result<()> {
        let now = Instant::now();
        let table = self.lock()?;
        let Some((failures, last)) = table.entries.get(&table.key(key)).copied() else {
            return Ok(());
        };
        if failures < self.threshold {
            return Ok(());
        }
        let ready = last + self.delay(failures);
        if now < ready {
            return Err(Error::RateLimited { retry_after_secs: ceil_secs(ready - now) });
        }
        Ok(())
    }

    /// Records a failure for `key`.
    pub fn fail<K: Hash + ?Sized>(&self, key: &K) -> Result<()> {
        let now = Instant::now();
        let mut table = self.lock()?;
        table.sweep(now, Duration::from_secs(60), |(_, last)| now.duration_since(*last) > 2 * MAX_BACKOFF);
        let key = table.key(key);
        let entry = table.entry(key, (0, now));
        *entry = (entry.0.saturating_add(1), now);
        Ok(())
    }

    /// Forgets `key`'s failures after a success.
    pub fn succeed<K: Hash + ?Sized>(&self, key: &K) -> Result<()> {
        let mut table = self.lock()?;
        let key = table.key(key);
        table.entries.remove(&key);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A million distinct long keys leave the table at its bound, not a million entries.
    #[test]
    fn rate_limiter_memory_is_bounded() {
        let limiter = RateLimiter::new(10, Duration::from_secs(60));
        let long = "x".repeat(1000);
        for i in 0..(MAX_KEYS + 5_000) {
            limiter.hit(&(i, &long)).expect("a fresh key is admitted");
        }
        assert_eq!(limiter.len(), MAX_KEYS);
    }

    /// After the threshold, attempts wait (with a retry hint); other keys are
    /// unaffected; a success forgets the failures.
    #[test]
    fn failure_backoff() {
        let backoff = FailureBackoff::new(2);
        for _ in 0..2 {
            backoff.check(&"a").expect("under the threshold");
            backoff.fail(&"a").expect("fail");
        }
        assert!(matches!(backoff.check(&"a"), Err(Error::RateLimited { retry_after_secs: 1 })));
        backoff.check(&"b").expect("another key");
        backoff.fail(&"a").expect("fail");
        assert!(matches!(backoff.check(&"a"), Err(Error::RateLimited { retry_after_secs: 2 })));
        backoff.succeed(&"a").expect("succeed");
        backoff.check(&"a").expect("forgotten after a success");
        assert_eq!(backoff.delay(1000), MAX_BACKOFF);
    }

    /// Writes are charged by count and by bytes, per user and per address;
    /// a charge that would pass either is refused and takes no bytes.
    #[test]
    fn write_budget() {
        let budget = WriteBudget::new(3, 1000);
        let ip = Some(std::net::IpAddr::from([127, 0, 0, 1]));
        budget.charge(&"ann", ip, 600).expect("first write");
        assert!(matches!(budget.charge(&"ann", ip, 600), Err(Error::RateLimited { .. })), "over the bytes");
        budget.charge(&"ann", ip, 300).expect("the refused bytes were not taken");
        budget.charge(&"ann", ip, 0).expect("third write");
        assert!(matches!(budget.charge(&"ann", ip, 0), Err(Error::RateLimited { .. })), "over the count");
        budget.charge(&"bob", ip, 900).expect("another user, same address");
        let busy = WriteBudget::new(1, 1_000_000);
        for user in 0..PER_IP_FACTOR {
            busy.charge(&user, ip, 1).expect("within the address's budget");
        }
        assert!(busy.charge(&"one more", ip, 1).is_err(), "the address's budget is spent");
    }

    /// A key is refused after its budget and admitted again in the next window; keys are independent.
    #[test]
    fn rate_limiter_windows() {
        let limiter = RateLimiter::new(2, Duration::from_millis(200));
        assert!(limiter.hit("a").is_ok() && limiter.hit("a").is_ok());
        assert!(matches!(limiter.hit("a"), Err(Error::RateLimited { .. })));
        assert!(limiter.hit("b").is_ok());
        std::thread::sleep(Duration::from_millis(250));
        assert!(limiter.hit("a").is_ok());
    }
}
