//! The home feed's page on the embedded store: the posts of a set of
//! authors, newest first, read by walking the global time order or by
//! merging one scan per author, whichever reads less.

use std::ops::Bound;

use bson::oid::ObjectId;

use super::keys::{DESC_LEN, concat, desc_key, id_from_desc_tail};
use super::read::{Reader, Walk, prefix_bounds};
use super::schema::{POSTS_BY_AUTHOR, POSTS_BY_CREATED_AUTHOR};
use crate::domain::Page;
use crate::error::{Error, Result};
use crate::model::PostDoc;

/// Length of the author part of a `posts_by_author` key (an ObjectId).
const AUTHOR_LEN: usize = 12;

/// Keys the feed's walk of the global order may read per followed author
/// before it gives up for the per-author merge: a range seek costs about as
/// much as this many steps of a scan.
const WALK_KEYS_PER_AUTHOR: usize = 16;

/// The walk's smallest budget, for a reader who follows few authors.
const WALK_KEYS_MIN: usize = 64;

/// The next key of `scan` in walk order that `shown` accepts.
fn next_shown(
    scan: &mut redb::Range<'static, &'static [u8], ()>,
    backward: bool,
    shown: impl Fn(&[u8]) -> bool,
) -> Result<Option<Vec<u8>>> {
    loop {
        let entry = if backward { scan.next_back() } else { scan.next() };
        let Some(entry) = entry else { return Ok(None) };
        let (key, _) = entry?;
        if shown(key.value()) {
            return Ok(Some(key.value().to_vec()));
        }
    }
}

