//! `blogql check --repair`: fixing what older code left behind.
//!
//! The database may be shared with code that does not keep blogql's
//! invariants (a Mongoose app whose hooks did not fire), so orphans and
//! dangling ids can exist that no blogql command created. [`plan`] reads a
//! [`Snapshot`] and lists one [`Fix`] per document to change; [`apply`] runs
//! them as [`Repair`] commands of at most a budget of documents each.
//!
//! A fix names a document, not the value to write: each one re-derives the
//! correct state inside its own transaction (a post is deleted only if its
//! author is still missing there, `commentCount` is recounted there, ...), so
//! applying is idempotent and stays correct while the API keeps serving.

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::fmt;

use crate::cmd::Command;
use crate::error::{Error, Result};
use crate::model::{CommentId, Id, PostId, UserId};
use crate::store::{IdsOf, Snapshot, Store, Tx};

/// One document to change, and why.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Fix {
    /// A comment whose post or author is missing (or is an orphan post being deleted): delete it.
    DeleteComment {
        /// The comment.
        id: CommentId,
        /// What is missing.
        why: String,
    },
    /// A post whose author is missing: delete it (its comments are fixed first).
    DeletePost {
        /// The post.
        id: PostId,
        /// The missing author.
        author: UserId,
    },
    /// A post whose `likedBy` names missing or repeated users, or whose `commentCount` is wrong.
    CleanPost {
        /// The post.
        id: PostId,
        /// What is wrong, for the report.
        why: String,
    },
    /// A user whose `posts`, `followers` or `following` is wrong.
    CleanUser {
        /// The user.
        id: UserId,
        /// What is wrong, for the report.
        why: String,
    },
}

impl fmt::Display for Fix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Fix::DeleteComment { id, why } => write!(f, "delete comment {id}: {why}"),
            Fix::DeletePost { id, author } => write!(f, "delete post {id}: its author {author} is missing"),
            Fix::CleanPost { id, why } => write!(f, "rewrite post {id}: {why}"),
            Fix::CleanUser { id, why } => write!(f, "rewrite user {id}: {why}"),
        }
    }
}

/// Every fix `snap` needs, comments first, then posts, then the documents that point at them.
///
/// Only what readers see is repaired: documents under a staged deletion are
/// the reaper's (see [`crate::check::visible`]).
pub fn plan(snap: &Snapshot) -> Vec<Fix> {
    let visible = crate::check::visible(snap);
    let snap = &visible;
    let users: BTreeMap<UserId, _> = snap.users.iter().map(|u| (u.id, u)).collect();
    let orphan_posts: BTreeMap<PostId, UserId> =
        snap.posts.iter().filter(|p| !users.contains_key(&p.author)).map(|p| (p.id, p.author)).collect();
    let live_posts: BTreeSet<PostId> =
        snap.posts.iter().map(|p| p.id).filter(|id| !orphan_posts.contains_key(id)).collect();

    let mut fixes = Vec::new();
    let mut counts: BTreeMap<PostId, i64> = BTreeMap::new();
    for c in &snap.comments {
        let why = if !live_posts.contains(&c.post) {
            Some(if orphan_posts.contains_key(&c.post) {
                format!("its post {} is an orphan", c.post)
            } else {
                format!("its post {} is missing", c.post)
            })
        } else if !users.contains_key(&c.author) {
            Some(format!("its author {} is missing", c.author))
        } else {
            None
        };
        match why {
            Some(why) => fixes.push(Fix::DeleteComment { id: c.id, why }),
            None => *counts.entry(c.post).or_default() += 1,
        }
    }
    fixes.extend(orphan_posts.iter().map(|(id, author)| Fix::DeletePost { id: *id, author: *author }));

    let mut authored: BTreeMap<UserId, BTreeSet<PostId>> = BTreeMap::new();
    for p in snap.posts.iter().filter(|p| live_posts.contains(&p.id)) {
        authored.entry(p.author).or_default().insert(p.id);
        let mut problems = Vec::new();
        let mut seen = HashSet::new();
        let dangling = p.liked_by.iter().filter(|u| !users.contains_key(u)).count();
        let repeated = p.liked_by.iter().filter(|u| !seen.insert(**u)).count();
        if dangling > 0 {
            problems.push(format!("{dangling} missing user(s) in likedBy"));
        }
        if repeated > 0 {
            problems.push(format!("{repeated} repeated user(s) in likedBy"));
        }
        let actual = counts.get(&p.id).copied().unwrap_or(0);
        if p.comment_count != actual {
            problems.push(format!("commentCount {} should be {actual}", p.comment_count));
        }
        if !problems.is_empty() {
            fixes.push(Fix::CleanPost { id: p.id, why: problems.join(", ") });
        }
    }

    for u in &snap.users {
        let mut problems = Vec::new();
        let want = authored.get(&u.id).cloned().unwrap_or_default();
        let listed: BTreeSet<PostId> = u.posts.iter().copied().collect();
        if listed != want || u.post_count != want.len() as u64 {
            problems.push(format!("posts lists {} but the user wrote {}", u.post_count, want.len()));
        }
        for (field, ids, mirror_is_following) in [("followers", &u.followers, true), ("following", &u.following, false)]
        {
            let mut seen = HashSet::new();
            let bad = ids
                .iter()
                .filter(|other| {
                    let mirrored = users.get(other).is_some_and(|o| {
                        let back = if mirror_is_following { &o.following } else { &o.followers };
                        back.contains(&u.id)
                    });
                    !mirrored || !seen.insert(**other)
                })
                .count();
            if bad > 0 {
                problems.push(format!("{bad} missing, one-sided or repeated id(s) in {field}"));
            }
        }
        if !problems.is_empty() {
            fixes.push(Fix::CleanUser { id: u.id, why: problems.join(", ") });
        }
    }
    fixes
}

