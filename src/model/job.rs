//! The records of a staged deletion in progress: the plan fixed at its
//! tombstone, stored as a small header and parts, and the constructors the
//! two deleting commands build it with.

use bson::DateTime;
use bson::oid::ObjectId;
use serde::{Deserialize, Serialize};

use super::{CommentId, Id, PostDoc, PostId, UserId};

/// A comment's id with the two documents it references; what a staged
/// deletion records about each comment it will delete.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommentRef {
    /// The comment.
    pub id: CommentId,
    /// The post it is on.
    pub post: PostId,
    /// Its writer.
    pub author: UserId,
}

/// What a staged deletion deletes at its root.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DeletionKind {
    /// An account (`deleteUser`).
    User,
    /// A post (`deletePost`).
    Post,
}

/// A staged deletion in progress, whole: what its first transaction
/// records beside the tombstone, and what readers hide.
///
/// It is stored as a small [`JobHeader`] (which the reaper rewrites with
/// its progress) and [`JobPart`]s of at most [`JOB_PART_LEN`] entries each
/// (which nobody rewrites), so a step reads and writes kilobytes, not the
/// whole plan, and no stored document nears MongoDB's 16 MiB limit.
///
/// It holds the plan fixed at the tombstone, so every process can hide
/// exactly these documents, and the reaper works through exactly these, in
/// this order: delete the comments (decrementing surviving posts'
/// `commentCount`), delete the posts, pull the id from the `liked` posts'
/// `likedBy` and from the `follows` users' arrays, then delete the root.
/// `reaped` counts the steps' progress through that concatenation. Nothing
/// can add to the sets afterwards: every write that would reference a
/// tombstoned document refuses it.
#[derive(Debug, Clone, PartialEq)]
pub struct DeletionJobDoc {
    /// The job id (`deletionJobId` in the payload).
    pub id: ObjectId,
    /// What the root is.
    pub kind: DeletionKind,
    /// The tombstoned user or post.
    pub root: ObjectId,
    /// The posts to delete: the user's (a user job) or the root (a post job).
    pub posts: Vec<PostId>,
    /// The comments to delete, sorted.
    pub comments: Vec<CommentId>,
    /// Each comment's author, aligned with `comments`, so a visible author's
    /// comment count can leave these out.
    pub comment_authors: Vec<UserId>,
    /// Each comment's post, aligned with `comments`, so a surviving post's
    /// `commentCount` can leave them out until the reaper decrements it.
    pub comment_posts: Vec<PostId>,
    /// Surviving posts whose `likedBy` holds the user (a user job).
    pub liked: Vec<PostId>,
    /// Surviving users whose `followers` or `following` holds the user (a user job).
    pub follows: Vec<UserId>,
    /// For a post job, the post's author (whose post count leaves it out);
    /// for a user job, the user.
    pub author: UserId,
    /// How far the reaper got through `comments`, `posts`, `liked`, `follows`.
    pub reaped: i64,
    /// When the tombstone committed.
    pub created_at: DateTime,
    /// When the reaper last committed a step; `blogql check` reports a job
    /// whose progress stopped.
    pub progress_at: DateTime,
}

/// Most plan entries one [`JobPart`] holds.
pub const JOB_PART_LEN: usize = 10_000;

/// The stored head of a [`DeletionJobDoc`]: everything but the id lists.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobHeader {
    /// The job id.
    #[serde(rename = "_id")]
    pub id: ObjectId,
    /// What the root is.
    pub kind: DeletionKind,
    /// The tombstoned user or post.
    pub root: ObjectId,
    /// See [`DeletionJobDoc::author`].
    pub author: UserId,
    /// Lengths of `comments`, `posts`, `liked` and `follows`, in that order.
    pub lens: [i64; 4],
    /// How many parts hold the lists.
    pub parts: i64,
    /// See [`DeletionJobDoc::reaped`].
    pub reaped: i64,
    /// When the tombstone committed.
    pub created_at: DateTime,
    /// When the reaper last committed a step.
    pub progress_at: DateTime,
}