impl Reader<'_> {
    /// One newest-first page of the posts written by any of `authors`
    /// (sorted; the home feed), in one of two ways, whichever reads less:
    ///
    /// - **walk** the global time order (`posts_by_created_author`), keeping
    ///   the keys whose author is followed: cheap when the authors write a
    ///   good share of all posts (a page of 20 from authors who wrote a fifth
    ///   of them reads about 100 keys), and tried first within a budget of
    ///   [`WALK_KEYS_PER_AUTHOR`] keys per author;
    /// - else **merge** one range scan per author on the author index
    ///   (`feed_merge`), which costs one seek per author however rare their
    ///   posts are.
    ///
    /// Either way only the page's posts are decoded, and no post is read twice.
    pub(super) fn feed(&self, authors: &[ObjectId], page: &Page) -> Result<Vec<PostDoc>> {
        let mut sorted;
        let authors = if authors.is_sorted() {
            authors
        } else {
            sorted = authors.to_vec();
            sorted.sort_unstable();
            &sorted
        };
        let budget = authors.len().saturating_mul(WALK_KEYS_PER_AUTHOR).max(WALK_KEYS_MIN);
        let ids = match self.feed_walk(authors, page, budget)? {
            Some(ids) => ids,
            None => self.feed_merge(authors, page)?,
        };
        self.docs(&ids)
    }

    /// The feed page's ids from the global time order, or `None` if `budget`
    /// keys did not fill it (the authors write too small a share of posts).
    fn feed_walk(&self, authors: &[ObjectId], page: &Page, budget: usize) -> Result<Option<Vec<ObjectId>>> {
        let table = self.0.open_table(POSTS_BY_CREATED_AUTHOR)?;
        // Keys are `desc ++ author`: strictly after a cursor is past every
        // author suffix of its `desc`, strictly before it is below the bare `desc`.
        let lower = match page.after() {
            Some(c) => Bound::Excluded(concat(&desc_key(&c), &[u8::MAX; AUTHOR_LEN])),
            None => Bound::Unbounded,
        };
        let upper = match page.before() {
            Some(c) => Bound::Excluded(desc_key(&c).to_vec()),
            None => Bound::Unbounded,
        };
        if let (Bound::Excluded(lo), Bound::Excluded(hi)) = (&lower, &upper)
            && lo >= hi
        {
            return Ok(Some(Vec::new()));
        }
        let mut range = table.range::<&[u8]>((lower.as_ref().map(Vec::as_slice), upper.as_ref().map(Vec::as_slice)))?;
        let limit = page.fetch_limit();
        let mut ids = Vec::with_capacity(limit);
        for _ in 0..budget {
            let entry = if page.backward() { range.next_back() } else { range.next() };
            let Some(entry) = entry else { return Ok(Some(ids)) };
            let (key, _) = entry?;
            let key = key.value();
            let Some((desc, author)) = key.split_at_checked(DESC_LEN) else {
                return Err(Error::internal("a posts_by_created_author key is too short"));
            };
            let author = <[u8; AUTHOR_LEN]>::try_from(author)
                .map_err(|_| Error::internal("a posts_by_created_author key is too long"))?;
            if authors.binary_search(&ObjectId::from_bytes(author)).is_err() {
                continue;
            }
            let id = id_from_desc_tail(desc)?;
            if self.1.is_some_and(|sets| sets.hides_id(&id)) {
                continue;
            }
            ids.push(id);
            if ids.len() == limit {
                return Ok(Some(ids));
            }
        }
        Ok(None)
    }

    /// The feed page's ids by a k-way merge of one range scan per author on
    /// the author index. Each scan is opened at the page's cursor and read
    /// lazily, so the merge reads one key per author plus one per post it
    /// returns.
    fn feed_merge(&self, authors: &[ObjectId], page: &Page) -> Result<Vec<ObjectId>> {
        let table = self.0.open_table(POSTS_BY_AUTHOR)?;
        let after = page.after().map(|c| desc_key(&c));
        let before = page.before().map(|c| desc_key(&c));
        let walk = Walk {
            after: after.as_ref().map(|a| a.as_slice()),
            before: before.as_ref().map(|b| b.as_slice()),
            backward: page.backward(),
        };
        let shown = |key: &[u8]| match self.1 {
            None => true,
            Some(sets) => id_from_desc_tail(key).is_ok_and(|id| !sets.hides_id(&id)),
        };
        // Each author's next post, as its time-and-id tail, turned so that the
        // max-heap's top is the next post in walk order: the index's ascending
        // order is newest first, so going forward the tail is inverted.
        let turn = |key: &[u8]| -> Result<[u8; DESC_LEN]> {
            let mut tail: [u8; DESC_LEN] = key
                .get(AUTHOR_LEN..)
                .and_then(|t| t.try_into().ok())
                .ok_or_else(|| Error::internal("a posts_by_author key has the wrong length"))?;
            if !walk.backward {
                tail.iter_mut().for_each(|b| *b = !*b);
            }
            Ok(tail)
        };
        let mut scans = Vec::with_capacity(authors.len());
        let mut heads = std::collections::BinaryHeap::with_capacity(authors.len());
        for author in authors {
            let Some((lower, upper)) = prefix_bounds(&author.bytes(), walk) else { continue };
            let mut scan =
                table.range::<&[u8]>((lower.as_ref().map(Vec::as_slice), upper.as_ref().map(Vec::as_slice)))?;
            if let Some(key) = next_shown(&mut scan, walk.backward, shown)? {
                heads.push((turn(&key)?, scans.len()));
            }
            scans.push(scan);
        }
        let limit = page.fetch_limit();
        let mut ids = Vec::with_capacity(limit);
        while ids.len() < limit {
            let Some((mut tail, i)) = heads.pop() else { break };
            if !walk.backward {
                tail.iter_mut().for_each(|b| *b = !*b);
            }
            ids.push(id_from_desc_tail(&tail)?);
            if let Some(next) = next_shown(&mut scans[i], walk.backward, shown)? {
                heads.push((turn(&next)?, i));
            }
        }
        Ok(ids)
    }
}

#[cfg(test)]
mod tests {
    use bson::DateTime;

    use super::*;
    use crate::domain::{CursorKey, newest_first};
    use crate::model::Chronological;
    use crate::store::Store;
    use crate::store::embedded::EmbeddedStore;

    /// Forty authors with five posts each, some at the same millisecond.
    async fn store() -> (tempfile::TempDir, EmbeddedStore, Vec<ObjectId>, Vec<PostDoc>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let embedded = EmbeddedStore::open(dir.path()).expect("open");
        let authors: Vec<ObjectId> = (0..40).map(|_| ObjectId::new()).collect();
        let mut posts = Vec::new();
        for (i, author) in authors.iter().enumerate() {
            for j in 0..5 {
                let at = DateTime::from_millis(1_700_000_000_000 + ((i * 7 + j * 13) % 60) as i64);
                posts.push(PostDoc {
                    id: ObjectId::new(),
                    title: format!("{i}.{j}"),
                    body: String::new(),
                    author: *author,
                    liked_by: Vec::new(),
                    comment_count: 0,
                    created_at: at,
                    updated_at: at,
                    deleting: None,
                });
            }
        }
        let store = Store::from(embedded.clone());
        let all = posts.clone();
        store.run(Insert(all)).await.expect("insert");
        (dir, embedded, authors, posts)
    }

