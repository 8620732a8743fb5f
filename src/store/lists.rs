//! What a read lists or counts: the names the port, the relations and the
//! backends share, in a file that depends on nothing, so none of them
//! depends on another for them.

/// Which comments a one-to-many page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CommentsOf {
    /// The comments on a post (`Post.comments`).
    Post,
    /// The comments a user wrote (`User.comments`).
    Author,
}

/// Which users a one-to-many page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UsersOf {
    /// The users in a user's `followers` array.
    Followers,
    /// The users in a user's `following` array.
    Following,
    /// The users in a post's `likedBy` array.
    Likers,
}

/// Which posts a one-to-many page lists.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PostsOf {
    /// The posts a user wrote (`User.posts`).
    Author,
}

/// A whole collection whose size a root list reports as `totalCount`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Collection {
    /// Every user.
    Users,
    /// Every post.
    Posts,
}

/// A per-author count read through an index (no stored count exists for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CountOf {
    /// The posts whose `author` is the parent (the author index).
    PostsByAuthor,
    /// The comments whose `author` is the parent (the author index).
    CommentsByAuthor,
}

/// One page per parent, in the order the parents were asked for.
pub type Pages<D> = Vec<Vec<D>>;
