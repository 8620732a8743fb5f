//! An edit to a post.

use super::{PostBody, Title};
use crate::error::{Error, Result};

/// A new title, a new body, or both: never neither, so an edit always edits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostChanges {
    title: Option<Title>,
    body: Option<PostBody>,
}

impl PostChanges {
    /// Parses whichever fields were given; giving none is `BAD_USER_INPUT` on `input`.
    pub fn parse(title: Option<&str>, body: Option<&str>) -> Result<Self> {
        if title.is_none() && body.is_none() {
            return Err(Error::bad_input("input", "give a new title or body"));
        }
        Ok(PostChanges { title: title.map(Title::parse).transpose()?, body: body.map(PostBody::parse).transpose()? })
    }

    /// The new title, if it changes.
    pub fn title(&self) -> Option<&Title> {
        self.title.as_ref()
    }

    /// The new body, if it changes.
    pub fn body(&self) -> Option<&PostBody> {
        self.body.as_ref()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An empty edit is refused on `input`; each field is validated by its own rule.
    #[test]
    fn needs_one_valid_field() {
        assert!(matches!(PostChanges::parse(None, None), Err(Error::BadInput { field: "input", .. })));
        assert!(matches!(PostChanges::parse(Some(""), None), Err(Error::BadInput { field: "title", .. })));
        let body = PostChanges::parse(None, Some("new")).ok();
        assert_eq!(body.as_ref().and_then(PostChanges::body).map(PostBody::as_str), Some("new"));
        assert!(body.as_ref().and_then(PostChanges::title).is_none());
    }
}
