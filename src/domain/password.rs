//! A password as typed by its owner, before hashing.

use secrecy::{ExposeSecret, SecretString};

use super::text;
use crate::error::Result;

/// A password of 8–1,024 characters. The upper bound keeps hashing cheap to
/// refuse; a `SecretString`, so `Debug` never prints it and its memory is
/// zeroed when it is dropped.
#[derive(Debug, Clone)]
pub struct Password(SecretString);

impl Password {
    /// Checks the length; the text itself is kept as typed (no trimming).
    pub fn parse(value: &str) -> Result<Self> {
        text::check_length("password", value, 8, 1024)?;
        Ok(Password(value.into()))
    }

    /// The password's bytes, for the hasher.
    pub fn expose(&self) -> &str {
        self.0.expose_secret()
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
        let secret = format!("{:?}", Password::parse("correct horse").expect("valid"));
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
