//! The length and character rules every free-text newtype shares.

use crate::error::{Error, Result};

/// Checks `value`'s length in characters (not bytes: names are often
/// non-ASCII) and refuses NUL, which truncates strings in some clients.
pub(super) fn check_length(field: &'static str, value: &str, min: usize, max: usize) -> Result<()> {
    let n = value.chars().count();
    if n < min || n > max {
        let msg = if min == 0 {
            format!("{field} must be at most {max} characters")
        } else {
            format!("{field} must be between {min} and {max} characters")
        };
        return Err(Error::bad_input(field, msg));
    }
    if value.contains('\0') {
        return Err(Error::bad_input(field, format!("{field} must not contain NUL characters")));
    }
    Ok(())
}

/// [`check_length`], and no control characters other than tab and newline:
/// they render as nothing, and JSON escapes each to six bytes.
pub(super) fn check(field: &'static str, value: &str, min: usize, max: usize) -> Result<()> {
    check_length(field, value, min, max)?;
    if value.chars().any(|c| c.is_control() && c != '\t' && c != '\n') {
        return Err(Error::bad_input(field, format!("{field} must not contain control characters")));
    }
    Ok(())
}

/// Refuses invisible formatting characters (Unicode category Cf: zero-width
/// spaces, bidirectional overrides, ...) and line breaks in a one-line text
/// such as a name or a title, where they only serve to impersonate or hide.
pub(super) fn single_line_visible(field: &'static str, value: &str) -> Result<()> {
    if value.chars().any(|c| is_format(c) || c == '\n' || c == '\t') {
        return Err(Error::bad_input(field, format!("{field} must not contain invisible or formatting characters")));
    }
    Ok(())
}

/// Whether `c` is in Unicode's general category Cf (format).
pub(super) fn is_format(c: char) -> bool {
    matches!(c as u32,
        0x00AD | 0x0600..=0x0605 | 0x061C | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2 | 0x180E
        | 0x200B..=0x200F | 0x202A..=0x202E | 0x2060..=0x2064 | 0x2066..=0x206F | 0xFEFF | 0xFFF9..=0xFFFB
        | 0x110BD | 0x110CD | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 | 0x1D173..=0x1D17A | 0xE0001
        | 0xE0020..=0xE007F)
}

/// Refuses text that is empty or only whitespace, with the message clients see.
pub(super) fn not_blank(field: &'static str, value: &str) -> Result<()> {
    if value.trim().is_empty() {
        return Err(Error::bad_input(field, format!("{field} must not be blank")));
    }
    Ok(())
}

/// Implements the read-only accessors every text newtype offers.
macro_rules! text_newtype {
    ($name:ident) => {
        impl $name {
            /// The validated text.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The validated text, owned.
            pub fn into_inner(self) -> String {
                self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }
    };
}
pub(super) use text_newtype;
