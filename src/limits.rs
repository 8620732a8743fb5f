//! Guards for a public endpoint that async-graphql and tower do not provide:
//! the selected-field cap (aliases and fragment uses counted) and the
//! in-memory rate limiter behind the log-in limits. Their settings live in
//! [`crate::settings`].

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::extensions::{Extension, ExtensionContext, ExtensionFactory, NextParseQuery};
use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};
use async_graphql::{ServerError, ServerResult, Variables};

use crate::error::{Error, Result};

/// Counts selected fields, expanding fragment spreads (each fragment is
/// counted once per use), and stops early once `cap` is passed.
fn count_fields(doc: &ExecutableDocument, cap: usize) -> usize {
    fn walk(doc: &ExecutableDocument, set: &SelectionSet, depth: usize, cap: usize, total: &mut usize) {
        // Fragment cycles are rejected by validation later; the depth guard keeps this walk finite.
        if depth > 64 || *total > cap {
            return;
        }
        for item in &set.items {
            if *total > cap {
                return;
            }
            match &item.node {
                Selection::Field(field) => {
                    *total += 1;
                    walk(doc, &field.node.selection_set.node, depth + 1, cap, total);
                }
                Selection::InlineFragment(fragment) => {
                    walk(doc, &fragment.node.selection_set.node, depth + 1, cap, total);
                }
                Selection::FragmentSpread(spread) => {
                    if let Some(fragment) = doc.fragments.get(&spread.node.fragment_name.node) {
                        walk(doc, &fragment.node.selection_set.node, depth + 1, cap, total);
                    }
                }
            }
        }
    }
    let mut total = 0;
    for (_, operation) in doc.operations.iter() {
        walk(doc, &operation.node.selection_set.node, 0, cap, &mut total);
    }
    total
}

/// An async-graphql extension refusing queries that select too many fields
/// (alias floods, fragment fan-out) before they are validated or executed.
pub struct FieldLimit(pub usize);

impl ExtensionFactory for FieldLimit {
    fn create(&self) -> Arc<dyn Extension> {
        Arc::new(FieldLimitExtension(self.0))
    }
}

struct FieldLimitExtension(usize);

#[async_trait::async_trait]
impl Extension for FieldLimitExtension {
    async fn parse_query(
        &self,
        ctx: &ExtensionContext<'_>,
        query: &str,
        variables: &Variables,
        next: NextParseQuery<'_>,
    ) -> ServerResult<ExecutableDocument> {
        let doc = next.run(ctx, query, variables).await?;
        if count_fields(&doc, self.0) > self.0 {
            return Err(ServerError::new(format!("the query selects more than {} fields", self.0), None));
        }
        Ok(doc)
    }
}

/// A fixed-window counter per key (an email, an IP), in memory.
///
/// One window per key per minute keeps the state small and the answer
/// cheap; stale windows are swept whenever the table grows large.
#[derive(Debug)]
pub struct RateLimiter {
    per_window: u32,
    window: Duration,
    hits: Mutex<HashMap<String, (Instant, u32)>>,
}

impl RateLimiter {
    /// A limiter allowing `per_window` hits per key every `window`.
    pub fn new(per_window: u32, window: Duration) -> Self {
        RateLimiter { per_window, window, hits: Mutex::new(HashMap::new()) }
    }

    /// Records a hit for `key`; refuses it with `RATE_LIMITED` when the key is over its budget.
    pub fn hit(&self, key: &str) -> Result<()> {
        let now = Instant::now();
        let mut hits = self.hits.lock().map_err(|_| Error::internal("rate limiter lock poisoned"))?;
        if hits.len() > 100_000 {
            let window = self.window;
            hits.retain(|_, (start, _)| now.duration_since(*start) < window);
        }
        let entry = hits.entry(key.to_owned()).or_insert((now, 0));
        if now.duration_since(entry.0) >= self.window {
            *entry = (now, 0);
        }
        if entry.1 >= self.per_window {
            let retry_after = self.window.saturating_sub(now.duration_since(entry.0));
            return Err(Error::RateLimited { retry_after_secs: retry_after.as_secs().max(1) });
        }
        entry.1 += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    /// Fields are counted through aliases and every use of a fragment.
    #[test]
    fn counts_aliases_and_fragment_uses() {
        let q = "query { a: viewer { id } b: viewer { ...F } c: viewer { ...F } } fragment F on User { id name }";
        let doc = async_graphql::parser::parse_query(q).expect("parses");
        assert_eq!(count_fields(&doc, 1000), 3 + 1 + 2 + 2);
    }
}
