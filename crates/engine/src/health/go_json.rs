//! JSON read the way Go's `encoding/json` reads it, for the few places where Argo CD parses a
//! JSON text itself (not through the API server) and shows Go's error text to its users.
//!
//! Go first checks the whole text with its scanner, so a syntax error anywhere wins over a
//! type error; [`check_valid`] does that with the scanner's messages. A text that passed can
//! then be walked with [`Cursor`], which keeps duplicate keys in document order as Go's
//! decoder sees them (a parsed `serde_json::Value` would merge them) and decodes strings as
//! Go does (a lone surrogate escape becomes U+FFFD instead of being an error).

/// Go's `maxNestingDepth`: deeper texts are refused by its scanner.
const MAX_DEPTH: usize = 10_000;

/// What Go's `encoding/json` says about a text it cannot read into the value it was given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GoJsonError {
    #[error("invalid character {} {context}", quote_char(*.byte))]
    InvalidCharacter { byte: u8, context: String },
    #[error("unexpected end of JSON input")]
    UnexpectedEnd,
    /// A value of the wrong JSON kind for a Go type (`value` is Go's word for the kind).
    #[error("json: cannot unmarshal {value} into Go value of type {go_type}")]
    CannotUnmarshal {
        value: &'static str,
        go_type: &'static str,
    },
    /// The same, for a field of a Go struct.
    #[error(
        "json: cannot unmarshal {value} into Go struct field {go_struct}.{field} of type {go_type}"
    )]
    CannotUnmarshalField {
        value: &'static str,
        go_struct: &'static str,
        field: &'static str,
        go_type: &'static str,
    },
}

fn invalid(byte: u8, context: impl Into<String>) -> GoJsonError {
    GoJsonError::InvalidCharacter {
        byte,
        context: context.into(),
    }
}

/// A byte as Go's scanner quotes it in a message: a Go rune literal of the byte read as a
/// Latin-1 code point (so the first byte of a multi-byte character shows as that code point).
fn quote_char(byte: u8) -> String {
    match byte {
        b'\'' => r"'\''".to_string(),
        b'"' => "'\"'".to_string(),
        b'\\' => r"'\\'".to_string(),
        0x07 => r"'\a'".to_string(),
        0x08 => r"'\b'".to_string(),
        0x0c => r"'\f'".to_string(),
        b'\n' => r"'\n'".to_string(),
        b'\r' => r"'\r'".to_string(),
        b'\t' => r"'\t'".to_string(),
        0x0b => r"'\v'".to_string(),
        0x00..=0x1f | 0x7f => format!(r"'\x{byte:02x}'"),
        // Go's strconv.IsPrint is false for these Latin-1 code points (C1 controls,
        // no-break space, soft hyphen).
        0x80..=0xa0 | 0xad => format!(r"'\u{byte:04x}'"),
        _ => format!("'{}'", char::from(byte)),
    }
}

