//! Bulk data for benchmarks and crash tests, written through the same cascade
//! rules as the API (so every invariant holds), in a few large transactions.

use bson::oid::ObjectId;

use crate::cascade;
use crate::error::Result;
use crate::store::{Store, transact};

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

/// Creates the accounts, then each account's posts in one transaction, then
/// the comments, likes and follows, one transaction per account.
pub async fn seed(store: &dyn Store, plan: &SeedPlan) -> Result<Seeded> {
    // Tags this run's emails, so seeding twice into one store does not collide.
    let run = ObjectId::new().to_hex();
    let mut seeded = Seeded::default();
    for n in 0..plan.users {
        let (name, email, hash) =
            (format!("Seed {n}"), format!("seed{run}-{n}@example.com"), plan.password_hash.clone());
        let user = transact(store, move |tx| Box::pin(cascade::sign_up(tx, name.clone(), email.clone(), hash.clone())))
            .await?;
        let posts_per_user = plan.posts_per_user;
        let posts = transact(store, move |tx| {
            Box::pin(async move {
                let mut ids = Vec::with_capacity(posts_per_user);
                for i in 0..posts_per_user {
                    let post =
                        cascade::create_post(tx, user.id, format!("Post {i}"), format!("Body of post {i}")).await?;
                    ids.push(post.id);
                }
                Ok(ids)
            })
        })
        .await?;
        seeded.users.push((user.id, posts));
    }
    let ids: Vec<ObjectId> = seeded.users.iter().map(|(u, _)| *u).collect();
    let count = ids.len();
    for (n, (user, _)) in seeded.users.iter().enumerate() {
        let user = *user;
        // Interact with the next accounts round-robin; skip yourself.
        let others: Vec<ObjectId> = (1..count).map(|k| ids[(n + k) % count]).collect();
        let targets: Vec<(ObjectId, Vec<ObjectId>)> = others
            .iter()
            .take(plan.comments_per_post.max(plan.likes_per_post))
            .filter_map(|o| seeded.users.iter().find(|(id, _)| id == o).cloned())
            .collect();
        let plan = plan.clone();
        let follows: Vec<ObjectId> = others.iter().take(plan.follows_per_user).copied().collect();
        transact(store, move |tx| {
            let (targets, follows, plan) = (targets.clone(), follows.clone(), plan.clone());
            Box::pin(async move {
                for (k, (_, posts)) in targets.iter().enumerate() {
                    for post in posts {
                        if k < plan.comments_per_post {
                            cascade::create_comment(tx, user, *post, "Seeded comment".into()).await?;
                        }
                        if k < plan.likes_per_post {
                            cascade::like_post(tx, user, *post).await?;
                        }
                    }
                }
                for other in follows {
                    cascade::follow_user(tx, user, other).await?;
                }
                Ok(())
            })
        })
        .await?;
    }
    Ok(seeded)
}
