//! The home feed's page on the embedded store: the posts of a set of
//! authors, newest first, read by walking the global time order or by
//! merging one cursor per author, whichever reads less.

use std::ops::Bound;

use bson::oid::ObjectId;
use redb::ReadableTable;

use super::keys::{DESC_LEN, concat, desc_key, id_from_desc_tail};
use super::read::Reader;
use super::schema::{POSTS_BY_AUTHOR, POSTS_BY_CREATED_AUTHOR};
use crate::domain::Page;
use crate::error::{Error, Result};
use crate::model::{Id, PostDoc, UserId};
use crate::store::hidden::Sets;

/// Length of the author part of a `posts_by_author` key (an ObjectId).
const AUTHOR_LEN: usize = 12;

/// Keys the feed's walk of the global order may read per followed author
/// before it gives up for the per-author merge: measured on the feed bench, a
/// range seek (one B-tree descent) costs about as much as six steps of a scan,
/// so a walk that fails costs at most about what the merge does.
const WALK_KEYS_PER_AUTHOR: usize = 6;

/// The walk's smallest budget, for a reader who follows few authors.
const WALK_KEYS_MIN: usize = 64;

/// Whether a walk that has read `read` keys and kept `kept` of them is
/// projected to need more than `budget` keys to keep `limit`, assuming the
/// share kept so far holds (and at least one kept, so a walk is never judged
/// on nothing). Checked every [`WALK_KEYS_MIN`] keys, so a reader whose
/// authors wrote none of the newest posts gives up after about
/// `budget / limit` keys instead of the whole budget.
fn walk_hopeless(read: usize, kept: usize, limit: usize, budget: usize) -> bool {
    if read == 0 || !read.is_multiple_of(WALK_KEYS_MIN) {
        return false;
    }
    let still = limit.saturating_sub(kept);
    read.saturating_add(read.saturating_mul(still) / kept.max(1)) > budget
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
    pub(super) fn feed(&self, authors: &[UserId], page: &Page) -> Result<Vec<PostDoc>> {
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
    fn feed_walk(&self, authors: &[UserId], page: &Page, budget: usize) -> Result<Option<Vec<ObjectId>>> {
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
        for read in 0..budget {
            if walk_hopeless(read, ids.len(), limit, budget) {
                return Ok(None);
            }
            let entry = if page.backward() { range.next_back() } else { range.next() };
            let Some(entry) = entry else { return Ok(Some(ids)) };
            let (key, _) = entry?;
            let key = key.value();
            let Some((desc, author)) = key.split_at_checked(DESC_LEN) else {
                return Err(Error::internal("a posts_by_created_author key is too short"));
            };
            let author = <[u8; AUTHOR_LEN]>::try_from(author)
                .map_err(|_| Error::internal("a posts_by_created_author key is too long"))?;
            if authors.binary_search(&Id::from_oid(ObjectId::from_bytes(author))).is_err() {
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

    /// The feed page's ids by a k-way merge of one cursor per author on the
    /// author index. Each cursor is placed at the page's cursor in its author's
    /// range (one seek) and read lazily, so the merge reads one key per author
    /// plus one per post it returns. Cursors, not ranges: a cursor is one
    /// B-tree path with no bounds of its own, so placing a thousand of them
    /// allocates nothing on our side; the author prefix and the page's far
    /// bound are checked here on each key.
    fn feed_merge(&self, authors: &[UserId], page: &Page) -> Result<Vec<ObjectId>> {
        let table = self.0.open_table(POSTS_BY_AUTHOR)?;
        let scan = AuthorScan {
            after: page.after().map(|c| desc_key(&c)),
            before: page.before().map(|c| desc_key(&c)),
            backward: page.backward(),
            hidden: self.1,
        };
        // Each author's next post, as its time-and-id tail, turned so that the
        // max-heap's top is the next post in walk order: the index's ascending
        // order is newest first, so going forward the tail is inverted.
        let turn = |mut tail: [u8; DESC_LEN]| {
            if !scan.backward {
                tail.iter_mut().for_each(|b| *b = !*b);
            }
            tail
        };
        let mut cursors = Vec::with_capacity(authors.len());
        let mut heads = std::collections::BinaryHeap::with_capacity(authors.len());
        for author in authors {
            let author = author.bytes();
            let mut cursor = scan.place(&table, &author)?;
            if let Some(tail) = scan.next(&mut cursor, &author)? {
                heads.push((turn(tail), cursors.len()));
            }
            cursors.push((cursor, author));
        }
        let limit = page.fetch_limit();
        let mut ids = Vec::with_capacity(limit);
        while ids.len() < limit {
            let Some((turned, i)) = heads.pop() else { break };
            ids.push(id_from_desc_tail(&turn(turned))?);
            let (cursor, author) = &mut cursors[i];
            if let Some(tail) = scan.next(cursor, author)? {
                heads.push((turn(tail), i));
            }
        }
        Ok(ids)
    }
}

/// One author's scan of `posts_by_author` (`author ++ desc`) within a page.
#[derive(Clone, Copy)]
struct AuthorScan<'a> {
    after: Option<[u8; DESC_LEN]>,
    before: Option<[u8; DESC_LEN]>,
    backward: bool,
    hidden: Option<&'a Sets>,
}

type AuthorCursor<'t> = redb::Cursor<'t, &'static [u8], ()>;

impl AuthorScan<'_> {
    /// A cursor at the page's start in `author`'s range: going forward (newest
    /// first), just past `after`; going backward, just before `before`.
    fn place<'t>(
        &self,
        table: &'t redb::ReadOnlyTable<&'static [u8], ()>,
        author: &[u8; AUTHOR_LEN],
    ) -> Result<AuthorCursor<'t>> {
        let mut key = [0u8; AUTHOR_LEN + DESC_LEN];
        key[..AUTHOR_LEN].copy_from_slice(author);
        Ok(if self.backward {
            // Without `before`, the all-ones tail sorts after every post of the author.
            key[AUTHOR_LEN..].copy_from_slice(self.before.as_ref().unwrap_or(&[u8::MAX; DESC_LEN]));
            let bound = if self.before.is_some() { Bound::Excluded(&key[..]) } else { Bound::Included(&key[..]) };
            table.upper_bound(bound)?
        } else {
            match &self.after {
                Some(after) => {
                    key[AUTHOR_LEN..].copy_from_slice(after);
                    table.lower_bound(Bound::Excluded(&key[..]))?
                }
                None => table.lower_bound(Bound::Included(&key[..AUTHOR_LEN]))?,
            }
        })
    }

    /// The author's next shown post in walk order, as its `desc` tail, or
    /// `None` past the author's range or the page's far bound.
    fn next(&self, cursor: &mut AuthorCursor<'_>, author: &[u8; AUTHOR_LEN]) -> Result<Option<[u8; DESC_LEN]>> {
        loop {
            let entry = if self.backward { cursor.prev()? } else { cursor.next()? };
            let Some((key, _)) = entry else { return Ok(None) };
            let key = key.value();
            let (Some(prefix), Some(tail)) = (key.get(..AUTHOR_LEN), key.get(AUTHOR_LEN..)) else {
                return Err(Error::internal("a posts_by_author key is too short"));
            };
            if prefix != author {
                return Ok(None);
            }
            let tail: [u8; DESC_LEN] =
                tail.try_into().map_err(|_| Error::internal("a posts_by_author key has the wrong length"))?;
            let past = if self.backward {
                self.after.is_some_and(|after| tail <= after)
            } else {
                self.before.is_some_and(|before| tail >= before)
            };
            if past {
                return Ok(None);
            }
            if self.hidden.is_some_and(|sets| id_from_desc_tail(&tail).is_ok_and(|id| sets.hides_id(&id))) {
                continue;
            }
            return Ok(Some(tail));
        }
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
    async fn store() -> (tempfile::TempDir, EmbeddedStore, Vec<UserId>, Vec<PostDoc>) {
        let dir = tempfile::tempdir().expect("temp dir");
        let embedded = EmbeddedStore::open(dir.path()).expect("open");
        let authors: Vec<UserId> = (0..40).map(|_| UserId::new()).collect();
        let mut posts = Vec::new();
        for (i, author) in authors.iter().enumerate() {
            for j in 0..5 {
                let at = DateTime::from_millis(1_700_000_000_000 + ((i * 7 + j * 13) % 60) as i64);
                posts.push(PostDoc {
                    id: crate::model::PostId::new(),
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
    fn naive(posts: &[PostDoc], authors: &[UserId], page: &Page) -> Vec<ObjectId> {
        let mut mine: Vec<&PostDoc> = posts.iter().filter(|p| authors.contains(&p.author)).collect();
        mine.sort_by(|a, b| newest_first(&a.cursor_key(), &b.cursor_key()));
        page.select(mine.into_iter(), |p| p.cursor_key()).into_iter().map(|p| p.id.oid()).collect()
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
            let mut followed: Vec<UserId> = authors.iter().copied().step_by(40 / k).take(k).collect();
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
                    embedded.read(|r| r.feed(&followed, &page)).expect("feed").iter().map(|p| p.id.oid()).collect();
                assert_eq!(got, want, "feed, {k} authors, {page:?}");
            }
        }
        let one = [authors[0]];
        let starved = embedded.read(|r| r.feed_walk(&one, &Page::newest(10), 8)).expect("read");
        assert_eq!(starved, None, "eight keys cannot find one author's five posts among 200");
    }

    /// The walk gives up early only when the share it has kept so far
    /// projects past its budget, and judges only every 64 keys.
    #[test]
    fn a_walk_gives_up_when_its_share_cannot_fill_the_page() {
        assert!(!walk_hopeless(0, 0, 21, 6_000), "nothing read, nothing to judge");
        assert!(!walk_hopeless(32, 0, 21, 6_000), "too early to judge");
        assert!(!walk_hopeless(256, 0, 21, 6_000), "256 + 256 x 21 fits 6,000");
        assert!(walk_hopeless(320, 0, 21, 6_000), "none kept in 320 keys projects 7,040");
        assert!(!walk_hopeless(321, 0, 21, 6_000), "judged only every 64 keys");
        assert!(!walk_hopeless(512, 10, 21, 6_000), "ten kept in 512 projects about 1,075");
        assert!(!walk_hopeless(1 << 20, 0, 21, usize::MAX), "an unbounded walk never gives up");
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