fn is_space(byte: u8) -> bool {
    matches!(byte, b' ' | b'\t' | b'\r' | b'\n')
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Parse {
    ObjectKey,
    ObjectValue,
    ArrayValue,
}

#[derive(Debug, Clone, Copy)]
enum State {
    BeginValue,
    BeginValueOrEmpty,
    BeginStringOrEmpty,
    BeginString,
    EndValue,
    EndTop,
    InString,
    InStringEsc,
    /// Inside `\u`, with this many hex digits read.
    InStringEscU(u8),
    Neg,
    One,
    Zero,
    Dot,
    Dot0,
    E,
    ESign,
    E0,
    /// Inside `true`, `false` or `null`, with this many bytes read.
    Literal(&'static str, usize),
}

/// Go's scanner: one state per byte, a stack of open containers.
struct Scanner {
    state: State,
    stack: Vec<Parse>,
    end_top: bool,
}

impl Scanner {
    fn push(&mut self, byte: u8, parse: Parse, next: State) -> Result<(), GoJsonError> {
        self.stack.push(parse);
        if self.stack.len() > MAX_DEPTH {
            return Err(invalid(byte, "exceeded max depth"));
        }
        self.state = next;
        Ok(())
    }

    fn pop(&mut self) {
        self.stack.pop();
        if self.stack.is_empty() {
            self.state = State::EndTop;
            self.end_top = true;
        } else {
            self.state = State::EndValue;
        }
    }

    fn step(&mut self, c: u8) -> Result<(), GoJsonError> {
        // Some states end on a byte that belongs to the next one (a number ends on what
        // follows it): they switch state and `continue` to look at the same byte again.
        loop {
            match self.state {
                State::BeginValueOrEmpty => {
                    if is_space(c) {
                        return Ok(());
                    }
                    self.state = if c == b']' {
                        State::EndValue
                    } else {
                        State::BeginValue
                    };
                }
                State::BeginValue => {
                    if is_space(c) {
                        return Ok(());
                    }
                    match c {
                        b'{' => self.push(c, Parse::ObjectKey, State::BeginStringOrEmpty)?,
                        b'[' => self.push(c, Parse::ArrayValue, State::BeginValueOrEmpty)?,
                        b'"' => self.state = State::InString,
                        b'-' => self.state = State::Neg,
                        b'0' => self.state = State::Zero,
                        b'1'..=b'9' => self.state = State::One,
                        b't' => self.state = State::Literal("true", 1),
                        b'f' => self.state = State::Literal("false", 1),
                        b'n' => self.state = State::Literal("null", 1),
                        _ => return Err(invalid(c, "looking for beginning of value")),
                    }
                    return Ok(());
                }
                State::BeginStringOrEmpty => {
                    if is_space(c) {
                        return Ok(());
                    }
                    if c == b'}' {
                        if let Some(top) = self.stack.last_mut() {
                            *top = Parse::ObjectValue;
                        }
                        self.state = State::EndValue;
                    } else {
                        self.state = State::BeginString;
                    }
                }
                State::BeginString => {
                    if is_space(c) {
                        return Ok(());
                    }
                    if c == b'"' {
                        self.state = State::InString;
                        return Ok(());
                    }
                    return Err(invalid(c, "looking for beginning of object key string"));
                }
                State::EndValue => {
                    let Some(top) = self.stack.last_mut() else {
                        self.state = State::EndTop;
                        self.end_top = true;
                        continue;
                    };
                    if is_space(c) {
                        return Ok(());
                    }
                    match (*top, c) {
                        (Parse::ObjectKey, b':') => {
                            *top = Parse::ObjectValue;
                            self.state = State::BeginValue;
                        }
                        (Parse::ObjectKey, _) => return Err(invalid(c, "after object key")),
                        (Parse::ObjectValue, b',') => {
                            *top = Parse::ObjectKey;
                            self.state = State::BeginString;
                        }
                        (Parse::ObjectValue, b'}') | (Parse::ArrayValue, b']') => self.pop(),
                        (Parse::ObjectValue, _) => {
                            return Err(invalid(c, "after object key:value pair"));
                        }
                        (Parse::ArrayValue, b',') => self.state = State::BeginValue,
                        (Parse::ArrayValue, _) => return Err(invalid(c, "after array element")),
                    }
                    return Ok(());
                }
                State::EndTop => {
                    if is_space(c) {
                        return Ok(());
                    }
                    return Err(invalid(c, "after top-level value"));
                }
                State::InString => {
                    match c {
                        b'"' => self.state = State::EndValue,
                        b'\\' => self.state = State::InStringEsc,
                        0x00..=0x1f => return Err(invalid(c, "in string literal")),
                        _ => {}
                    }
                    return Ok(());
                }
                State::InStringEsc => {
                    match c {
                        b'b' | b'f' | b'n' | b'r' | b't' | b'\\' | b'/' | b'"' => {
                            self.state = State::InString;
                        }
                        b'u' => self.state = State::InStringEscU(0),
                        _ => return Err(invalid(c, "in string escape code")),
                    }
                    return Ok(());
                }
                State::InStringEscU(read) => {
                    if !c.is_ascii_hexdigit() {
                        return Err(invalid(c, r"in \u hexadecimal character escape"));
                    }
                    self.state = if read == 3 {
                        State::InString
                    } else {
                        State::InStringEscU(read + 1)
                    };
                    return Ok(());
                }
                State::Neg => {
                    match c {
                        b'0' => self.state = State::Zero,
                        b'1'..=b'9' => self.state = State::One,
                        _ => return Err(invalid(c, "in numeric literal")),
                    }
                    return Ok(());
                }
                State::One => {
                    if c.is_ascii_digit() {
                        return Ok(());
                    }
                    self.state = State::Zero;
                }
                State::Zero => match c {
                    b'.' => {
                        self.state = State::Dot;
                        return Ok(());
                    }
                    b'e' | b'E' => {
                        self.state = State::E;
                        return Ok(());
                    }
                    _ => self.state = State::EndValue,
                },
                State::Dot => {
                    if !c.is_ascii_digit() {
                        return Err(invalid(c, "after decimal point in numeric literal"));
                    }
                    self.state = State::Dot0;
                    return Ok(());
                }
                State::Dot0 => match c {
                    b'0'..=b'9' => return Ok(()),
                    b'e' | b'E' => {
                        self.state = State::E;
                        return Ok(());
                    }
                    _ => self.state = State::EndValue,
                },
                State::E => {
                    if c == b'+' || c == b'-' {
                        self.state = State::ESign;
                        return Ok(());
                    }
                    self.state = State::ESign;
                }
                State::ESign => {
                    if !c.is_ascii_digit() {
                        return Err(invalid(c, "in exponent of numeric literal"));
                    }
                    self.state = State::E0;
                    return Ok(());
                }
                State::E0 => {
                    if c.is_ascii_digit() {
                        return Ok(());
                    }
                    self.state = State::EndValue;
                }
                State::Literal(word, read) => {
                    let expected = word.as_bytes()[read];
                    if c != expected {
                        return Err(invalid(
                            c,
                            format!("in literal {word} (expecting {})", quote_char(expected)),
                        ));
                    }
                    self.state = if read + 1 == word.len() {
                        State::EndValue
                    } else {
                        State::Literal(word, read + 1)
                    };
                    return Ok(());
                }
            }
        }
    }
}

/// Go's `checkValid`: whether `text` is one JSON value, with Go's message when it is not.
pub fn check_valid(text: &str) -> Result<(), GoJsonError> {
    let mut scanner = Scanner {
        state: State::BeginValue,
        stack: Vec::new(),
        end_top: false,
    };
    for &byte in text.as_bytes() {
        scanner.step(byte)?;
    }
    if scanner.end_top {
        return Ok(());
    }
    // Go feeds one space at the end so that a number or literal in progress either ends or
    // reports what it was still expecting.
    scanner.step(b' ')?;
    if scanner.end_top {
        Ok(())
    } else {
        Err(GoJsonError::UnexpectedEnd)
    }
}

/// The JSON kinds as Go names them in its type errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Object,
    Array,
    String,
    Number,
    Bool,
    Null,
}

impl Kind {
    /// Go's word for this kind in "cannot unmarshal … into".
    pub fn go_word(self) -> &'static str {
        match self {
            Kind::Object => "object",
            Kind::Array => "array",
            Kind::String => "string",
            Kind::Number => "number",
            Kind::Bool => "bool",
            Kind::Null => "null",
        }
    }
}

