//! A post's title.

use super::text::{self, text_newtype};
use crate::error::Result;

/// A post title: 1–200 characters, not blank, one line, no control or
/// invisible formatting characters. Kept as typed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Title(String);

impl Title {
    /// Checks `value` and keeps it verbatim.
    pub fn parse(value: &str) -> Result<Self> {
        text::not_blank("title", value)?;
        text::check("title", value, 1, 200)?;
        text::single_line_visible("title", value)?;
        Ok(Title(value.to_owned()))
    }
}

text_newtype!(Title);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::domain::text;

    /// Blank titles and titles over 200 characters are refused; 200 is fine.
    #[test]
    fn bounds() {
        assert!(Title::parse("").is_err());
        assert!(Title::parse("  ").is_err());
        assert!(Title::parse(&"t".repeat(200)).is_ok());
        assert!(Title::parse(&"t".repeat(201)).is_err());
        assert!(Title::parse(&"\u{200b}".repeat(200)).is_err(), "200 zero-width spaces");
        assert!(Title::parse("a\u{1}b").is_err());
    }

    proptest! {
        /// A title parses exactly when it is 1–200 characters, not blank, with no
        /// control or format character.
        #[test]
        fn parse_matches_the_rule(s in "\\PC{0,220}") {
            let n = s.chars().count();
            let expected = !s.trim().is_empty() && n <= 200 && !s.chars().any(char::is_control) && !text::misuses_format(&s);
            prop_assert_eq!(Title::parse(&s).is_ok(), expected);
        }
    }
}
