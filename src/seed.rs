//! Bulk data for benchmarks and crash tests, written through the same commands
//! as the API (so every invariant holds), in a few large transactions.

use bson::oid::ObjectId;

use crate::cmd::{Command, CreateComment, CreatePost, FollowUser, LikePost, SignUp};
use crate::domain::{CommentBody, Email, PostBody, Title, UserName};
use crate::error::Result;
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
    pub users: Vec<(ObjectId, Vec<ObjectId>)>,
}

/// All of one account's posts, in one transaction.
struct SeedPosts {
    author: ObjectId,
    count: usize,
}

impl Command for SeedPosts {
    type Output = Vec<ObjectId>;
    const NAME: &'static str = "seedPosts";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<Vec<ObjectId>> {
        let mut ids = Vec::with_capacity(self.count);
        for i in 0..self.count {
            let title = Title::parse(&format!("Post {i}"))?;
            let body = PostBody::parse(&format!("Body of post {i}"))?;
            ids.push(CreatePost { author: self.author, title, body }.apply(tx).await?.id);
        }
        Ok(ids)
    }
}

/// One account's comments, likes and follows, in one transaction.
struct SeedInteractions {
    user: ObjectId,
    /// Posts to comment on.
    comment_on: Vec<ObjectId>,
    /// Posts to like.
    like: Vec<ObjectId>,
    /// Accounts to follow.
    follow: Vec<ObjectId>,
}

impl Command for SeedInteractions {
    type Output = ();
    const NAME: &'static str = "seedInteractions";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<()> {
        let body = CommentBody::parse("Seeded comment")?;
        for post in &self.comment_on {
            CreateComment { author: self.user, post: *post, body: body.clone() }.apply(tx).await?;
        }
        for post in &self.like {
            LikePost { liker: self.user, post: *post }.apply(tx).await?;
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
        let others: Vec<&(ObjectId, Vec<ObjectId>)> = (1..count).map(|k| &seeded.users[(n + k) % count]).collect();
        let posts_of = |take: usize| -> Vec<ObjectId> {
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