/// A walk over a text that [`check_valid`] accepted; on any other text its answers are
/// unspecified (but it never panics).
pub struct Cursor<'a> {
    bytes: &'a [u8],
    pos: usize,
}

impl<'a> Cursor<'a> {
    /// The cursor over `text`, or Go's syntax error for it.
    pub fn new(text: &'a str) -> Result<Self, GoJsonError> {
        check_valid(text)?;
        Ok(Self {
            bytes: text.as_bytes(),
            pos: 0,
        })
    }

    fn skip_space(&mut self) {
        while self.bytes.get(self.pos).copied().is_some_and(is_space) {
            self.pos += 1;
        }
    }

    /// The kind of the next value (after any space).
    pub fn peek_kind(&mut self) -> Kind {
        self.skip_space();
        match self.bytes.get(self.pos) {
            Some(b'{') => Kind::Object,
            Some(b'[') => Kind::Array,
            Some(b'"') => Kind::String,
            Some(b't' | b'f') => Kind::Bool,
            Some(b'n') => Kind::Null,
            _ => Kind::Number,
        }
    }

    /// Enters the object or array the cursor is at and says whether it has a first member.
    pub fn enter(&mut self) -> bool {
        self.skip_space();
        self.pos += 1;
        self.skip_space();
        !matches!(self.bytes.get(self.pos), Some(b'}' | b']'))
    }

