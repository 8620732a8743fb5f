//! A user's bio.

use super::text::{self, text_newtype};
use crate::error::{Error, Result};

/// Longest bio, in characters.
pub const MAX_CHARS: usize = 1_000;

/// A bio: at most 1,000 characters, line breaks allowed; no other control
/// characters, and no bidirectional overrides or invisible formatting outside
/// the emoji and script sequences that need them (the rule names follow), so
/// a bio cannot reorder or hide what a reader sees. Empty means "no bio".
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bio(String);

impl Bio {
    /// Checks `value` and keeps it verbatim.
    pub fn parse(value: &str) -> Result<Self> {
        text::check("bio", value, 0, MAX_CHARS)?;
        if text::misuses_format(value) {
            return Err(Error::bad_input("bio", "bio must not contain invisible or formatting characters"));
        }
        Ok(Bio(value.to_owned()))
    }

    /// The bio to store: `None` for an empty one, which clears it.
    pub fn stored(&self) -> Option<String> {
        (!self.0.is_empty()).then(|| self.0.clone())
    }
}

text_newtype!(Bio);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// 1,000 characters (not bytes) pass and one more does not; line breaks
    /// pass; control characters and bidirectional overrides do not; an empty
    /// bio is stored as none.
    #[test]
    fn bounds_and_characters() {
        assert!(Bio::parse(&"é".repeat(MAX_CHARS)).is_ok());
        assert!(Bio::parse(&"é".repeat(MAX_CHARS + 1)).is_err());
        assert!(Bio::parse("first line\nsecond line").is_ok());
        assert!(Bio::parse("bell \u{7}").is_err());
        assert!(Bio::parse("abc \u{202E}gnp.exe").is_err());
        assert!(Bio::parse("dev 👩\u{200D}💻").is_ok(), "a ZWJ emoji is text");
        assert_eq!(Bio::parse("").map(|b| b.stored()).ok(), Some(None));
        assert_eq!(Bio::parse("hi").map(|b| b.stored()).ok(), Some(Some("hi".to_owned())));
    }

    proptest! {
        /// Bios of ordinary characters are kept exactly as written.
        #[test]
        fn kept_verbatim(s in "[^\\p{Cc}\\p{Cf}]{0,200}") {
            prop_assert_eq!(Bio::parse(&s).ok().map(Bio::into_inner), Some(s));
        }
    }
}
