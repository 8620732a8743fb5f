//! A post's body.

use super::text::{self, text_newtype};
use crate::error::Result;

/// Longest post body, in characters.
pub const MAX_CHARS: usize = 50_000;

/// A post body: at most 50,000 characters (empty is allowed), no control characters but tab and newline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostBody(String);

impl PostBody {
    /// Checks `value` and keeps it verbatim.
    pub fn parse(value: &str) -> Result<Self> {
        text::check("body", value, 0, MAX_CHARS)?;
        Ok(PostBody(value.to_owned()))
    }
}

text_newtype!(PostBody);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Empty bodies are fine, 50,000 characters are fine, one more is not.
    #[test]
    fn bounds() {
        assert!(PostBody::parse("").is_ok());
        assert!(PostBody::parse(&"b".repeat(MAX_CHARS)).is_ok());
        assert!(PostBody::parse(&"b".repeat(MAX_CHARS + 1)).is_err());
        assert!(PostBody::parse("a\u{0}b").is_err());
        assert!(PostBody::parse(&"\u{1}".repeat(10)).is_err(), "JSON would escape each to six bytes");
        assert!(PostBody::parse("line one\n\tline two").is_ok());
    }

    proptest! {
        /// Bodies are kept exactly as written.
        #[test]
        fn kept_verbatim(s in "[^\\p{Cc}]{0,200}") {
            prop_assert_eq!(PostBody::parse(&s).ok().map(PostBody::into_inner), Some(s));
        }
    }
}