    /// After a member: whether another follows (else the container is left).
    pub fn next_member(&mut self) -> bool {
        self.skip_space();
        let more = self.bytes.get(self.pos) == Some(&b',');
        self.pos += 1;
        more
    }

    /// Leaves an empty container entered with [`Cursor::enter`].
    pub fn leave_empty(&mut self) {
        self.skip_space();
        self.pos += 1;
    }

    /// Reads an object key and the colon after it.
    pub fn key(&mut self) -> String {
        let key = self.string();
        self.skip_space();
        self.pos += 1;
        key
    }

    /// Reads a string as Go decodes it.
    pub fn string(&mut self) -> String {
        self.skip_space();
        self.pos += 1;
        let mut out = String::new();
        let mut run = self.pos;
        while let Some(&byte) = self.bytes.get(self.pos) {
            match byte {
                b'"' => {
                    out.push_str(self.text(run, self.pos));
                    self.pos += 1;
                    return out;
                }
                b'\\' => {
                    out.push_str(self.text(run, self.pos));
                    self.escape(&mut out);
                    run = self.pos;
                }
                _ => self.pos += 1,
            }
        }
        out.push_str(self.text(run, self.pos));
        out
    }

    /// The input between two positions that lie on character boundaries (quotes and
    /// backslashes are ASCII, so every run between them is whole characters).
    fn text(&self, from: usize, to: usize) -> &'a str {
        self.bytes
            .get(from..to)
            .and_then(|run| std::str::from_utf8(run).ok())
            .unwrap_or("")
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let digits = self.bytes.get(at..at + 4)?;
        u32::from_str_radix(std::str::from_utf8(digits).ok()?, 16).ok()
    }

    fn escape(&mut self, out: &mut String) {
        let code = self.bytes.get(self.pos + 1).copied().unwrap_or(b'\\');
        self.pos += 2;
        let decoded = match code {
            b'b' => '\u{8}',
            b'f' => '\u{c}',
            b'n' => '\n',
            b'r' => '\r',
            b't' => '\t',
            b'u' => {
                let first = self.hex4(self.pos).unwrap_or(0xfffd);
                self.pos += 4;
                if (0xd800..=0xdfff).contains(&first) {
                    // Go joins a high surrogate with a following low one; anything else
                    // becomes U+FFFD and the next escape is read on its own.
                    let low = (self.bytes.get(self.pos..self.pos + 2) == Some(b"\\u"))
                        .then(|| self.hex4(self.pos + 2))
                        .flatten();
                    match low {
                        Some(low @ 0xdc00..=0xdfff) if (0xd800..=0xdbff).contains(&first) => {
                            self.pos += 6;
                            let joined = 0x10000 + ((first - 0xd800) << 10) + (low - 0xdc00);
                            char::from_u32(joined).unwrap_or('\u{fffd}')
                        }
                        _ => '\u{fffd}',
                    }
                } else {
                    char::from_u32(first).unwrap_or('\u{fffd}')
                }
            }
            other => char::from(other),
        };
        out.push(decoded);
    }

    /// Skips the next value whatever it is.
    pub fn skip_value(&mut self) {
        self.skip_space();
        match self.bytes.get(self.pos) {
            Some(b'"') => {
                self.string();
            }
            Some(b'{' | b'[') => {
                // Counted, not recursive: the scanner allows 10,000 levels.
                let mut depth = 0usize;
                while let Some(&byte) = self.bytes.get(self.pos) {
                    match byte {
                        b'"' => {
                            self.string();
                            continue;
                        }
                        b'{' | b'[' => depth += 1,
                        b'}' | b']' => {
                            depth = depth.saturating_sub(1);
                            if depth == 0 {
                                self.pos += 1;
                                return;
                            }
                        }
                        _ => {}
                    }
                    self.pos += 1;
                }
            }
            _ => {
                while self
                    .bytes
                    .get(self.pos)
                    .is_some_and(|&b| !matches!(b, b',' | b'}' | b']') && !is_space(b))
                {
                    self.pos += 1;
                }
            }
        }
    }
}

