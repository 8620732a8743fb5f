//! The length and character rules every free-text newtype shares.

use crate::error::{Error, Result};
use unicode_properties::{GeneralCategory, UnicodeGeneralCategory};

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

/// Refuses, in a one-line text such as a name or a title, what only serves
/// to impersonate or hide: line breaks and tabs, the bidirectional overrides
/// and isolates (U+202A–U+202E, U+2066–U+2069), and invisible formatting
/// characters (Unicode category Cf) outside the sequences that need them.
///
/// Those sequences are real users' text and are accepted: the zero-width
/// joiner inside emoji (`👩‍💻`, `🏳️‍🌈`, `👨‍👩‍👧`) and Indic conjuncts, the
/// zero-width non-joiner that Persian writes inside ordinary words
/// (`می‌خواهم`), the tag characters of subdivision flags (`🏴󠁧󠁢󠁥󠁮󠁧󠁿`), and
/// the visible prepended marks of Arabic and other scripts (U+0600–U+0605, ...).
pub(super) fn single_line_visible(field: &'static str, value: &str) -> Result<()> {
    if value.contains(['\n', '\t']) || misuses_format(value) {
        return Err(Error::bad_input(field, format!("{field} must not contain invisible or formatting characters")));
    }
    Ok(())
}

/// Whether `value` holds a format character where no script or emoji
/// sequence needs one (see [`single_line_visible`]).
pub(super) fn misuses_format(value: &str) -> bool {
    let chars: Vec<char> = value.chars().collect();
    chars.iter().enumerate().any(|(i, &c)| {
        if !is_format(c) {
            return false;
        }
        let before = i.checked_sub(1).map(|j| chars[j]);
        let after = chars.get(i + 1).copied();
        match c as u32 {
            // Joiners: only inside a run of visible characters (an emoji
            // sequence, a conjunct, a word), never at an edge, doubled, or
            // beside white space.
            0x200C | 0x200D | 0x13430..=0x1343F | 0x1BCA0..=0x1BCA3 => !(joinable(before) && joinable(after)),
            // Tags: only after a black flag or another tag, and a run of them
            // ends with CANCEL TAG (U+E007F).
            0xE0020..=0xE007F => {
                let opened = matches!(before, Some('\u{1F3F4}')) || before.is_some_and(is_tag);
                let closes = chars[i..].iter().take_while(|c| is_tag(**c)).last() == Some(&'\u{E007F}');
                !(opened && closes)
            }
            // Prepended concatenation marks render visibly with what follows.
            0x0600..=0x0605 | 0x06DD | 0x070F | 0x0890..=0x0891 | 0x08E2 | 0x110BD | 0x110CD => {
                !after.is_some_and(|a| !a.is_whitespace() && !is_format(a))
            }
            // Everything else in Cf: bidi overrides, isolates and marks,
            // zero-width spaces, word joiners, the BOM, soft hyphens, ...
            _ => true,
        }
    })
}

/// Whether `c` may stand beside a joiner: present, visible, and not itself a format character.
fn joinable(c: Option<char>) -> bool {
    c.is_some_and(|c| !c.is_whitespace() && !c.is_control() && !is_format(c))
}

/// Whether `c` is a tag character (U+E0020–U+E007F).
fn is_tag(c: char) -> bool {
    matches!(c as u32, 0xE0020..=0xE007F)
}

/// Whether `c` is in Unicode's general category Cf (format), from the
/// Unicode tables of `unicode-properties` rather than a hand-kept list,
/// which went stale with each Unicode version.
pub(super) fn is_format(c: char) -> bool {
    c.general_category() == GeneralCategory::Format
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

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    /// Cf comes from Unicode's tables: the format controls the old hand-kept list named are still
    /// format characters, and letters, marks, emoji and spaces are not.
    #[test]
    fn format_characters_come_from_the_unicode_tables() {
        for c in [
            '\u{AD}',
            '\u{200B}',
            '\u{200D}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{110BD}',
            '\u{E0001}',
            '\u{E007F}',
        ] {
            assert!(is_format(c), "U+{:04X}", c as u32);
        }
        for c in ['a', 'ë', '\u{301}', '👩', ' ', '\u{3000}', 'ی'] {
            assert!(!is_format(c), "U+{:04X}", c as u32);
        }
    }

    /// Real users' text with joiners, non-joiners and tags is accepted.
    #[test]
    fn accepts_the_sequences_scripts_and_emoji_need() {
        for good in [
            "Zoë 👩\u{200d}💻",
            "🏳\u{fe0f}\u{200d}🌈",
            "👨\u{200d}👩\u{200d}👧",
            "می\u{200c}خواهم",
            "\u{1F3F4}\u{E0067}\u{E0062}\u{E0065}\u{E006E}\u{E0067}\u{E007F} England",
            "क्\u{200d}ष",
            "\u{0600}123",
            "plain text",
        ] {
            assert!(!misuses_format(good), "{good:?} should be accepted");
            assert!(single_line_visible("name", good).is_ok());
        }
    }

    /// What spoofs or hides is refused: every bidi override and isolate,
    /// zero-width spaces, joiners at an edge, doubled or beside a space, stray tags.
    #[test]
    fn refuses_what_spoofs_or_hides() {
        let mut bad: Vec<String> =
            (0x202A..=0x202E).chain(0x2066..=0x2069).filter_map(char::from_u32).map(|c| format!("abc{c}def")).collect();
        bad.extend(
            [
                "a\u{200b}b",
                "\u{200d}ab",
                "ab\u{200c}",
                "a\u{200d}\u{200d}b",
                "a \u{200d}b",
                "a\u{200e}b",
                "\u{feff}ab",
                "a\u{2060}b",
                "a\u{E0067}b",
                "\u{1F3F4}\u{E0067}\u{E0062} no cancel tag",
                "a\u{00ad}b",
                "\u{0600} ",
                "a\nb",
            ]
            .map(String::from),
        );
        for text in &bad {
            assert!(single_line_visible("name", text).is_err(), "{text:?} should be refused");
        }
    }

    proptest! {
        /// Any text with a bidirectional override or isolate is refused, wherever it stands.
        #[test]
        fn bidi_controls_are_always_refused(
            prefix in "\\PC{0,10}",
            suffix in "\\PC{0,10}",
            control in prop::sample::select(vec![0x202Au32, 0x202B, 0x202C, 0x202D, 0x202E, 0x2066, 0x2067, 0x2068, 0x2069]),
        ) {
            let c = char::from_u32(control).unwrap_or('\u{202E}');
            let text = format!("{prefix}{c}{suffix}");
            prop_assert!(misuses_format(&text));
        }

        /// A joiner between two letters is accepted, and the text with it
        /// moved to the front is refused.
        #[test]
        fn joiners_between_letters_are_accepted(a in "[a-zà-ÿ]{1,5}", b in "[a-zà-ÿ]{1,5}", zwj in any::<bool>()) {
            let j = if zwj { '\u{200d}' } else { '\u{200c}' };
            let joined = format!("{a}{j}{b}");
            let leading = format!("{j}{a}{b}");
            prop_assert!(!misuses_format(&joined));
            prop_assert!(misuses_format(&leading));
        }
    }
}