/// Applies a batch of fixes in one transaction; returns how many changed a document.
///
/// Touches, per fix: `comments` (read, delete); `posts` (read), `users`
/// (read the author), `posts` (delete); `posts` (read), `users` (read each
/// liker), `comments` (count by post), `posts` (write); `users` (read),
/// `posts` (ids by author), `users` (read each follow), `users` (write).
#[derive(Debug, Clone)]
pub struct Repair {
    /// The fixes, in plan order.
    pub fixes: Vec<Fix>,
}

impl Command for Repair {
    type Output = usize;
    const NAME: &'static str = "repair";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<usize> {
        let mut changed = 0;
        for fix in &self.fixes {
            if apply_one(tx, fix).await? {
                changed += 1;
            }
        }
        Ok(changed)
    }
}

/// Re-derives and writes one document; returns whether it changed.
async fn apply_one<T: Tx>(tx: &mut T, fix: &Fix) -> Result<bool> {
    match fix {
        Fix::DeleteComment { id, .. } => {
            let Some(comment) = tx.comment(*id).await? else { return Ok(false) };
            let post_ok = match tx.post(comment.post).await? {
                Some(post) => tx.user(post.author).await?.is_some(),
                None => false,
            };
            if post_ok && tx.user(comment.author).await?.is_some() {
                return Ok(false);
            }
            tx.delete_one(*id).await
        }
        Fix::DeletePost { id, .. } => {
            let Some(post) = tx.post(*id).await? else { return Ok(false) };
            if tx.user(post.author).await?.is_some() {
                return Ok(false);
            }
            tx.delete_one(*id).await
        }
        Fix::CleanPost { id, .. } => {
            let Some(mut post) = tx.post(*id).await? else { return Ok(false) };
            let before = post.clone();
            let mut kept = Vec::with_capacity(post.liked_by.len());
            for liker in &post.liked_by {
                if !kept.contains(liker) && tx.user(*liker).await?.is_some() {
                    kept.push(*liker);
                }
            }
            post.liked_by = kept;
            post.comment_count = tx.ids(IdsOf::CommentsOn(&[*id])).await?.len() as i64;
            if post == before {
                return Ok(false);
            }
            tx.replace(&post).await?;
            Ok(true)
        }
        Fix::CleanUser { id, .. } => {
            let Some(mut user) = tx.user_with_posts(*id).await? else { return Ok(false) };
            let before = user.clone();
            let authored: BTreeSet<PostId> = tx.ids(IdsOf::PostsBy(*id)).await?.into_iter().map(Id::from_oid).collect();
            // Keep the array's order for the posts that belong, then add any it lacks.
            let mut posts: Vec<PostId> = Vec::with_capacity(authored.len());
            for p in user.posts.iter().chain(authored.iter()) {
                if authored.contains(p) && !posts.contains(p) {
                    posts.push(*p);
                }
            }
            user.set_posts(posts);
            user.followers = mirrored(tx, *id, &user.followers, true).await?;
            user.following = mirrored(tx, *id, &user.following, false).await?;
            if user == before {
                return Ok(false);
            }
            tx.replace(&user).await?;
            Ok(true)
        }
    }
}

