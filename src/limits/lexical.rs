//! One lexical pass over a GraphQL document before anything parses it.
//!
//! async-graphql's parser recurses once per `[` or `{` in a value (lists and
//! input objects in arguments, variable defaults and directive arguments)
//! with no limit of its own, so 1,600 nested `[` in a 3 KB request overflow
//! a Tokio worker's stack and abort the process. Its cost also grows with
//! the token count, not the byte count: a 1 MiB body of `[]` is half a
//! million tokens and about a second of CPU. This pass walks the bytes once,
//! skipping strings, block strings and comments exactly as the GraphQL
//! lexer does, and refuses a document that nests `{`, `[` or `(` deeper than
//! a bound or has more tokens than a bound. It allocates nothing and runs in
//! time linear in the text, so the refusal costs less than reading the body.

/// Why a document was refused before parsing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LexicalError {
    /// `{`, `[` and `(` nest deeper than the bound.
    TooDeep {
        /// The bound that was passed.
        max: usize,
    },
    /// More tokens than the bound.
    TooManyTokens {
        /// The bound that was passed.
        max: usize,
    },
}

impl std::fmt::Display for LexicalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            LexicalError::TooDeep { max } => {
                write!(f, "the document nests brackets, braces or parentheses more than {max} levels deep")
            }
            LexicalError::TooManyTokens { max } => write!(f, "the document has more than {max} tokens"),
        }
    }
}

/// What one pass measured of a document that passed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Shape {
    /// Lexical tokens (names, numbers, strings, punctuators; `...` is one).
    pub tokens: usize,
    /// Deepest nesting of `{`, `[` and `(` together.
    pub depth: usize,
}

/// The bounds [`scan`] enforces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Bounds {
    /// Deepest nesting of `{`, `[` and `(` together.
    pub max_depth: usize,
    /// Most tokens.
    pub max_tokens: usize,
}

/// Measures `text` and refuses it as soon as it passes either bound.
///
/// Brackets inside strings, block strings and comments do not count. An
/// unbalanced or unterminated document is not refused here: the parser
/// reports it, and whatever it would read is already within the bounds.
pub fn scan(text: &str, bounds: Bounds) -> Result<Shape, LexicalError> {
    let bytes = text.as_bytes();
    let mut shape = Shape::default();
    let mut depth = 0usize;
    let mut i = 0;
    let token = |shape: &mut Shape| {
        shape.tokens += 1;
        if shape.tokens > bounds.max_tokens {
            return Err(LexicalError::TooManyTokens { max: bounds.max_tokens });
        }
        Ok(())
    };
    while i < bytes.len() {
        let b = bytes[i];
        match b {
            // Ignored tokens: white space, line terminators, commas.
            b' ' | b'\t' | b'\n' | b'\r' | b',' => i += 1,
            b'#' => {
                while i < bytes.len() && bytes[i] != b'\n' && bytes[i] != b'\r' {
                    i += 1;
                }
            }
            b'"' => {
                token(&mut shape)?;
                i = if bytes[i..].starts_with(b"\"\"\"") {
                    skip_block_string(bytes, i + 3)
                } else {
                    skip_string(bytes, i + 1)
                };
            }
            b'{' | b'[' | b'(' => {
                token(&mut shape)?;
                depth += 1;
                if depth > bounds.max_depth {
                    return Err(LexicalError::TooDeep { max: bounds.max_depth });
                }
                shape.depth = shape.depth.max(depth);
                i += 1;
            }
            b'}' | b']' | b')' => {
                token(&mut shape)?;
                depth = depth.saturating_sub(1);
                i += 1;
            }
            b'.' if bytes[i..].starts_with(b"...") => {
                token(&mut shape)?;
                i += 3;
            }
            b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'-' | b'+' => {
                // A name or a number (with its fraction and exponent): one token.
                token(&mut shape)?;
                i += 1;
                while i < bytes.len() && matches!(bytes[i], b'_' | b'a'..=b'z' | b'A'..=b'Z' | b'0'..=b'9' | b'.') {
                    // An exponent's sign belongs to the number.
                    let signed = matches!(bytes[i], b'e' | b'E') && matches!(bytes.get(i + 1), Some(b'+' | b'-'));
                    i += if signed { 2 } else { 1 };
                }
            }
            // Every other byte is a punctuator, the BOM, or something the
            // parser refuses; each counts as a token so nothing is free.
            _ => {
                token(&mut shape)?;
                i += utf8_len(b);
            }
        }
    }
    Ok(shape)
}

