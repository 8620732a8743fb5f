//! `createPost`: write a post.

use crate::model::{PostId, UserId};

use super::{ACCOUNT_GONE, Command};
use crate::domain::{PostBody, Title};
use crate::error::{Error, Result};
use crate::model::PostDoc;
use crate::store::Tx;
use crate::store::events::Event;

/// Writes a post as `author`.
///
/// Touches: `posts` (insert), `users` (push the id into the author's
/// `posts` with [`Tx::push_user_post`], which also proves the author exists;
/// this write makes a concurrent deletion of the author conflict).
#[derive(Debug, Clone)]
pub struct CreatePost {
    /// The signed-in author.
    pub author: UserId,
    /// The post's title.
    pub title: Title,
    /// The post's body.
    pub body: PostBody,
}

impl CreatePost {
    /// The new post's document, created at `now`; `blogql seed` builds its
    /// posts here too, so both write the same shape.
    pub(crate) fn post(&self, now: bson::DateTime) -> PostDoc {
        PostDoc {
            id: PostId::new(),
            title: self.title.as_str().to_owned(),
            body: self.body.as_str().to_owned(),
            author: self.author,
            liked_by: Vec::new(),
            comment_count: 0,
            created_at: now,
            updated_at: now,
            deleting: None,
        }
    }
}

impl Command for CreatePost {
    type Output = PostDoc;
    const NAME: &'static str = "createPost";

    fn events(&self, post: &PostDoc) -> Vec<Event> {
        vec![Event::PostAdded(std::sync::Arc::new(post.clone()))]
    }

    fn written_bytes(&self) -> Option<usize> {
        Some(self.title.as_str().len() + self.body.as_str().len())
    }

    async fn apply<T: Tx>(&self, tx: &mut T) -> Result<PostDoc> {
        let post = self.post(tx.now());
        tx.insert(&post).await?;
        if !tx.push_user_post(self.author, post.id).await? {
            // The insert rolls back with the transaction.
            return Err(Error::Unauthenticated(ACCOUNT_GONE.into()));
        }
        Ok(post)
    }
}
