//! Validated input: newtypes whose `parse` is the only way to build them.
//!
//! A command that takes a [`Title`] cannot be handed an unchecked string, so
//! validation happens once, at the edge, and everything behind it (commands,
//! stores) can rely on it. Each type keeps its rules and their tests beside it.

mod bio;
mod comment_body;
mod email;
mod page;
mod password;
mod post_body;
mod post_changes;
mod profile_changes;
mod text;
mod title;
mod token_id;
mod user_name;

pub use bio::Bio;
pub use comment_body::CommentBody;
pub use email::Email;
pub use page::{CursorKey, DEFAULT_PAGE, MAX_PAGE, Page, newest_first};
pub use password::Password;
pub use post_body::PostBody;
pub use post_changes::PostChanges;
pub use profile_changes::ProfileChanges;
pub use title::Title;
pub use token_id::{new_token_id, token_expired};
pub use user_name::UserName;
