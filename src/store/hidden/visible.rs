//! Reads that leave out what staged deletions hide: the one place every
//! read goes through, so no resolver can forget it.
//!
//! Each [`Store`] read calls its backend, then drops hidden documents and
//! scrubs hidden ids out of the survivors; a page that lost some is topped
//! up from beyond it (see `refill`).

use bson::oid::ObjectId;

use super::Sets;
use super::refill::{Feed, Paged, RootPosts, RootUsers};
use crate::domain::Page;
use crate::error::Result;
use crate::model::{CommentDoc, CommentId, PostDoc, PostId, UserDoc, UserId};
use crate::store::{Backend, Collection, CountOf, Relation, Store};

impl Store {
    /// See [`Backend::users_by_ids`]; staged deletions' users are left out.
    pub async fn users_by_ids(&self, ids: &[UserId]) -> Result<Vec<UserDoc>> {
        let mut users = on_backend!(self, b => b.users_by_ids(ids).await)?;
        match self.hidden_now() {
            Some(sets) => {
                users.retain(|u| !sets.hides_user(u));
                users.iter_mut().for_each(|u| sets.scrub_user(u));
            }
            None => users.retain(|u| u.deleting.is_none()),
        }
        Ok(users)
    }

    /// See [`Backend::posts_by_ids`]; staged deletions' posts are left out.
    pub async fn posts_by_ids(&self, ids: &[PostId]) -> Result<Vec<PostDoc>> {
        let mut posts = on_backend!(self, b => b.posts_by_ids(ids).await)?;
        match self.hidden_now() {
            Some(sets) => {
                posts.retain(|p| !sets.hides_post(p));
                self.scrub_posts(&sets, posts.iter_mut()).await?;
            }
            None => posts.retain(|p| p.deleting.is_none()),
        }
        Ok(posts)
    }

    /// See [`Backend::comments_by_ids`]; staged deletions' comments are left out.
    pub async fn comments_by_ids(&self, ids: &[CommentId]) -> Result<Vec<CommentDoc>> {
        let mut comments = on_backend!(self, b => b.comments_by_ids(ids).await)?;
        if let Some(sets) = self.hidden_now() {
            comments.retain(|c| !sets.hides_comment(c));
        }
        Ok(comments)
    }

    /// See [`Backend::user_by_email`]; a staged deletion's user is not found.
    pub async fn user_by_email(&self, email: &str) -> Result<Option<UserDoc>> {
        let user = on_backend!(self, b => b.user_by_email(email).await)?;
        Ok(match self.hidden_now() {
            Some(sets) => user.filter(|u| !sets.hides_user(u)).map(|mut u| {
                sets.scrub_user(&mut u);
                u
            }),
            None => user.filter(|u| u.deleting.is_none()),
        })
    }

    /// See [`Backend::users_page`]; pages skip staged deletions' users.
    pub async fn users_page(&self, page: &Page) -> Result<Paged<UserDoc>> {
        let got = on_backend!(self, b => b.users_page(page).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(Paged::whole(got)) };
        let mut users = self.one_page(&RootUsers, &sets, page, got).await?;
        users.docs.iter_mut().for_each(|u| sets.scrub_user(u));
        Ok(users)
    }

    /// See [`Backend::posts_page`]; pages skip staged deletions' posts.
    pub async fn posts_page(&self, page: &Page) -> Result<Paged<PostDoc>> {
        let got = on_backend!(self, b => b.posts_page(page).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(Paged::whole(got)) };
        let mut posts = self.one_page(&RootPosts, &sets, page, got).await?;
        self.scrub_posts(&sets, posts.docs.iter_mut()).await?;
        Ok(posts)
    }

    /// See [`Backend::feed_page`]; authors whose deletion is staged, and
    /// staged deletions' posts, are left out.
    pub async fn feed(&self, authors: &[UserId], page: &Page) -> Result<Paged<PostDoc>> {
        let Some(sets) = self.hidden_now() else {
            return Ok(Paged::whole(on_backend!(self, b => b.feed_page(authors, page).await)?));
        };
        let authors: Vec<UserId> = authors.iter().copied().filter(|a| !sets.hides_id(&a.oid())).collect();
        let got = on_backend!(self, b => b.feed_page(&authors, page).await)?;
        let mut posts = self.one_page(&Feed(&authors), &sets, page, got).await?;
        self.scrub_posts(&sets, posts.docs.iter_mut()).await?;
        Ok(posts)
    }

    /// One page per `(parent, page)` key of `of` (see [`Backend::posts_of`]
    /// and its siblings), with staged deletions' documents left out, the
    /// pages topped up past them, and hidden ids scrubbed from what remains.
    pub async fn pages_of<R: Relation>(&self, of: R, keys: &[(ObjectId, Page)]) -> Result<Vec<Paged<R::Doc>>> {
        let got = of.fetch(self, keys).await?;
        let Some(sets) = self.hidden_now() else { return Ok(got.into_iter().map(Paged::whole).collect()) };
        let mut pages = self.refill(&of, &sets, keys, got).await?;
        R::Doc::scrub(self, &sets, pages.iter_mut().flat_map(|p| p.docs.iter_mut()).collect()).await?;
        Ok(pages)
    }

