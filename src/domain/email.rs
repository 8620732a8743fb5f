//! An email address, in the form it is stored and compared.

use super::text::text_newtype;
use crate::error::{Error, Result};

/// Longest address SMTP allows (RFC 5321), which also bounds the work a lookup costs.
const MAX_LEN: usize = 254;

/// A plausible email address, trimmed and lowercased, so uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

impl Email {
    /// Normalises and checks `value`: one `@`, a non-empty local part of at
    /// most 64 characters, a dotted domain, no whitespace or control characters.
    pub fn parse(value: &str) -> Result<Self> {
        let email = value.trim().to_lowercase();
        let bad = || Error::bad_input("email", "email must be a valid email address");
        if email.len() > MAX_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || local.len() > 64 || !domain_ok {
            return Err(bad());
        }
        Ok(Email(email))
    }
}

text_newtype!(Email);

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Addresses are trimmed and lowercased, so `Ann@X.io` and `ann@x.io` are one account.
    #[test]
    fn normalises_case_and_whitespace() {
        assert_eq!(Email::parse("  Ann@Example.COM ").map(Email::into_inner).ok(), Some("ann@example.com".into()));
    }

    /// The shapes the API promised to refuse are refused.
    #[test]
    fn refuses_malformed_addresses() {
        for bad in
            ["", "not-an-email", "a@b", "a b@c.io", "@c.io", "a@.io", "a@c.", "a@c..io", "a@b@c.io", "a\u{1}@c.io"]
        {
            assert!(Email::parse(bad).is_err(), "{bad:?}");
        }
        assert!(Email::parse(&format!("{}@c.io", "a".repeat(65))).is_err());
        assert!(Email::parse(&format!("a@{}.io", "b".repeat(260))).is_err());
    }

    proptest! {
        /// Every address of the usual shape parses, to its lowercase form, idempotently.
        #[test]
        fn usual_addresses_parse(local in "[A-Za-z0-9._+-]{1,64}", domain in "[A-Za-z0-9-]{1,30}(\\.[A-Za-z]{2,6}){1,2}") {
            let raw = format!("{local}@{domain}");
            let parsed = Email::parse(&raw).map_err(|e| TestCaseError::fail(e.to_string()))?;
            prop_assert_eq!(parsed.as_str(), raw.to_lowercase());
            prop_assert_eq!(Email::parse(parsed.as_str()).ok(), Some(parsed.clone()));
        }

        /// Nothing containing inner whitespace is ever accepted.
        #[test]
        fn inner_whitespace_is_refused(a in "[a-z]{1,10}", b in "[a-z]{1,10}", ws in "[ \t\u{a0}]") {
            let raw = format!("{a}{ws}{b}@example.com");
            prop_assert!(Email::parse(&raw).is_err());
        }
    }
}
