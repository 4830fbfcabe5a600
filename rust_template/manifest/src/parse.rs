//! A JSON reader for the two files the plugin writes (manifest.json,
//! frames.json): objects, lists, strings, `true`/`false`/`null` and
//! non-negative integers, which is all they hold. Hand-written so that the
//! launcher's workspace needs no JSON crate: `cargo metadata` (the SBOM)
//! then lists nothing the launcher does not link, and a cold build compiles
//! less.

use std::collections::BTreeMap;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Null,
    Bool(bool),
    Int(u64),
    Str(String),
    List(Vec<Value>),
    /// Keys sorted (byte order = code point order, Python's sort_keys).
    Obj(BTreeMap<String, Value>),
}

impl Value {
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Str(s) => Some(s),
            _ => None,
        }
    }
    pub fn as_u64(&self) -> Option<u64> {
        match self {
            Value::Int(n) => Some(*n),
            _ => None,
        }
    }
    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }
    pub fn as_array(&self) -> Option<&Vec<Value>> {
        match self {
            Value::List(v) => Some(v),
            _ => None,
        }
    }
    pub fn as_object(&self) -> Option<&BTreeMap<String, Value>> {
        match self {
            Value::Obj(m) => Some(m),
            _ => None,
        }
    }
}

/// Parses one JSON document; the error names the byte offset.
pub fn parse(text: &str) -> Result<Value, String> {
    let mut p = Parser {
        s: text.as_bytes(),
        at: 0,
    };
    let value = p.value(0)?;
    p.space();
    if p.at != p.s.len() {
        return Err(p.err("trailing characters"));
    }
    Ok(value)
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

/// Deep enough for both files; bounds the recursion.
const MAX_DEPTH: usize = 32;

impl Parser<'_> {
    fn err(&self, what: &str) -> String {
        format!("not valid JSON: {what} at byte {}", self.at)
    }

    fn space(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.at) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8) -> bool {
        self.space();
        if self.s.get(self.at) == Some(&byte) {
            self.at += 1;
            true
        } else {
            false
        }
    }

    fn literal(&mut self, word: &str, value: Value) -> Result<Value, String> {
        if self.s[self.at..].starts_with(word.as_bytes()) {
            self.at += word.len();
            Ok(value)
        } else {
            Err(self.err("unexpected character"))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, String> {
        if depth > MAX_DEPTH {
            return Err(self.err("nested too deeply"));
        }
        self.space();
        match self.s.get(self.at) {
            Some(b'{') => {
                self.at += 1;
                let mut map = BTreeMap::new();
                if self.eat(b'}') {
                    return Ok(Value::Obj(map));
                }
                loop {
                    self.space();
                    let key = self.string()?;
                    if !self.eat(b':') {
                        return Err(self.err("expected `:`"));
                    }
                    let value = self.value(depth + 1)?;
                    if map.insert(key.clone(), value).is_some() {
                        return Err(self.err(&format!("duplicate key {key:?}")));
                    }
                    if self.eat(b'}') {
                        return Ok(Value::Obj(map));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("expected `,` or `}`"));
                    }
                }
            }
            Some(b'[') => {
                self.at += 1;
                let mut list = Vec::new();
                if self.eat(b']') {
                    return Ok(Value::List(list));
                }
                loop {
                    list.push(self.value(depth + 1)?);
                    if self.eat(b']') {
                        return Ok(Value::List(list));
                    }
                    if !self.eat(b',') {
                        return Err(self.err("expected `,` or `]`"));
                    }
                }
            }
            Some(b'"') => Ok(Value::Str(self.string()?)),
            Some(b't') => self.literal("true", Value::Bool(true)),
            Some(b'f') => self.literal("false", Value::Bool(false)),
            Some(b'n') => self.literal("null", Value::Null),
            Some(b'0'..=b'9') => {
                let start = self.at;
                while let Some(b'0'..=b'9') = self.s.get(self.at) {
                    self.at += 1;
                }
                if let Some(b'.' | b'e' | b'E') = self.s.get(self.at) {
                    return Err(self.err("a number that is not an integer"));
                }
                let digits = &self.s[start..self.at];
                if digits.len() > 1 && digits[0] == b'0' {
                    return Err(self.err("a number with a leading zero"));
                }
                // Digits only: valid UTF-8.
                std::str::from_utf8(digits)
                    .ok()
                    .and_then(|d| d.parse().ok())
                    .map(Value::Int)
                    .ok_or_else(|| self.err("a number larger than 64 bits"))
            }
            Some(b'-') => Err(self.err("a negative number")),
            _ => Err(self.err("expected a value")),
        }
    }

    fn hex4(&mut self) -> Result<u32, String> {
        let digits = self
            .s
            .get(self.at..self.at + 4)
            .and_then(|d| std::str::from_utf8(d).ok())
            .and_then(|d| u32::from_str_radix(d, 16).ok())
            .ok_or_else(|| self.err("a bad \\u escape"))?;
        self.at += 4;
        Ok(digits)
    }

    fn string(&mut self) -> Result<String, String> {
        if self.s.get(self.at) != Some(&b'"') {
            return Err(self.err("expected a string"));
        }
        self.at += 1;
        let mut out = String::new();
        loop {
            let start = self.at;
            while let Some(&b) = self.s.get(self.at) {
                if b == b'"' || b == b'\\' || b < 0x20 {
                    break;
                }
                self.at += 1;
            }
            // The input is a &str and we stopped at ASCII bytes: a char boundary.
            out.push_str(
                std::str::from_utf8(&self.s[start..self.at]).map_err(|_| self.err("bad UTF-8"))?,
            );
            match self.s.get(self.at) {
                Some(b'"') => {
                    self.at += 1;
                    return Ok(out);
                }
                Some(b'\\') => {
                    self.at += 1;
                    let escape = *self
                        .s
                        .get(self.at)
                        .ok_or_else(|| self.err("an unfinished escape"))?;
                    self.at += 1;
                    match escape {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => {
                            let unit = self.hex4()?;
                            let code = if (0xd800..0xdc00).contains(&unit) {
                                if !self.s[self.at..].starts_with(b"\\u") {
                                    return Err(self.err("a lone surrogate"));
                                }
                                self.at += 2;
                                let low = self.hex4()?;
                                if !(0xdc00..0xe000).contains(&low) {
                                    return Err(self.err("a lone surrogate"));
                                }
                                0x10000 + ((unit - 0xd800) << 10) + (low - 0xdc00)
                            } else {
                                unit
                            };
                            out.push(
                                char::from_u32(code).ok_or_else(|| self.err("a lone surrogate"))?,
                            );
                        }
                        _ => return Err(self.err("an unknown escape")),
                    }
                }
                Some(_) => return Err(self.err("a control character in a string")),
                None => return Err(self.err("an unfinished string")),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{parse, Value};

    #[test]
    fn reads_what_python_json_writes() {
        let v = parse(
            r#" {"a": [1, true, false, null, "x"], "b": {}, "s": "q\"\\\/\b\f\n\r\t\u00e9\ud834\udd1e\u2713é", "z": 18446744073709551615} "#,
        )
        .unwrap();
        let m = v.as_object().unwrap();
        assert_eq!(m["a"].as_array().unwrap().len(), 5);
        assert_eq!(
            m["s"].as_str(),
            Some("q\"\\/\u{8}\u{c}\n\r\té\u{1d11e}\u{2713}é")
        );
        assert_eq!(m["z"].as_u64(), Some(u64::MAX));
        assert_eq!(m["b"], Value::Obj(Default::default()));
    }

    #[test]
    fn refuses_what_is_not_json_or_not_in_the_contract() {
        for bad in [
            "",
            "{",
            "{\"a\" 1}",
            "{\"a\": 1,}",
            "[1 2]",
            "\"\\x\"",
            "\"a\nb\"",
            "01",
            "-1",
            "1.5",
            "\"\\ud834\"",
            "{\"a\": 1, \"a\": 2}",
            "18446744073709551616",
            "nul",
            "{} x",
            "\"abc",
        ] {
            assert!(parse(bad).is_err(), "{bad:?}");
        }
        let deep = "[".repeat(100) + &"]".repeat(100);
        assert!(parse(&deep).unwrap_err().contains("nested too deeply"));
    }
}
