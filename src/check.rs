//! The integrity checker: every invariant the commands promise, checked
//! over a [`Snapshot`] so any backend (and any test) can run it.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bson::DateTime;

use crate::model::{PostId, UserId};

use crate::store::Snapshot;
use crate::store::hidden::Sets;

/// A staged deletion whose reaper has committed no step for this long is
/// reported: reapers step every few milliseconds while a job lasts.
pub const STUCK_AFTER_MS: i64 = 10 * 60 * 1000;

/// `snap` as readers see it: without the documents staged deletions hide
/// (the users and posts they tombstoned, the posts and comments their plans
/// name), and with what reads leave out of surviving documents until the
/// reaper changes them: hidden users in `likedBy`, `followers` and
/// `following`, hidden comments in `commentCount`, hidden posts in `posts`.
///
/// This view is consistent at every step of the reaper, so documents under
/// a job in progress are never reported; they are the job's to change.
pub fn visible(snap: &Snapshot) -> Snapshot {
    // The reads' own definition of hidden, over the snapshot's jobs.
    let sets = Sets::of(&snap.jobs);
    let mut out = Snapshot {
        users: snap.users.iter().filter(|u| !sets.hides_user(u)).cloned().collect(),
        posts: snap.posts.iter().filter(|p| !sets.hides_post(p)).cloned().collect(),
        comments: snap.comments.iter().filter(|c| !sets.hides_comment(c)).cloned().collect(),
        jobs: Vec::new(),
    };
    let mut hidden_comments: HashMap<PostId, i64> = HashMap::new();
    for c in snap.comments.iter().filter(|c| sets.hides_comment(c)) {
        *hidden_comments.entry(c.post).or_default() += 1;
    }
    for user in &mut out.users {
        user.posts.retain(|p| !sets.post(p));
        sets.scrub_user(user);
    }
    for post in &mut out.posts {
        sets.scrub_post(post);
        post.comment_count -= hidden_comments.get(&post.id).copied().unwrap_or(0);
    }
    out
}

/// Staged deletions whose reaper made no progress for [`STUCK_AFTER_MS`], one line each.
pub fn stuck_jobs(snap: &Snapshot, now: DateTime) -> Vec<String> {
    snap.jobs
        .iter()
        .filter(|j| now.timestamp_millis() - j.progress_at.timestamp_millis() > STUCK_AFTER_MS)
        .map(|j| {
            format!(
                "deletion job {} ({:?} {}) has made no progress since {} ({} of {} steps of work done)",
                j.id,
                j.kind,
                j.root,
                j.progress_at,
                j.reaped,
                j.lens().iter().sum::<usize>()
            )
        })
        .collect()
}

/// Every violated invariant in `snap`, one human-readable line each; empty when clean.
///
/// Checks, over what readers see ([`visible`]): posts' authors exist;
/// comments' posts and authors exist; `user.posts` equals the posts whose
/// `author` is that user; `likedBy` ids exist and are unique; follows are
/// symmetric, unique and point at existing users; `commentCount` equals the
/// number of comments. Then: no staged deletion is stuck ([`stuck_jobs`]).
pub fn violations(snap: &Snapshot) -> Vec<String> {
    let mut out = invariants(&visible(snap));
    out.extend(stuck_jobs(snap, DateTime::now()));
    out
}

/// The invariants of [`violations`], over every document of `snap`.
fn invariants(snap: &Snapshot) -> Vec<String> {
    let mut out = Vec::new();
    let users: BTreeMap<UserId, _> = snap.users.iter().map(|u| (u.id, u)).collect();
    let posts: BTreeSet<PostId> = snap.posts.iter().map(|p| p.id).collect();

    let mut by_author: HashMap<UserId, BTreeSet<PostId>> = HashMap::new();
    for post in &snap.posts {
        if !users.contains_key(&post.author) {
            out.push(format!("post {} has missing author {}", post.id, post.author));
        }
        by_author.entry(post.author).or_default().insert(post.id);
        let likers: BTreeSet<_> = post.liked_by.iter().collect();
        if likers.len() != post.liked_by.len() {
            out.push(format!("post {} has duplicate likedBy entries", post.id));
        }
        for liker in likers.iter().filter(|l| !users.contains_key(l)) {
            out.push(format!("post {} is liked by missing user {liker}", post.id));
        }
    }

    let mut comment_counts: HashMap<PostId, i64> = HashMap::new();
    for comment in &snap.comments {
        if !posts.contains(&comment.post) {
            out.push(format!("comment {} is on missing post {}", comment.id, comment.post));
        }
        if !users.contains_key(&comment.author) {
            out.push(format!("comment {} has missing author {}", comment.id, comment.author));
        }
        *comment_counts.entry(comment.post).or_default() += 1;
    }
    for post in &snap.posts {
        let actual = comment_counts.get(&post.id).copied().unwrap_or(0);
        if post.comment_count != actual {
            out.push(format!("post {} has commentCount {} but {actual} comments", post.id, post.comment_count));
        }
    }

    for user in &snap.users {
        let listed: BTreeSet<PostId> = user.posts.iter().copied().collect();
        let authored = by_author.remove(&user.id).unwrap_or_default();
        if listed != authored || user.post_count != authored.len() as u64 {
            out.push(format!("user {} lists {} posts {listed:?} but authored {authored:?}", user.id, user.post_count));
        }
        for (field, ids, mirror) in
            [("followers", &user.followers, "following"), ("following", &user.following, "followers")]
        {
            if ids.iter().collect::<BTreeSet<_>>().len() != ids.len() {
                out.push(format!("user {} has duplicate {field} entries", user.id));
            }
            for other in ids {
                match users.get(other) {
                    None => out.push(format!("user {} has missing user {other} in {field}", user.id)),
                    Some(o) => {
                        let back = if mirror == "following" { &o.following } else { &o.followers };
                        if !back.contains(&user.id) {
                            out.push(format!("user {} has {other} in {field} but not the other way round", user.id));
                        }
                    }
                }
            }
        }
    }
    out
}
