//! Topping up a page that lost hidden documents, within a budget.
//!
//! Both backends pass over most hidden documents on their indexes already;
//! what they cannot name is read past here in growing steps, at most
//! [`REFILL_BUDGET`] documents a call. A page still short then ends where
//! reading stopped ([`Paged::cut`]), and says there is more.

use bson::oid::ObjectId;

use super::{Hideable, Sets};
use crate::domain::{CursorKey, Page};
use crate::error::Result;
use crate::model::{PostDoc, UserDoc, UserId};
use crate::store::{Backend, Listing, Pages, Store};

/// A page as [`Store`] lists it: the visible documents, and, when passing
/// over hidden ones took more than one request may spend
/// ([`REFILL_BUDGET`]), the position it stopped at. Such a page is short
/// but not the end: its connection says there is more, and its cursor on
/// that side is `cut`, so the next page goes on from there instead of
/// walking the same hidden documents again.
#[derive(Debug, Clone, PartialEq)]
pub struct Paged<D> {
    /// The visible documents, in walk order (up to the page size + 1).
    pub docs: Vec<D>,
    /// Where a refill stopped short, if it did.
    pub cut: Option<CursorKey>,
}

impl<D> Paged<D> {
    /// A page that was read to its end.
    pub fn whole(docs: Vec<D>) -> Self {
        Paged { docs, cut: None }
    }

    /// The same page with each document mapped.
    pub fn map<E>(self, f: impl FnMut(D) -> E) -> Paged<E> {
        Paged { docs: self.docs.into_iter().map(f).collect(), cut: self.cut }
    }
}

impl<D> Default for Paged<D> {
    fn default() -> Self {
        Paged::whole(Vec::new())
    }
}

impl Store {
    /// `got` (one page read with `page`) without hidden documents, refilled
    /// from beyond it when it lost some.
    pub(in crate::store) async fn one_page<L: Listing>(
        &self,
        listing: &L,
        sets: &Sets,
        page: &Page,
        got: Vec<L::Doc>,
    ) -> Result<Paged<L::Doc>> {
        let keys = [(ObjectId::from_bytes([0; 12]), *page)];
        Ok(self.refill(listing, sets, &keys, vec![got]).await?.pop().unwrap_or_default())
    }

    /// Leaves hidden documents out of `pages` (read with `keys`) and tops up
    /// every page that lost some by reading on past its last item, so a page
    /// is as full as it would be without them. Costs nothing with no job in
    /// progress. Otherwise both backends already pass over most hidden
    /// documents on the index; what is left is read in growing steps, at
    /// most [`REFILL_BUDGET`] documents a call, after which each page still
    /// short ends where its reading stopped ([`Paged::cut`]).
    pub(in crate::store) async fn refill<L: Listing>(
        &self,
        listing: &L,
        sets: &Sets,
        keys: &[(ObjectId, Page)],
        pages: Pages<L::Doc>,
    ) -> Result<Vec<Paged<L::Doc>>> {
        let mut out: Vec<Paged<L::Doc>> = Vec::with_capacity(keys.len());
        let mut pending: Vec<(usize, Page, CursorKey)> = Vec::new();
        let mut budget = REFILL_BUDGET;
        for (i, ((_, page), got)) in keys.iter().zip(pages).enumerate() {
            out.push(Paged::default());
            if let Some((next, last)) = thin::<L>(sets, &mut out[i].docs, page, page, got) {
                pending.push((i, next, last));
            }
        }
        while !pending.is_empty() {
            let asked_docs: usize = pending.iter().map(|(_, page, _)| page.fetch_limit()).sum();
            if asked_docs > budget {
                for (i, _, last) in pending {
                    out[i].cut = Some(last);
                }
                break;
            }
            budget -= asked_docs;
            let asked: Vec<(ObjectId, Page)> = pending.iter().map(|(i, page, _)| (keys[*i].0, *page)).collect();
            let got = listing.fetch(self, &asked).await?;
            let mut next_round = Vec::new();
            for ((i, asked, _), got) in pending.into_iter().zip(got) {
                if let Some((next, last)) = thin::<L>(sets, &mut out[i].docs, &keys[i].1, &asked, got) {
                    next_round.push((i, next, last));
                }
            }
            pending = next_round;
        }
        Ok(out)
    }
}

/// Most items one refill step reads past hidden documents.
const REFILL_STEP_MAX: usize = 1000;

/// Most documents one refill call reads past hidden ones, over
/// all its pages and steps: the pages of one batch of one request never
/// cost more than this, however many hidden documents lie in their way.
pub const REFILL_BUDGET: usize = 2000;

/// Adds the visible part of `got` (read with `asked`, part of `original`) to
/// `kept`; returns the next step's page, with the position read up to, if
/// `kept` is still short and the range goes on.
fn thin<L: Listing>(
    sets: &Sets,
    kept: &mut Vec<L::Doc>,
    original: &Page,
    asked: &Page,
    got: Vec<L::Doc>,
) -> Option<(Page, CursorKey)> {
    let want = original.size() + 1;
    let exhausted = got.len() <= asked.size();
    let last = got.last().map(L::key);
    kept.extend(got.into_iter().filter(|d| !d.hidden_by(sets)));
    if kept.len() >= want {
        kept.truncate(want);
        return None;
    }
    let step = (asked.size() * 2).clamp(16, REFILL_STEP_MAX);
    last.filter(|_| !exhausted).map(|last| (original.resume(last, step), last))
}

