//! A user's display name.

use super::text::{self, text_newtype};
use crate::error::Result;

/// A display name: trimmed, 1–64 characters, no control or invisible
/// formatting characters (so a name cannot hide, reorder or impersonate).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UserName(String);

impl UserName {
    /// Trims `value` and checks it; whitespace-only names are refused.
    pub fn parse(value: &str) -> Result<Self> {
        let trimmed = value.trim();
        text::check("name", trimmed, 1, 64)?;
        text::single_line_visible("name", trimmed)?;
        Ok(UserName(trimmed.to_owned()))
    }
}

text_newtype!(UserName);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Surrounding whitespace is trimmed, and the limit counts characters, not bytes.
    #[test]
    fn trims_and_counts_characters() {
        assert_eq!(UserName::parse("  Ann ").map(UserName::into_inner).ok(), Some("Ann".to_owned()));
        assert!(UserName::parse(&"é".repeat(64)).is_ok());
        assert!(UserName::parse(&"é".repeat(65)).is_err());
    }

    /// Empty, blank and NUL-bearing names are refused.
    #[test]
    fn refuses_blank_and_nul() {
        for bad in ["", "   ", "\t\n", "A\u{0}nn", "\u{1b}[31mAnn", "Ann\u{202e}", "\u{200b}\u{200b}", "A\nB"] {
            assert!(UserName::parse(bad).is_err(), "{bad:?}");
        }
    }

    proptest! {
        /// Any name parses exactly when its trimmed form is 1–64 characters with
        /// no control or format character, and parsing is idempotent.
        #[test]
        fn parse_matches_the_rule(s in "\\PC{0,80}") {
            let trimmed = s.trim();
            let n = trimmed.chars().count();
            let expected = (1..=64).contains(&n) && !trimmed.chars().any(char::is_control) && !text::misuses_format(trimmed);
            let parsed = UserName::parse(&s);
            prop_assert_eq!(parsed.is_ok(), expected);
            if let Ok(name) = parsed {
                prop_assert_eq!(UserName::parse(name.as_str()).ok(), Some(name.clone()));
            }
        }
    }
}
