//! Trusted documents: the operations a team's own clients ship, loaded from
//! a manifest (`--trusted-documents`), and optionally the only ones served
//! (`--require-trusted-documents`).
//!
//! Each entry is parsed and put through the same checks as a request's
//! document ([`crate::http::steps::parse`]) once, at load; a bad entry fails
//! the load and names the entry. At request time a trusted document costs a
//! hash-map look-up: no parse, no size check.
//!
//! The file is watched (its length and modification time, every second). A
//! changed manifest that loads replaces the old one whole; one that does not
//! is logged and the old one stays, so a bad deploy of the manifest cannot
//! lock every client out.

pub mod manifest;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock, Weak};
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use async_graphql::parser::types::ExecutableDocument;

use super::persisted::{self, Hash};
use super::steps::parse;
use crate::limits::introspection::Shape;
use crate::settings::GraphqlSettings;

/// A document from the manifest, parsed and checked.
pub struct TrustedDocument {
    /// Its text.
    pub text: String,
    /// The SHA-256 of its text.
    pub hash: Hash,
    /// The parsed document.
    pub doc: ExecutableDocument,
}

/// One loaded manifest: its documents by the manifest's ids and by hash.
#[derive(Default)]
struct Loaded {
    by_id: HashMap<String, Arc<TrustedDocument>>,
    by_hash: HashMap<Hash, Arc<TrustedDocument>>,
}

/// The manifest in force, reloaded when its file changes.
pub struct TrustedDocuments {
    path: PathBuf,
    loaded: RwLock<Arc<Loaded>>,
    /// The file's (length, modification time) when it was last read.
    seen: RwLock<Option<(u64, SystemTime)>>,
    graphql: GraphqlSettings,
    shape: Arc<Shape>,
}

/// How often the manifest file is checked for changes.
pub const WATCH_INTERVAL: Duration = Duration::from_secs(1);

impl TrustedDocuments {
    /// Loads the manifest at `path`, checking every entry under `graphql`'s bounds.
    pub fn load(path: &Path, graphql: &GraphqlSettings, shape: Arc<Shape>) -> anyhow::Result<TrustedDocuments> {
        let docs = TrustedDocuments {
            path: path.to_owned(),
            loaded: RwLock::new(Arc::default()),
            seen: RwLock::new(None),
            graphql: graphql.clone(),
            shape,
        };
        let count = docs.reload()?;
        tracing::info!(path = %path.display(), documents = count, "loaded the trusted documents");
        Ok(docs)
    }

    /// Reads and checks the file, and puts it in force; the number of documents.
    fn reload(&self) -> anyhow::Result<usize> {
        let stamp = stamp(&self.path);
        let text = std::fs::read_to_string(&self.path)
            .with_context(|| format!("reading the trusted documents in {}", self.path.display()))?;
        let entries = manifest::parse(&text).map_err(|why| anyhow::anyhow!("{}: {why}", self.path.display()))?;
        let mut loaded = Loaded::default();
        for entry in entries {
            let parsed = match parse::parse(&entry.body, &self.graphql, &self.shape) {
                Ok(Some(parsed)) => parsed,
                Ok(None) => anyhow::bail!("{}: entry {:?} does not parse", self.path.display(), entry.id),
                Err(refusal) => {
                    anyhow::bail!("{}: entry {:?} is refused: {}", self.path.display(), entry.id, refusal.message)
                }
            };
            let hash = persisted::sha256(&entry.body);
            let doc = Arc::new(TrustedDocument { text: entry.body, hash, doc: parsed.doc });
            loaded.by_hash.insert(hash, Arc::clone(&doc));
            loaded.by_id.insert(entry.id, doc);
        }
        let count = loaded.by_hash.len();
        if let Ok(mut current) = self.loaded.write() {
            *current = Arc::new(loaded);
        }
        if let Ok(mut seen) = self.seen.write() {
            *seen = stamp;
        }
        Ok(count)
    }

    /// Reloads the file if its length or modification time changed.
    fn reload_if_changed(&self) {
        let now = stamp(&self.path);
        if self.seen.read().is_ok_and(|seen| *seen == now) {
            return;
        }
        match self.reload() {
            Ok(count) => {
                tracing::info!(path = %self.path.display(), documents = count, "reloaded the trusted documents")
            }
            Err(err) => {
                tracing::error!(error = %format!("{err:#}"), "the changed trusted documents do not load; keeping the previous ones");
                // Do not retry the same bad file every second; a further change is read.
                if let Ok(mut seen) = self.seen.write() {
                    *seen = now;
                }
            }
        }
    }

    /// Checks the file every [`WATCH_INTERVAL`] until `docs` is dropped.
    pub fn watch(docs: &Arc<TrustedDocuments>) {
        let weak: Weak<TrustedDocuments> = Arc::downgrade(docs);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(WATCH_INTERVAL).await;
                let Some(docs) = weak.upgrade() else { return };
                // Reading and parsing a manifest is blocking work: off the runtime's threads.
                let _ = tokio::task::spawn_blocking(move || docs.reload_if_changed()).await;
            }
        });
    }

    /// The document a request names by id: `sha256:<hex>` (or a bare
    /// 64-digit hex) by its text's hash, anything else as the manifest spells it.
    pub fn by_id(&self, id: &str) -> Option<Arc<TrustedDocument>> {
        let loaded = self.loaded.read().ok()?;
        let hex = id.strip_prefix("sha256:").unwrap_or(id);
        if let Some(hash) = persisted::parse_hex_hash(hex)
            && let Some(doc) = loaded.by_hash.get(&hash)
        {
            return Some(Arc::clone(doc));
        }
        loaded.by_id.get(id).cloned()
    }

    /// The document whose text hashes to `hash`.
    pub fn by_hash(&self, hash: &Hash) -> Option<Arc<TrustedDocument>> {
        self.loaded.read().ok()?.by_hash.get(hash).cloned()
    }
}

fn stamp(path: &Path) -> Option<(u64, SystemTime)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.len(), meta.modified().ok()?))
}