/// `Query.feed`: the posts by any of these authors.
pub(super) struct Feed<'a>(pub &'a [UserId]);

impl Listing for Feed<'_> {
    type Doc = PostDoc;

    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<PostDoc>> {
        let mut pages = Vec::with_capacity(keys.len());
        for (_, page) in keys {
            pages.push(on_backend!(store, b => b.feed_page(self.0, page).await)?);
        }
        Ok(pages)
    }
}

/// `Query.users`.
pub(super) struct RootUsers;
/// `Query.posts`.
pub(super) struct RootPosts;

impl Listing for RootUsers {
    type Doc = UserDoc;

    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<UserDoc>> {
        let mut pages = Vec::with_capacity(keys.len());
        for (_, page) in keys {
            pages.push(on_backend!(store, b => b.users_page(page).await)?);
        }
        Ok(pages)
    }
}

impl Listing for RootPosts {
    type Doc = PostDoc;

    async fn fetch(&self, store: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<PostDoc>> {
        let mut pages = Vec::with_capacity(keys.len());
        for (_, page) in keys {
            pages.push(on_backend!(store, b => b.posts_page(page).await)?);
        }
        Ok(pages)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use bson::DateTime;

    use super::*;
    use crate::model::Chronological;
    use crate::store::embedded;

    /// A listing over fixed posts, counting the documents it hands out.
    struct Fixed {
        posts: Vec<PostDoc>,
        read: AtomicUsize,
    }

    impl Listing for Fixed {
        type Doc = PostDoc;

        async fn fetch(&self, _: &Store, keys: &[(ObjectId, Page)]) -> Result<Pages<PostDoc>> {
            let pages: Pages<PostDoc> = keys
                .iter()
                .map(|(_, page)| page.select(self.posts.iter(), |p| p.cursor_key()).into_iter().cloned().collect())
                .collect();
            self.read.fetch_add(pages.iter().map(Vec::len).sum(), Ordering::Relaxed);
            Ok(pages)
        }
    }

    /// `hidden` posts (staged for deletion) newest, then `visible` older ones, newest first.
    fn listing(hidden: usize, visible: usize) -> Fixed {
        let n = hidden + visible;
        let posts = (0..n)
            .map(|i| PostDoc {
                id: crate::model::PostId::new(),
                title: format!("p{i}"),
                body: String::new(),
                author: UserId::new(),
                liked_by: Vec::new(),
                comment_count: 0,
                created_at: DateTime::from_millis((n - i) as i64),
                updated_at: DateTime::from_millis(0),
                deleting: (i < hidden).then(ObjectId::new),
            })
            .collect();
        Fixed { posts, read: AtomicUsize::new(0) }
    }

    /// Lists one page through `refill` the way `Store` does: the first read, then the refill.
    async fn list(store: &Store, fixed: &Fixed, page: Page) -> Paged<PostDoc> {
        let sets = Sets::default();
        let got = fixed.fetch(store, &[(ObjectId::from_bytes([0; 12]), page)]).await.expect("fetch");
        store.one_page(fixed, &sets, &page, got.into_iter().next().unwrap_or_default()).await.expect("refill")
    }

    fn store() -> (tempfile::TempDir, Store) {
        let dir = tempfile::tempdir().expect("temp dir");
        let store = Store::from(embedded::EmbeddedStore::open(dir.path()).expect("open"));
        (dir, store)
    }

    /// A few hidden documents are passed over in full: the page is whole, with no cut.
    #[tokio::test]
    async fn a_refill_within_budget_fills_the_page() {
        let (_dir, store) = store();
        let fixed = listing(300, 20);
        let got = list(&store, &fixed, Page::newest(10)).await;
        assert_eq!(got.cut, None);
        assert_eq!(got.docs.len(), 11, "the page and one more");
        assert!(got.docs.iter().all(|p| p.deleting.is_none()));
    }

    /// However many hidden documents lie ahead, one refill reads at most its
    /// budget, and the short page is cut where reading stopped; paging on from
    /// the cut makes progress and reaches the visible documents, each once.
    #[tokio::test]
    async fn a_refill_stops_at_its_budget_and_resumes_from_the_cut() {
        let (_dir, store) = store();
        let fixed = listing(20_000, 15);
        let mut page = Page::newest(10);
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            calls += 1;
            assert!(calls < 100, "paging from the cut makes progress");
            let before = fixed.read.load(Ordering::Relaxed);
            let got = list(&store, &fixed, page).await;
            let read = fixed.read.load(Ordering::Relaxed) - before;
            assert!(read <= page.fetch_limit() + REFILL_BUDGET, "one call read {read} documents");
            let shown: Vec<_> = got.docs.iter().take(page.size()).cloned().collect();
            assert!(shown.iter().all(|p| p.deleting.is_none()), "no hidden document is shown");
            seen.extend(shown.iter().map(|p| p.id));
            let next = match (got.cut, got.docs.len() > page.size()) {
                (Some(cut), _) => {
                    assert!(got.docs.len() <= page.size(), "a cut page is short");
                    cut
                }
                (None, true) => shown.last().expect("a full page").cursor_key(),
                (None, false) => break,
            };
            page = Page::newest(10).resume(next, 10);
        }
        assert!(calls > 2, "20,000 hidden documents took several cut pages ({calls} calls)");
        let visible: Vec<crate::model::PostId> =
            fixed.posts.iter().filter(|p| p.deleting.is_none()).map(|p| p.id).collect();
        assert_eq!(seen, visible, "every visible post once, in order");
    }
}