/// Go's case-insensitive match of a JSON key to a struct field name: ASCII letters in either
/// case, and the non-ASCII letters whose simple case folding reaches an ASCII one (the long s
/// folds to `s`, the Kelvin sign to `k`).
pub fn key_matches_field(key: &str, field: &str) -> bool {
    let fold = |c: char| match c {
        '\u{17f}' => 'S',
        '\u{212a}' => 'K',
        c => c.to_ascii_uppercase(),
    };
    key.chars().map(fold).eq(field.chars().map(fold))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn message(text: &str) -> String {
        match check_valid(text) {
            Ok(()) => "ok".to_string(),
            Err(error) => error.to_string(),
        }
    }

    #[test]
    fn syntax_errors_read_as_go_reports_them() {
        for (text, expected) in [
            ("", "unexpected end of JSON input"),
            ("[", "unexpected end of JSON input"),
            ("[{\"a\":1}", "unexpected end of JSON input"),
            (
                "not json",
                "invalid character 'o' in literal null (expecting 'u')",
            ),
            ("x", "invalid character 'x' looking for beginning of value"),
            (
                "[1,]",
                "invalid character ']' looking for beginning of value",
            ),
            (
                "{1:2}",
                "invalid character '1' looking for beginning of object key string",
            ),
            ("{\"a\" 1}", "invalid character '1' after object key"),
            (
                "{\"a\":1 \"b\"}",
                "invalid character '\"' after object key:value pair",
            ),
            ("[1 2]", "invalid character '2' after array element"),
            ("[] x", "invalid character 'x' after top-level value"),
            ("\"a\tb\"", r"invalid character '\t' in string literal"),
            (r#""\x""#, "invalid character 'x' in string escape code"),
            (
                r#""\u12g4""#,
                r"invalid character 'g' in \u hexadecimal character escape",
            ),
            ("-", "invalid character ' ' in numeric literal"),
            (
                "1.",
                "invalid character ' ' after decimal point in numeric literal",
            ),
            (
                "1e+",
                "invalid character ' ' in exponent of numeric literal",
            ),
            (
                "tru",
                "invalid character ' ' in literal true (expecting 'e')",
            ),
            (
                "[fals3]",
                "invalid character '3' in literal false (expecting 'e')",
            ),
            (
                "'a'",
                r"invalid character '\'' looking for beginning of value",
            ),
            (
                "\\",
                r"invalid character '\\' looking for beginning of value",
            ),
            (
                "\u{7f}",
                r"invalid character '\x7f' looking for beginning of value",
            ),
            (
                "\u{e9}",
                "invalid character '\u{c3}' looking for beginning of value",
            ),
            (
                "\u{a0}",
                "invalid character '\u{c2}' looking for beginning of value",
            ),
            ("01", "invalid character '1' after top-level value"),
            (
                " [1, -0.5e-3, true, null, {\"k\": [\"\\u00e9\\n\"]}] ",
                "ok",
            ),
        ] {
            assert_eq!(message(text), expected, "{text:?}");
        }
        // Bytes a `&str` cannot start a character with, should a message ever quote one.
        assert_eq!(quote_char(0x85), r"'\u0085'");
        assert_eq!(quote_char(0xad), r"'\u00ad'");
        assert_eq!(quote_char(0xff), "'\u{ff}'");
        let deep = "[".repeat(MAX_DEPTH + 1);
        assert_eq!(message(&deep), "invalid character '[' exceeded max depth");
        let ok = format!("{}{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
        assert_eq!(message(&ok), "ok");
    }

    #[test]
    fn strings_decode_as_go_decodes_them() {
        for (text, expected) in [
            (r#""plain""#, "plain"),
            (r#""a\"b\\c\/d\b\f\n\r\t""#, "a\"b\\c/d\u{8}\u{c}\n\r\t"),
            (r#""caf\u00e9 \ud83d\ude00""#, "café 😀"),
            (r#""\ud83d""#, "\u{fffd}"),
            (r#""\ude00x""#, "\u{fffd}x"),
            (r#""\ud83d\u0041""#, "\u{fffd}A"),
            ("\"é\"", "é"),
        ] {
            let mut cursor = Cursor::new(text).expect("valid");
            assert_eq!(cursor.string(), expected, "{text}");
        }
    }

    #[test]
    fn keys_fold_as_go_folds_them() {
        assert!(key_matches_field("type", "Type"));
        assert!(key_matches_field("TYPE", "Type"));
        assert!(key_matches_field("\u{17f}tatus", "Status"));
        assert!(!key_matches_field("types", "Type"));
        assert!(!key_matches_field("tipe", "Type"));
    }
}