    /// Leaves hidden users out of surviving posts' `likedBy`, and the hidden
    /// comments that still exist out of their `commentCount` (read in the
    /// view's snapshot, in one round trip, only for posts that have some).
    async fn scrub_posts<'a>(&self, sets: &Sets, posts: impl Iterator<Item = &'a mut PostDoc>) -> Result<()> {
        let mut posts: Vec<&mut PostDoc> = posts.collect();
        let mut candidates = Vec::new();
        for post in &mut posts {
            sets.scrub_post(post);
            candidates.extend_from_slice(sets.comments_on(&post.id));
        }
        if candidates.is_empty() {
            return Ok(());
        }
        let existing = on_backend!(self, b => b.comments_by_ids(&candidates).await)?;
        for post in posts {
            let hidden = existing.iter().filter(|c| c.post == post.id).count() as i64;
            post.comment_count = (post.comment_count - hidden).max(0);
        }
        Ok(())
    }

    /// See [`Backend::count_all`]; staged deletions' documents are not counted.
    ///
    /// While a job is in progress this reads which of its documents still
    /// exist, in the view's snapshot, so the count is exact at every step
    /// of the reaper.
    pub async fn count_all(&self, collection: Collection) -> Result<u64> {
        let raw = on_backend!(self, b => b.count_all(collection).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(raw) };
        let users = sets.users();
        let hidden = match collection {
            Collection::Users => on_backend!(self, b => b.users_by_ids(&users).await)?.len() as u64,
            Collection::Posts => {
                let by_hidden_authors: u64 = if users.is_empty() {
                    0
                } else {
                    on_backend!(self, b => b.count_of(CountOf::PostsByAuthor, &users).await)?.iter().sum()
                };
                let others = sets.posts_of_visible_authors();
                let others =
                    if others.is_empty() { 0 } else { on_backend!(self, b => b.posts_by_ids(&others).await)?.len() };
                by_hidden_authors + others as u64
            }
        };
        Ok(raw.saturating_sub(hidden))
    }

    /// See [`Backend::count_of`]; staged deletions' documents are not counted.
    pub async fn count_of(&self, of: CountOf, parents: &[UserId]) -> Result<Vec<u64>> {
        let mut counts = on_backend!(self, b => b.count_of(of, parents).await)?;
        let Some(sets) = self.hidden_now() else { return Ok(counts) };
        // The hidden documents by these authors that still exist (the reaper
        // may have taken some already), as their authors.
        let existing: Vec<UserId> = match of {
            CountOf::PostsByAuthor => {
                let candidates: Vec<PostId> = parents.iter().flat_map(|p| sets.posts_by(p).iter().copied()).collect();
                if candidates.is_empty() {
                    return Ok(counts);
                }
                on_backend!(self, b => b.posts_by_ids(&candidates).await)?.iter().map(|p| p.author).collect()
            }
            CountOf::CommentsByAuthor => {
                let candidates: Vec<CommentId> =
                    parents.iter().flat_map(|p| sets.comments_by(p).iter().copied()).collect();
                if candidates.is_empty() {
                    return Ok(counts);
                }
                on_backend!(self, b => b.comments_by_ids(&candidates).await)?.iter().map(|c| c.author).collect()
            }
        };
        for (parent, count) in parents.iter().zip(counts.iter_mut()) {
            let gone = existing.iter().filter(|a| *a == parent).count() as u64;
            *count = count.saturating_sub(gone);
        }
        Ok(counts)
    }
}

/// What reads scrub out of a surviving document while a staged deletion is
/// in progress: the hidden ids it still refers to (and, for a post, the
/// hidden comments its `commentCount` still counts).
pub trait Scrub: Sized + Send {
    /// Scrubs `docs`, read through `store` while `sets` hide what they name.
    fn scrub(store: &Store, sets: &Sets, docs: Vec<&mut Self>) -> impl Future<Output = Result<()>> + Send;
}

impl Scrub for PostDoc {
    async fn scrub(store: &Store, sets: &Sets, docs: Vec<&mut Self>) -> Result<()> {
        store.scrub_posts(sets, docs.into_iter()).await
    }
}

impl Scrub for UserDoc {
    async fn scrub(_: &Store, sets: &Sets, docs: Vec<&mut Self>) -> Result<()> {
        docs.into_iter().for_each(|u| sets.scrub_user(u));
        Ok(())
    }
}

impl Scrub for CommentDoc {
    /// A comment refers to its post and author only, and is hidden whole when either is.
    async fn scrub(_: &Store, _: &Sets, _: Vec<&mut Self>) -> Result<()> {
        Ok(())
    }
}
