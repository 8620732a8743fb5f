//! A comment's text.

use super::text::{self, text_newtype};
use crate::error::Result;

/// A comment: 1–5,000 characters, not blank, no control characters but tab and newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommentBody(String);

impl CommentBody {
    /// Checks `value` and keeps it verbatim.
    pub fn parse(value: &str) -> Result<Self> {
        text::not_blank("body", value)?;
        text::check("body", value, 1, 5_000)?;
        Ok(CommentBody(value.to_owned()))
    }
}

text_newtype!(CommentBody);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Blank comments and comments over 5,000 characters are refused.
    #[test]
    fn bounds() {
        assert!(CommentBody::parse("").is_err());
        assert!(CommentBody::parse(" \n").is_err());
        assert!(CommentBody::parse(&"c".repeat(5_000)).is_ok());
        assert!(CommentBody::parse(&"c".repeat(5_001)).is_err());
    }

    proptest! {
        /// A comment parses exactly when it is 1–5,000 characters, not blank, with
        /// no control character but tab and newline.
        #[test]
        fn parse_matches_the_rule(s in "\\PC{0,60}") {
            let expected = !s.trim().is_empty() && !s.chars().any(|c| c.is_control() && c != '\t' && c != '\n');
            prop_assert_eq!(CommentBody::parse(&s).is_ok(), expected);
        }
    }
}
