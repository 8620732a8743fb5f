//! `createPost`: write a post.

use bson::oid::ObjectId;

use super::{Command, actor};
use crate::domain::{PostBody, Title};
use crate::error::Result;
use crate::model::PostDoc;
use crate::store::Tx;

/// Writes a post as `author`.
///
/// Touches: `users` (read author), `posts` (insert), `users` (push the id
/// into the author's `posts`; this write also makes a concurrent deletion
/// of the author conflict).
#[derive(Debug, Clone)]
pub struct CreatePost {
    /// The signed-in author.
    pub author: ObjectId,
    /// The post's title.
    pub title: Title,
    /// The post's body.
    pub body: PostBody,
}

impl Command for CreatePost {
    type Output = PostDoc;
    const NAME: &'static str = "createPost";

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<PostDoc> {
        let mut user = actor(tx, self.author).await?;
        let now = tx.now();
        let post = PostDoc {
            id: ObjectId::new(),
            title: self.title.as_str().to_owned(),
            body: self.body.as_str().to_owned(),
            author: self.author,
            liked_by: Vec::new(),
            comment_count: 0,
            created_at: now,
            updated_at: now,
        };
        tx.insert_post(&post).await?;
        user.posts.push(post.id);
        tx.replace_user(&user).await?;
        Ok(post)
    }
}
