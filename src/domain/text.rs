//! The length and character rules every free-text newtype shares.

use crate::error::{Error, Result};

/// Checks `value`'s length in characters (not bytes: names are often
/// non-ASCII) and refuses NUL, which some clients and stores truncate at.
pub(super) fn check(field: &'static str, value: &str, min: usize, max: usize) -> Result<()> {
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