    struct Insert(Vec<PostDoc>);

    impl crate::store::Command for Insert {
        type Output = ();
        const NAME: &'static str = "testInsert";
        async fn apply<T: crate::store::Tx>(&self, tx: &mut T) -> Result<()> {
            for post in &self.0 {
                tx.insert(post).await?;
            }
            Ok(())
        }
    }

    /// What the page must hold: the authors' posts in listing order, cut by the page.
    fn naive(posts: &[PostDoc], authors: &[ObjectId], page: &Page) -> Vec<ObjectId> {
        let mut mine: Vec<&PostDoc> = posts.iter().filter(|p| authors.contains(&p.author)).collect();
        mine.sort_by(|a, b| newest_first(&a.cursor_key(), &b.cursor_key()));
        page.select(mine.into_iter(), |p| p.cursor_key()).into_iter().map(|p| p.id).collect()
    }

    /// The walk (with room to finish), the merge and a plain filter-and-sort
    /// agree on every page: forward and backward, from cursors, for readers
    /// following one, a few, most and all authors, with posts sharing a
    /// millisecond; and a walk without room gives up instead of guessing.
    #[tokio::test]
    async fn walk_merge_and_naive_agree() {
        let (_dir, embedded, authors, posts) = store().await;
        let mut ordered: Vec<CursorKey> = posts.iter().map(|p| p.cursor_key()).collect();
        ordered.sort_by(newest_first);
        let (early, late) = (ordered[30], ordered[150]);
        for k in [1, 3, 20, 40] {
            let mut followed: Vec<ObjectId> = authors.iter().copied().step_by(40 / k).take(k).collect();
            followed.sort_unstable();
            for page in [
                Page::newest(10),
                Page::newest(3).resume(early, 3),
                Page::newest(7).resume(late, 7),
                Page::parse(None, None, Some(4), None).expect("last"),
                Page::parse(None, None, Some(6), Some(&late.encode())).expect("before"),
                Page::parse(Some(100), Some(&early.encode()), None, Some(&late.encode())).expect("between"),
            ] {
                let want = naive(&posts, &followed, &page);
                let (walked, merged) = embedded
                    .read(|r| Ok((r.feed_walk(&followed, &page, usize::MAX)?, r.feed_merge(&followed, &page)?)))
                    .expect("read");
                assert_eq!(walked.as_ref(), Some(&want), "walk, {k} authors, {page:?}");
                assert_eq!(merged, want, "merge, {k} authors, {page:?}");
                let got: Vec<ObjectId> =
                    embedded.read(|r| r.feed(&followed, &page)).expect("feed").iter().map(|p| p.id).collect();
                assert_eq!(got, want, "feed, {k} authors, {page:?}");
            }
        }
        let one = [authors[0]];
        let starved = embedded.read(|r| r.feed_walk(&one, &Page::newest(10), 8)).expect("read");
        assert_eq!(starved, None, "eight keys cannot find one author's five posts among 200");
    }

    /// A store written before the time-and-author index gets it built at open,
    /// and the feed's walk finds every post through it.
    #[tokio::test]
    async fn the_index_is_built_for_an_older_store() {
        let (dir, embedded, authors, posts) = store().await;
        {
            let db = embedded.disk.db().expect("db");
            let wtx = db.begin_write().expect("write");
            wtx.delete_table(POSTS_BY_CREATED_AUTHOR).expect("drop the index");
            wtx.commit().expect("commit");
        }
        drop(embedded);
        let reopened = EmbeddedStore::open(dir.path()).expect("reopen");
        let page = Page::newest(100);
        let walked = reopened.read(|r| r.feed_walk(&authors, &page, usize::MAX)).expect("read");
        assert_eq!(walked, Some(naive(&posts, &authors, &page)));
        assert_eq!(naive(&posts, &authors, &page).len(), 101, "the page and one more");
    }
}
