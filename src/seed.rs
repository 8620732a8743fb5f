//! Bulk data for benchmarks and crash tests, in a few large transactions.
//!
//! Each seed command has exactly the effects of the API's commands for the
//! same work (the integrity checker passes after seeding), but batches them:
//! an account's posts are inserted and then listed in its `posts` with one
//! write of the account, and its comments and likes touch it once.
//! Applying `createPost` per post would rewrite the growing account document
//! every time, which is quadratic in the number of posts.

use bson::oid::ObjectId;

use crate::cmd::{Command, CreatePost, FollowUser, SignUp};
use crate::domain::{CommentBody, Email, PostBody, Title, UserName};
use crate::error::{Error, Result};
use crate::model::{CommentDoc, CommentId, PostId, UserId};
use crate::store::{Store, Tx};

/// How much data to create.
#[derive(Debug, Clone)]
pub struct SeedPlan {
    /// Accounts to create; emails are `seed<run>-<n>@example.com`.
    pub users: usize,
    /// Posts per account.
    pub posts_per_user: usize,
    /// Comments on each post, by other accounts.
    pub comments_per_post: usize,
    /// Likes on each post, by other accounts.
    pub likes_per_post: usize,
    /// Accounts each account follows.
    pub follows_per_user: usize,
    /// The argon2 hash every seeded account gets (hashing once keeps seeding fast).
    pub password_hash: String,
}

/// What was created: every account id, with its posts' ids.
#[derive(Debug, Clone, Default)]
pub struct Seeded {
    /// `(user, posts)` per account, in creation order.
    pub users: Vec<(UserId, Vec<PostId>)>,
}

/// All of one account's posts, in one transaction.
struct SeedPosts {
    author: UserId,
    count: usize,
}

impl Command for SeedPosts {
    type Output = Vec<PostId>;
    const NAME: &'static str = "seedPosts";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<Vec<PostId>> {
        let mut author = tx.user_with_posts(self.author).await?.ok_or_else(|| Error::not_found("user", self.author))?;
        let now = tx.now();
        let mut ids = Vec::with_capacity(self.count);
        for i in 0..self.count {
            let title = Title::parse(&format!("Post {i}"))?;
            let post = CreatePost { author: self.author, title, body: PostBody::parse(&format!("Body of post {i}"))? }
                .post(now);
            tx.insert(&post).await?;
            ids.push(post.id);
        }
        let mut posts = std::mem::take(&mut author.posts);
        posts.extend(&ids);
        author.set_posts(posts);
        tx.replace(&author).await?;
        Ok(ids)
    }
}

/// One account's comments, likes and follows, in one transaction.
struct SeedInteractions {
    user: UserId,
    /// Posts to comment on.
    comment_on: Vec<PostId>,
    /// Posts to like.
    like: Vec<PostId>,
    /// Accounts to follow.
    follow: Vec<UserId>,
}

impl Command for SeedInteractions {
    type Output = ();
    const NAME: &'static str = "seedInteractions";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<()> {
        let body = CommentBody::parse("Seeded comment")?;
        let now = tx.now();
        let mut referenced = false;
        for id in &self.comment_on {
            let mut post = tx.post(*id).await?.ok_or_else(|| Error::not_found("post", *id))?;
            let comment = CommentDoc {
                id: CommentId::new(),
                body: body.as_str().to_owned(),
                post: *id,
                author: self.user,
                created_at: now,
            };
            tx.insert(&comment).await?;
            post.comment_count += 1;
            tx.replace(&post).await?;
            referenced = true;
        }
        for id in &self.like {
            let mut post = tx.post(*id).await?.ok_or_else(|| Error::not_found("post", *id))?;
            if !post.liked_by.contains(&self.user) {
                post.liked_by.push(self.user);
                tx.replace(&post).await?;
                referenced = true;
            }
        }
        if referenced && !tx.touch_user(self.user).await? {
            return Err(Error::not_found("user", self.user));
        }
        for target in &self.follow {
            FollowUser { follower: self.user, target: *target }.apply(tx).await?;
        }
        Ok(())
    }
}

/// Creates the accounts, then each account's posts in one transaction, then
/// the comments, likes and follows, one transaction per account.
pub async fn seed(store: &Store, plan: &SeedPlan) -> Result<Seeded> {
    // Tags this run's emails, so seeding twice into one store does not collide.
    let run = ObjectId::new().to_hex();
    let mut seeded = Seeded::default();
    for n in 0..plan.users {
        let sign_up = SignUp {
            name: UserName::parse(&format!("Seed {n}"))?,
            email: Email::parse(&format!("seed{run}-{n}@example.com"))?,
            password_hash: plan.password_hash.clone(),
        };
        let user = store.run(sign_up).await?;
        let posts = store.run(SeedPosts { author: user.id, count: plan.posts_per_user }).await?;
        seeded.users.push((user.id, posts));
    }
    let count = seeded.users.len();
    for (n, (user, _)) in seeded.users.iter().enumerate() {
        // Interact with the next accounts round-robin; skip yourself.
        let others: Vec<&(UserId, Vec<PostId>)> = (1..count).map(|k| &seeded.users[(n + k) % count]).collect();
        let posts_of = |take: usize| -> Vec<PostId> {
            others.iter().take(take).flat_map(|(_, posts)| posts.iter().copied()).collect()
        };
        let interactions = SeedInteractions {
            user: *user,
            comment_on: posts_of(plan.comments_per_post),
            like: posts_of(plan.likes_per_post),
            follow: others.iter().take(plan.follows_per_user).map(|(id, _)| *id).collect(),
        };
        store.run(interactions).await?;
    }
    Ok(seeded)
}
