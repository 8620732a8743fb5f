//! A password as typed by its owner, before hashing.

use super::text;
use crate::error::Result;

/// A password of 8–1,024 characters. The upper bound keeps hashing cheap to
/// refuse; `Debug` never prints it.
#[derive(Clone, PartialEq, Eq)]
pub struct Password(String);

impl Password {
    /// Checks the length; the text itself is kept as typed (no trimming).
    pub fn parse(value: &str) -> Result<Self> {
        text::check_length("password", value, 8, 1024)?;
        Ok(Password(value.to_owned()))
    }

    /// The password's bytes, for the hasher.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(..)")
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// The bounds are 8 and 1,024 characters, and `Debug` hides the text.
    #[test]
    fn bounds_and_redaction() {
        assert!(Password::parse("1234567").is_err());
        assert!(Password::parse("12345678").is_ok());
        assert!(Password::parse(&"x".repeat(1025)).is_err());
        let secret = Password::parse("correct horse").map(|p| format!("{p:?}")).unwrap_or_default();
        assert!(!secret.contains("horse"), "{secret}");
    }

    proptest! {
        /// Passwords are kept exactly as typed, spaces included.
        #[test]
        fn kept_verbatim(s in "[^\u{0}]{8,64}") {
            prop_assert_eq!(Password::parse(&s).ok().map(|p| p.expose().to_owned()), Some(s));
        }
    }
}