/// One stored slice of a job's lists: entries `seq * JOB_PART_LEN ..` of
/// `comments ++ posts ++ liked ++ follows`, each list's share in its field.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct JobPart {
    /// `<job id hex>:<seq>`: found by key, without an index.
    #[serde(rename = "_id")]
    pub key: String,
    /// The comments in this slice, with their authors and posts (aligned).
    pub comments: PackedIds<crate::model::CommentDoc>,
    /// Authors of `comments`.
    pub comment_authors: PackedIds<crate::model::UserDoc>,
    /// Posts of `comments`.
    pub comment_posts: PackedIds<PostDoc>,
    /// The posts in this slice.
    pub posts: PackedIds<PostDoc>,
    /// The liked posts in this slice.
    pub liked: PackedIds<PostDoc>,
    /// The follow-holding users in this slice.
    pub follows: PackedIds<crate::model::UserDoc>,
}

/// Ids stored as one BSON binary of 12 bytes each rather than an array: a
/// part holds tens of thousands, and this is a third of the size and a
/// byte copy to encode (serde's path for an array of ids formats and parses
/// every one as hex).
#[derive(Debug, Clone, PartialEq)]
pub struct PackedIds<D>(pub Vec<Id<D>>);

impl<D> Default for PackedIds<D> {
    fn default() -> Self {
        PackedIds(Vec::new())
    }
}

impl<D> std::ops::Deref for PackedIds<D> {
    type Target = Vec<Id<D>>;
    fn deref(&self) -> &Vec<Id<D>> {
        &self.0
    }
}

impl<D> Serialize for PackedIds<D> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let bytes: Vec<u8> = self.0.iter().flat_map(|id| id.oid().bytes()).collect();
        serializer.serialize_bytes(&bytes)
    }
}

impl<'de, T> Deserialize<'de> for PackedIds<T> {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visit<T>(std::marker::PhantomData<fn() -> T>);
        impl<T> serde::de::Visitor<'_> for Visit<T> {
            type Value = PackedIds<T>;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("ids packed as 12-byte chunks")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<PackedIds<T>, E> {
                if !bytes.len().is_multiple_of(12) {
                    return Err(E::invalid_length(bytes.len(), &self));
                }
                let ids = bytes.chunks_exact(12).map(|c| {
                    let mut id = [0u8; 12];
                    id.copy_from_slice(c);
                    Id::from_oid(ObjectId::from_bytes(id))
                });
                Ok(PackedIds(ids.collect()))
            }
            fn visit_byte_buf<E: serde::de::Error>(self, bytes: Vec<u8>) -> Result<PackedIds<T>, E> {
                self.visit_bytes(&bytes)
            }
        }
        deserializer.deserialize_bytes(Visit(std::marker::PhantomData))
    }
}

impl JobPart {
    /// The stored key of part `seq` of `job`.
    pub fn key(job: &ObjectId, seq: i64) -> String {
        format!("{}:{seq}", job.to_hex())
    }
}

impl DeletionJobDoc {
    /// The four lists' lengths, in plan order.
    pub fn lens(&self) -> [usize; 4] {
        [self.comments.len(), self.posts.len(), self.liked.len(), self.follows.len()]
    }

    /// The header and parts this job is stored as.
    pub fn to_records(&self) -> (JobHeader, Vec<JobPart>) {
        let lens = self.lens();
        let total: usize = lens.iter().sum();
        let parts = total.div_ceil(JOB_PART_LEN).max(1);
        let mut out: Vec<JobPart> =
            (0..parts).map(|seq| JobPart { key: JobPart::key(&self.id, seq as i64), ..JobPart::default() }).collect();
        let mut at = 0;
        for (i, id) in self.comments.iter().enumerate() {
            let part = &mut out[at / JOB_PART_LEN];
            part.comments.0.push(*id);
            part.comment_authors.0.extend(self.comment_authors.get(i).copied());
            part.comment_posts.0.extend(self.comment_posts.get(i).copied());
            at += 1;
        }
        spread(&self.posts, &mut out, &mut at, |p| &mut p.posts.0);
        spread(&self.liked, &mut out, &mut at, |p| &mut p.liked.0);
        spread(&self.follows, &mut out, &mut at, |p| &mut p.follows.0);
        let header = JobHeader {
            id: self.id,
            kind: self.kind,
            root: self.root,
            author: self.author,
            lens: lens.map(|n| n as i64),
            parts: parts as i64,
            reaped: self.reaped,
            created_at: self.created_at,
            progress_at: self.progress_at,
        };
        (header, out)
    }

