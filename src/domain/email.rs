//! An email address, in the form it is stored and compared.

use unicode_normalization::UnicodeNormalization;

use super::text::{is_format, text_newtype};
use crate::error::{Error, Result};

/// Longest address SMTP allows (RFC 5321), which also bounds the work a lookup costs.
const MAX_LEN: usize = 254;

/// An email address in normal form: NFKC-normalised and lowercased, so
/// `Café@X.io`, its decomposed spelling and its fullwidth spelling are one
/// account, and uniqueness is case-insensitive.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Email(String);

/// Characters a dot-atom local part may hold besides letters and digits (RFC 5322 `atext`).
const ATEXT_SYMBOLS: &str = "!#$%&'*+/=?^_`{|}~-";

impl Email {
    /// Normalises and checks `value`: a dot-atom local part of at most 64
    /// bytes (no quoted forms), `@`, and a domain of at least two labels, each
    /// 1–63 letters, digits or inner hyphens, with a top-level label that is
    /// not all digits. Non-ASCII letters are allowed (internationalised
    /// addresses); whitespace, control and invisible formatting characters are not.
    pub fn parse(value: &str) -> Result<Self> {
        let email = value.trim().nfkc().collect::<String>().to_lowercase();
        let bad = || Error::bad_input("email", "email must be a valid email address");
        if email.len() > MAX_LEN || email.chars().any(|c| c.is_whitespace() || c.is_control() || is_format(c)) {
            return Err(bad());
        }
        let (local, domain) = email.split_once('@').ok_or_else(bad)?;
        if !local_ok(local) || !domain_ok(domain) {
            return Err(bad());
        }
        Ok(Email(email))
    }
}

fn local_ok(local: &str) -> bool {
    let atext =
        |c: char| c.is_ascii_alphanumeric() || ATEXT_SYMBOLS.contains(c) || (!c.is_ascii() && c.is_alphanumeric());
    (1..=64).contains(&local.len()) && local.split('.').all(|atom| !atom.is_empty() && atom.chars().all(atext))
}

fn domain_ok(domain: &str) -> bool {
    let label_ok = |label: &str| {
        (1..=63).contains(&label.len())
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || (!c.is_ascii() && c.is_alphanumeric()))
    };
    let labels: Vec<&str> = domain.split('.').collect();
    domain.len() <= 253
        && labels.len() >= 2
        && labels.iter().all(|l| label_ok(l))
        && labels.last().is_some_and(|tld| !tld.chars().all(|c| c.is_ascii_digit()))
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

    /// Composed and decomposed `café`, and fullwidth letters, normalise to one address.
    #[test]
    fn unicode_spellings_of_one_address_are_one_address() {
        let composed = Email::parse("caf\u{e9}@example.com").ok();
        assert!(composed.is_some());
        assert_eq!(Email::parse("cafe\u{301}@example.com").ok(), composed);
        assert_eq!(Email::parse("CAF\u{c9}@example.com").ok(), composed);
        assert_eq!(
            Email::parse("\u{ff41}\u{ff4e}\u{ff4e}@example.com").map(Email::into_inner).ok(),
            Some("ann@example.com".into()),
            "fullwidth letters"
        );
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
        fn usual_addresses_parse(
            local in "[A-Za-z0-9_+-]{1,20}(\\.[A-Za-z0-9_+-]{1,20}){0,2}",
            domain in "[A-Za-z0-9]([A-Za-z0-9-]{0,28}[A-Za-z0-9])?(\\.[A-Za-z]{2,6}){1,2}",
        ) {
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