/// The ids of `ids` that exist, once each, whose other side lists `me` back.
async fn mirrored<T: Tx>(tx: &mut T, me: UserId, ids: &[UserId], back_is_following: bool) -> Result<Vec<UserId>> {
    let mut kept = Vec::with_capacity(ids.len());
    for other in ids {
        if kept.contains(other) {
            continue;
        }
        if let Some(o) = tx.user(*other).await? {
            let back = if back_is_following { &o.following } else { &o.followers };
            if back.contains(&me) {
                kept.push(*other);
            }
        }
    }
    Ok(kept)
}

/// Applies `fixes` in transactions of at most `budget` documents each, in
/// plan order (so comments go before the posts they hang off); returns how
/// many documents changed.
///
/// Refuses (`CONFLICT`, nothing changed) while a staged deletion is in
/// progress: a fix recounts a post's comments inside its transaction, where
/// the job's not-yet-reaped comments still count. The reaper takes seconds;
/// run the repair again after it.
pub async fn apply(store: &Store, fixes: &[Fix], budget: usize) -> Result<usize> {
    let jobs = store.deletion_job_headers().await?.len();
    if jobs > 0 {
        return Err(Error::Conflict(
            format!("{jobs} staged deletion(s) in progress; run the repair again once the reaper has finished them")
                .into(),
        ));
    }
    let mut changed = 0;
    for batch in fixes.chunks(budget.max(1)) {
        changed += store.run(Repair { fixes: batch.to_vec() }).await?;
    }
    Ok(changed)
}

#[cfg(test)]
mod tests {
    use bson::DateTime;

    use super::*;
    use crate::model::{CommentDoc, PostDoc, UserDoc};

    fn user(id: UserId, posts: Vec<PostId>, followers: Vec<UserId>, following: Vec<UserId>) -> UserDoc {
        let mut user = UserDoc {
            followers,
            following,
            ..UserDoc::new(id, "u".into(), format!("{id}@x.io"), String::new(), DateTime::now())
        };
        user.set_posts(posts);
        user
    }

    fn post(id: PostId, author: UserId, liked_by: Vec<UserId>, comment_count: i64) -> PostDoc {
        let now = DateTime::now();
        PostDoc {
            id,
            title: "t".into(),
            body: String::new(),
            author,
            liked_by,
            comment_count,
            created_at: now,
            updated_at: now,
            deleting: None,
        }
    }

    /// A clean snapshot needs no fix; each kind of damage gets exactly its fix, comments first.
    #[test]
    fn plans_one_fix_per_damaged_document() {
        let (a, b, gone) = (UserId::new(), UserId::new(), UserId::new());
        let (p, orphan) = (PostId::new(), PostId::new());
        let (c_ok, c_on_orphan, c_by_gone) = (CommentId::new(), CommentId::new(), CommentId::new());
        let comment = |id, post, author| CommentDoc { id, body: "c".into(), post, author, created_at: DateTime::now() };
        let clean = Snapshot {
            users: vec![user(a, vec![p], vec![b], vec![]), user(b, vec![], vec![], vec![a])],
            posts: vec![post(p, a, vec![b], 1)],
            comments: vec![comment(c_ok, p, b)],
            jobs: vec![],
        };
        assert!(plan(&clean).is_empty());

        let damaged = Snapshot {
            users: vec![user(a, vec![p, PostId::new()], vec![b, gone], vec![]), user(b, vec![], vec![], vec![a])],
            posts: vec![post(p, a, vec![b, b, gone], 1), post(orphan, gone, vec![], 1)],
            comments: vec![comment(c_ok, p, b), comment(c_on_orphan, orphan, b), comment(c_by_gone, p, gone)],
            jobs: vec![],
        };
        let fixes = plan(&damaged);
        let kinds: Vec<String> =
            fixes.iter().map(|f| f.to_string().split(':').next().unwrap_or("").to_owned()).collect();
        assert_eq!(
            kinds,
            vec![
                format!("delete comment {c_on_orphan}"),
                format!("delete comment {c_by_gone}"),
                format!("delete post {orphan}"),
                format!("rewrite post {p}"),
                format!("rewrite user {a}"),
            ]
        );
    }
}
