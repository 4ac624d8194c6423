//! Owns how text that came from outside (a record's field names, a database's
//! error message quoting a value) is made safe to log and to store.
//!
//! Control characters are written as escapes (`\n`, `\u{1b}`, `\0`), so a
//! crafted value can neither forge a log line, drive a terminal, nor hold a NUL
//! that PostgreSQL `text` refuses; so are Unicode line separators and
//! bidirectional overrides, which can make a line read as another. The result
//! is cut at a length bound.

/// `text` with every control character escaped, at most `max_chars` characters
/// of it (an ellipsis marks a cut).
pub fn escape_untrusted(text: &str, max_chars: usize) -> String {
    let mut escaped = String::with_capacity(text.len().min(max_chars));
    for (taken, character) in text.chars().enumerate() {
        if taken == max_chars {
            escaped.push('…');
            break;
        }
        if character.is_control() || reorders_or_breaks_lines(character) {
            escaped.extend(character.escape_default());
        } else {
            escaped.push(character);
        }
    }
    escaped
}

/// Characters that are not control characters but still break a line in
/// some viewers (U+2028, U+2029) or reorder the text around them (the
/// bidirectional embeddings, overrides and isolates): a log line could be
/// made to read as something else.
fn reorders_or_breaks_lines(character: char) -> bool {
    matches!(
        character,
        '\u{2028}' | '\u{2029}' | '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_become_escapes() {
        assert_eq!(
            escape_untrusted("a\nINFO forged\u{1b}[31m\0b", 100),
            "a\\nINFO forged\\u{1b}[31m\\u{0}b"
        );
    }

    #[test]
    fn long_text_is_cut_with_a_mark() {
        assert_eq!(escape_untrusted("abcdef", 3), "abc…");
        assert_eq!(escape_untrusted("abc", 3), "abc");
    }

    #[test]
    fn line_separators_and_bidirectional_overrides_become_escapes() {
        assert_eq!(
            escape_untrusted("a\u{2028}b\u{2029}c\u{202E}d\u{2066}e", 100),
            "a\\u{2028}b\\u{2029}c\\u{202e}d\\u{2066}e"
        );
    }

    #[test]
    fn printable_unicode_is_kept() {
        assert_eq!(escape_untrusted("größe ✓", 100), "größe ✓");
    }
}
