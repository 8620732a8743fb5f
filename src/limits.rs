//! Guards for a public endpoint that async-graphql and tower do not provide:
//! the query-size check (aliases, fragment uses and spreads counted, in
//! linear time) and the in-memory rate limiter behind the log-in limits.
//! Their settings live in [`crate::settings`].

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use async_graphql::parser::types::{ExecutableDocument, Selection, SelectionSet};

use crate::error::{Error, Result};

/// Why a document was refused before validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum QuerySizeError {
    /// The document selects more than the cap, counting every alias, fragment use and spread.
    TooLarge {
        /// The cap that was exceeded.
        cap: usize,
    },
    /// A fragment spreads itself, directly or through others.
    FragmentCycle(String),
}

impl std::fmt::Display for QuerySizeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            QuerySizeError::TooLarge { cap } => write!(f, "the query selects more than {cap} fields"),
            QuerySizeError::FragmentCycle(name) => write!(f, "fragment {name} spreads itself"),
        }
    }
}

/// The size of `doc` as it would execute: every field, inline fragment and
/// fragment spread counts as one node, and a spread also costs the whole
/// fragment it expands to. Refused above `cap`.
///
/// Each fragment's cost is computed once (bottom up, memoised, with
/// saturating arithmetic), so the check is linear in the document's length
/// even when fragments spread each other exponentially, which is what lets
/// it run before anything that expands spreads (async-graphql's recursion
/// check, its depth and complexity rules).
pub fn check_query_size(doc: &ExecutableDocument, cap: usize) -> Result<usize, QuerySizeError> {
    #[derive(Clone, Copy)]
    enum Memo {
        Visiting,
        Done(usize),
    }
    struct Walk<'a> {
        doc: &'a ExecutableDocument,
        memo: HashMap<&'a str, Memo>,
    }
    impl<'a> Walk<'a> {
        fn set(&mut self, set: &'a SelectionSet) -> Result<usize, QuerySizeError> {
            let mut total = 0usize;
            for item in &set.items {
                let inner = match &item.node {
                    Selection::Field(field) => self.set(&field.node.selection_set.node)?,
                    Selection::InlineFragment(fragment) => self.set(&fragment.node.selection_set.node)?,
                    Selection::FragmentSpread(spread) => self.fragment(spread.node.fragment_name.node.as_str())?,
                };
                total = total.saturating_add(1).saturating_add(inner);
            }
            Ok(total)
        }
        fn fragment(&mut self, name: &'a str) -> Result<usize, QuerySizeError> {
            match self.memo.get(name) {
                Some(Memo::Done(cost)) => return Ok(*cost),
                Some(Memo::Visiting) => return Err(QuerySizeError::FragmentCycle(name.to_owned())),
                None => {}
            }
            // An unknown fragment costs nothing here; validation reports it.
            let Some((key, fragment)) = self.doc.fragments.get_key_value(name) else {
                return Ok(0);
            };
            self.memo.insert(key.as_str(), Memo::Visiting);
            let cost = self.set(&fragment.node.selection_set.node)?;
            self.memo.insert(key.as_str(), Memo::Done(cost));
            Ok(cost)
        }
    }
    let mut walk = Walk { doc, memo: HashMap::new() };
    let mut total = 0usize;
    for (_, operation) in doc.operations.iter() {
        total = total.saturating_add(walk.set(&operation.node.selection_set.node)?);
    }
    if total > cap {
        return Err(QuerySizeError::TooLarge { cap });
    }
    Ok(total)
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

    /// Nodes are counted through aliases and every use of a fragment; a spread is a node too.
    #[test]
    fn counts_aliases_and_fragment_uses() {
        let q = "query { a: viewer { id } b: viewer { ...F } c: viewer { ...F } } fragment F on User { id name }";
        let doc = async_graphql::parser::parse_query(q).expect("parses");
        // 3 viewers + 1 id + 2 spreads + 2 × (id name).
        assert_eq!(check_query_size(&doc, 1000), Ok(3 + 1 + 2 + 2 * 2));
        assert_eq!(check_query_size(&doc, 9), Err(QuerySizeError::TooLarge { cap: 9 }));
    }

    /// Fragments that spread the next one twice, 64 levels deep, are measured
    /// without expanding them (2^64 nodes) and refused.
    #[test]
    fn exponential_fragments_are_measured_in_linear_time() {
        let doc = async_graphql::parser::parse_query(fan_out(64)).expect("parses");
        let started = Instant::now();
        assert_eq!(check_query_size(&doc, 1000), Err(QuerySizeError::TooLarge { cap: 1000 }));
        assert!(started.elapsed() < Duration::from_millis(50), "{:?}", started.elapsed());
    }

    /// A fragment cycle is refused, not followed forever.
    #[test]
    fn fragment_cycles_are_refused() {
        let doc = async_graphql::parser::parse_query("{ ...A } fragment A on Query { ...B } fragment B on Query { ...A }")
            .expect("parses");
        assert!(matches!(check_query_size(&doc, 1000), Err(QuerySizeError::FragmentCycle(_))));
    }

    /// `query{...F0} fragment F0 on Query{...F1 ...F1} ... fragment Fk on Query{...Missing}`.
    fn fan_out(levels: usize) -> String {
        let mut q = String::from("query { ...F0 }");
        for i in 0..levels {
            q.push_str(&format!(" fragment F{i} on Query {{ ...F{n} ...F{n} }}", n = i + 1));
        }
        q.push_str(&format!(" fragment F{levels} on Query {{ ...Missing }}"));
        q
    }
}