/// The index just past a quoted string that starts before `i` (escapes
/// skipped; a line terminator ends it, as the parser will refuse it anyway).
fn skip_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return i + 1,
            b'\n' | b'\r' => return i,
            _ => i += 1,
        }
    }
    bytes.len()
}

/// The index just past a block string whose opening `"""` ends before `i`
/// (`\"""` is an escaped quote triple, not the end).
fn skip_block_string(bytes: &[u8], mut i: usize) -> usize {
    while i < bytes.len() {
        if bytes[i..].starts_with(b"\\\"\"\"") {
            i += 4;
        } else if bytes[i..].starts_with(b"\"\"\"") {
            return i + 3;
        } else {
            i += 1;
        }
    }
    bytes.len()
}

/// The length of the UTF-8 sequence a leading byte starts (1 for anything else).
fn utf8_len(b: u8) -> usize {
    match b {
        0xF0..=0xF7 => 4,
        0xE0..=0xEF => 3,
        0xC0..=0xDF => 2,
        _ => 1,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    const BOUNDS: Bounds = Bounds { max_depth: 32, max_tokens: 1000 };

    /// An ordinary query is measured: its tokens and its deepest nesting.
    #[test]
    fn measures_a_query() {
        let shape = scan("query Q($n: Int = 3) { posts(first: $n) { edges { node { id } } } }", BOUNDS);
        // query Q ( $ n : Int = 3 ) { posts ( first : $ n ) { edges { node { id } } } }
        assert_eq!(shape, Ok(Shape { tokens: 28, depth: 4 }));
    }

    /// Every nesting form from the security review is refused at the bound:
    /// lists, input objects, in a variable default and in a directive argument.
    #[test]
    fn refuses_deep_values_in_every_position() {
        let deep = |open: &str, close: &str, n: usize| format!("{}{}", open.repeat(n), close.repeat(n));
        let lists = deep("[", "]", 1600);
        let objects = deep("{a:", "}", 2048);
        for doc in [
            format!("{{ __typename(a: {lists}) }}"),
            format!("{{ __typename(a: {objects}) }}"),
            format!("query($v: [Int] = {lists}) {{ __typename }}"),
            format!("{{ __typename @skip(if: {lists}) }}"),
            format!("{{ {} }}", deep("a {", "}", 100)),
        ] {
            assert_eq!(scan(&doc, Bounds { max_tokens: usize::MAX, ..BOUNDS }), Err(LexicalError::TooDeep { max: 32 }));
        }
    }

    /// Brackets inside strings, block strings (with an escaped triple quote) and comments do not count.
    #[test]
    fn skips_strings_and_comments() {
        let inner = "[".repeat(100);
        let doc = format!("{{ a(s: \"{inner}\\\"{inner}\", b: \"\"\"{inner} \\\"\"\" {inner}\"\"\") # {inner}\n b }}");
        assert_eq!(scan(&doc, BOUNDS).map(|s| s.depth), Ok(2));
    }

    /// The token bound counts punctuators one by one, so a flood of `[]` is refused early.
    #[test]
    fn refuses_token_floods() {
        let doc = format!("{{ a(b: [{}]) }}", "[]".repeat(600));
        assert_eq!(scan(&doc, BOUNDS), Err(LexicalError::TooManyTokens { max: 1000 }));
        assert!(scan("{ a(b: 1.5e+10, c: -3) ...F }", BOUNDS).is_ok_and(|s| s.tokens == 13));
    }

    proptest! {
        /// On any text the pass ends, never panics, and never reports more than it allows.
        #[test]
        fn total_on_any_text(text in ".{0,400}") {
            if let Ok(shape) = scan(&text, BOUNDS) {
                prop_assert!(shape.depth <= BOUNDS.max_depth && shape.tokens <= BOUNDS.max_tokens);
            }
        }

        /// Nesting depth is exactly the count of opened brackets for a plain nest.
        #[test]
        fn depth_is_exact(n in 0usize..60) {
            let doc = format!("{}{}", "[".repeat(n), "]".repeat(n));
            let result = scan(&doc, BOUNDS);
            if n > 32 {
                prop_assert_eq!(result, Err(LexicalError::TooDeep { max: 32 }));
            } else {
                prop_assert_eq!(result, Ok(Shape { tokens: 2 * n, depth: n }));
            }
        }
    }
}