    /// The job stored as `header` and `parts` (in `seq` order).
    pub fn from_records(header: JobHeader, parts: Vec<JobPart>) -> DeletionJobDoc {
        let mut job = DeletionJobDoc {
            id: header.id,
            kind: header.kind,
            root: header.root,
            posts: Vec::new(),
            comments: Vec::new(),
            comment_authors: Vec::new(),
            comment_posts: Vec::new(),
            liked: Vec::new(),
            follows: Vec::new(),
            author: header.author,
            reaped: header.reaped,
            created_at: header.created_at,
            progress_at: header.progress_at,
        };
        for part in parts {
            job.comments.extend(part.comments.0);
            job.comment_authors.extend(part.comment_authors.0);
            job.comment_posts.extend(part.comment_posts.0);
            job.posts.extend(part.posts.0);
            job.liked.extend(part.liked.0);
            job.follows.extend(part.follows.0);
        }
        job
    }
}

/// Appends `list` to the parts from plan position `at` on, into the field `pick` names.
fn spread<D>(list: &[Id<D>], out: &mut [JobPart], at: &mut usize, pick: fn(&mut JobPart) -> &mut Vec<Id<D>>) {
    for id in list {
        pick(&mut out[*at / JOB_PART_LEN]).push(*id);
        *at += 1;
    }
}

impl DeletionJobDoc {
    /// The plan of an account's staged deletion: its `posts`, the comments
    /// on them and by it, the posts it `liked`, the users it `follows` or is
    /// followed by.
    pub fn for_user(
        user: UserId,
        posts: Vec<PostId>,
        comments: &[CommentRef],
        liked: Vec<PostId>,
        follows: Vec<UserId>,
        now: DateTime,
    ) -> Self {
        DeletionJobDoc {
            posts,
            liked,
            follows,
            ..DeletionJobDoc::rooted(DeletionKind::User, user.oid(), user, comments, now)
        }
    }

    /// The plan of a post's staged deletion: the post and its comments.
    pub fn for_post(post: &PostDoc, comments: &[CommentRef], now: DateTime) -> Self {
        let job = DeletionJobDoc::rooted(DeletionKind::Post, post.id.oid(), post.author, comments, now);
        DeletionJobDoc { posts: vec![post.id], ..job }
    }

    /// A new job at `root` listing `comments` (with what each references), nothing else yet.
    fn rooted(kind: DeletionKind, root: ObjectId, author: UserId, comments: &[CommentRef], now: DateTime) -> Self {
        DeletionJobDoc {
            id: ObjectId::new(),
            kind,
            root,
            author,
            posts: Vec::new(),
            comments: comments.iter().map(|r| r.id).collect(),
            comment_authors: comments.iter().map(|r| r.author).collect(),
            comment_posts: comments.iter().map(|r| r.post).collect(),
            liked: Vec::new(),
            follows: Vec::new(),
            reaped: 0,
            created_at: now,
            progress_at: now,
        }
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    fn ids<D>(n: usize) -> Vec<Id<D>> {
        (0..n).map(|_| Id::new()).collect()
    }

    proptest! {
        /// Any job survives its split into a header and parts of at most
        /// `JOB_PART_LEN` entries and their BSON, and the parts cover the lists in plan order.
        #[test]
        fn a_job_is_its_records(lens in prop::array::uniform4(0usize..25_000)) {
            let [c, p, l, f] = lens;
            let job = DeletionJobDoc {
                id: ObjectId::new(),
                kind: DeletionKind::User,
                root: ObjectId::new(),
                posts: ids(p),
                comments: ids(c),
                comment_authors: ids(c),
                comment_posts: ids(c),
                liked: ids(l),
                follows: ids(f),
                author: UserId::new(),
                reaped: 7,
                created_at: DateTime::from_millis(1),
                progress_at: DateTime::from_millis(2),
            };
            let (header, parts) = job.to_records();
            prop_assert_eq!(header.parts as usize, parts.len());
            let mut stored = Vec::new();
            for part in &parts {
                let n = part.comments.0.len() + part.posts.0.len() + part.liked.0.len() + part.follows.0.len();
                prop_assert!(n <= JOB_PART_LEN);
                let bytes = bson::serialize_to_vec(part).expect("encode");
                stored.push(bson::deserialize_from_slice::<JobPart>(&bytes).expect("decode"));
            }
            prop_assert_eq!(&stored, &parts, "a part is its BSON");
            prop_assert_eq!(DeletionJobDoc::from_records(header, stored), job);
        }
    }
}
