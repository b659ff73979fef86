//! Names from outside (class names are folder names; run labels, sweep names, config values
//! and paths come from sweep files; error messages and stop reasons from workers) made safe
//! for the report's outputs. They are shown, not reversible: the aim is that every character
//! of a name is visible and inert, and that a name stays in its table cell.
//!
//! - [`for_terminal`]: control characters (C0, DEL, C1: ESC starts ANSI sequences), Unicode
//!   bidi controls (U+061C, U+200E/U+200F, U+202A..U+202E, U+2066..U+2069) and invisible
//!   format characters that can make two names look alike (zero-width space/joiners, word
//!   joiner, BOM, soft hyphen, tag characters, line/paragraph separators...) are written as
//!   Rust-style escapes: `\u{1b}`, `\u{202e}`; newline, carriage return and tab as `\n`, `\r`,
//!   `\t`, so a name stays on one line. A backslash is left as it is. Emoji joined with a
//!   zero-width joiner therefore show their parts and `\u{200d}`.
//! - [`for_markdown`]: the same characters escaped the same way (with the backslash doubled,
//!   so it renders as `\u{1b}`), line breaks (`\n`, `\r\n`, `\r`) as `<br>` so a table row
//!   stays one row, `&`, `<`, `>` as entities (no HTML gets through), and Markdown's inline
//!   punctuation (`\ | * _ [ ] ~ $` and the backtick) backslash-escaped, except an underscore
//!   between two letters or digits (`ankle_boot`), which CommonMark never reads as emphasis.
//!   The result is for inline places (table cells, the middle of a line), not for the start
//!   of a line. Bare URLs are left as they are (GFM may link them).
//!
//! JSON needs neither: serde_json escapes quotes, backslashes and C0 controls, and
//! [`super::json::to_json_string`] also escapes the other characters above as `\uXXXX`.

/// True for the characters that must not reach a terminal or a rendered page as they are:
/// controls (Cc), bidi controls, and invisible format characters.
pub fn is_hidden(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}' // soft hyphen
                | '\u{034F}' // combining grapheme joiner
                | '\u{061C}' // Arabic letter mark (bidi)
                | '\u{115F}' | '\u{1160}' | '\u{3164}' | '\u{FFA0}' // Hangul fillers (blank)
                | '\u{180E}' // Mongolian vowel separator
                | '\u{200B}'..='\u{200F}' // zero-width space, (non-)joiner, LRM, RLM
                | '\u{2028}' | '\u{2029}' // line and paragraph separators
                | '\u{202A}'..='\u{202E}' // bidi embeddings and overrides
                | '\u{2060}'..='\u{2064}' // word joiner, invisible operators
                | '\u{2066}'..='\u{206F}' // bidi isolates, deprecated format characters
                | '\u{FEFF}' // byte order mark / zero-width no-break space
                | '\u{FFF9}'..='\u{FFFB}' // interlinear annotation
                | '\u{E0000}'..='\u{E007F}' // tag characters
        )
}

/// The visible escape of a hidden character: `\n`, `\r`, `\t`, else `\u{..}`.
fn escape(c: char, out: &mut String) {
    match c {
        '\n' => out.push_str("\\n"),
        '\r' => out.push_str("\\r"),
        '\t' => out.push_str("\\t"),
        _ => out.extend(c.escape_unicode()),
    }
}

/// `s` with every hidden character (see the module) written as a visible escape.
pub fn for_terminal(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        if is_hidden(c) {
            escape(c, &mut out);
        } else {
            out.push(c);
        }
    }
    out
}

/// `s` as inline Markdown text that renders as `s` (see the module): no markup, no HTML, no
/// line break that would end a table row.
pub fn for_markdown(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    let mut chars = s.chars().peekable();
    let mut prev = None;
    while let Some(c) = chars.next() {
        let next = chars.peek().copied();
        let word = |c: Option<char>| c.is_some_and(char::is_alphanumeric);
        let intraword = word(prev) && word(next);
        prev = Some(c);
        match c {
            '\r' if next == Some('\n') => {}
            '\n' | '\r' => out.push_str("<br>"),
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            // `ankle_boot`: an underscore between letters or digits never emphasises.
            '_' if intraword => out.push(c),
            '\\' | '|' | '`' | '*' | '_' | '[' | ']' | '~' | '$' => {
                out.push('\\');
                out.push(c);
            }
            c if is_hidden(c) => {
                let mut e = String::new();
                escape(c, &mut e);
                out.push_str(&e.replace('\\', "\\\\"));
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn terminal_text_has_no_control_or_bidi_characters() {
        assert_eq!(for_terminal("\u{1b}[31mred"), "\\u{1b}[31mred");
        assert_eq!(for_terminal("\u{202e}evil"), "\\u{202e}evil");
        assert_eq!(for_terminal("x\ny\tz\r"), "x\\ny\\tz\\r");
        assert_eq!(for_terminal("a\u{9b}b\u{7f}"), "a\\u{9b}b\\u{7f}");
        assert_eq!(for_terminal("pa\u{200b}ypal"), "pa\\u{200b}ypal");
        assert_eq!(for_terminal("\u{2066}x\u{2069}"), "\\u{2066}x\\u{2069}");
        assert_eq!(for_terminal("tag\u{e0041}"), "tag\\u{e0041}");
        // Ordinary names, markup and non-Latin scripts pass unchanged.
        for s in [
            "ankle_boot",
            "a|b <i>",
            "chat été",
            "猫",
            "кот",
            "café ☕",
            "a\\b",
        ] {
            assert_eq!(for_terminal(s), s);
        }
    }

    #[test]
    fn markdown_text_is_inert() {
        assert_eq!(for_markdown("a|b"), "a\\|b");
        assert_eq!(for_markdown("x\ny\r\nz\rw"), "x<br>y<br>z<br>w");
        assert_eq!(for_markdown("`code`"), "\\`code\\`");
        assert_eq!(
            for_markdown("<script>alert(1)</script>"),
            "&lt;script&gt;alert(1)&lt;/script&gt;"
        );
        assert_eq!(for_markdown("a & b"), "a &amp; b");
        assert_eq!(for_markdown("*_[x](y)_*"), "\\*\\_\\[x\\](y)\\_\\*");
        assert_eq!(for_markdown("a _b_ c__d"), "a \\_b\\_ c\\_\\_d");
        assert_eq!(for_markdown("~~$x$~~"), "\\~\\~\\$x\\$\\~\\~");
        assert_eq!(for_markdown("a\\|b"), "a\\\\\\|b");
        assert_eq!(for_markdown("\u{1b}[31mred"), "\\\\u{1b}\\[31mred");
        assert_eq!(for_markdown("\u{202e}evil\t"), "\\\\u{202e}evil\\\\t");
        for s in [
            "ankle-boot",
            "ankle_boot",
            "chat_été",
            "猫 0.5",
            "class 1.2",
        ] {
            assert_eq!(for_markdown(s), s);
        }
    }
}
