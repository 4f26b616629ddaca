//! A reader for one flat JSON object of known keys: strings without escapes, numbers, null.
//!
//! It only says yes to what it fully understands. Anything else (another key, a key twice,
//! an escape, a nested value, true/false, a number it cannot hold exactly, text after the
//! object) is `None`, and the caller hands the event to the Python encoder, which decides
//! and words any failure. So it can be strict and small: saying no is always safe.

#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value<'a> {
    Str(&'a str),
    Int(i64),
    Float(f64),
    Null,
}

/// Fills `out[i]` with the value of key `names[i]`; `None` when the text is not such an
/// object. A key absent from the text leaves its slot `None`.
pub fn read_object<'a, S: AsRef<str>>(
    text: &'a str,
    names: &[S],
    out: &mut [Option<Value<'a>>],
) -> Option<()> {
    let bytes = text.as_bytes();
    let mut i = skip_space(bytes, 0);
    if bytes.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_space(bytes, i + 1);
    if bytes.get(i) == Some(&b'}') {
        i += 1;
    } else {
        loop {
            if bytes.get(i) != Some(&b'"') {
                return None;
            }
            let (key, next) = string(text, i + 1)?;
            let slot = names.iter().position(|name| name.as_ref() == key)?;
            if out[slot].is_some() {
                return None; // a key twice: the parser keeps the last, the Python path decides
            }
            i = skip_space(bytes, next);
            if bytes.get(i) != Some(&b':') {
                return None;
            }
            i = skip_space(bytes, i + 1);
            let (value, next) = value(text, i)?;
            out[slot] = Some(value);
            i = skip_space(bytes, next);
            match bytes.get(i) {
                Some(b',') => i = skip_space(bytes, i + 1),
                Some(b'}') => {
                    i += 1;
                    break;
                }
                _ => return None,
            }
        }
    }
    (skip_space(bytes, i) == bytes.len()).then_some(())
}

fn skip_space(bytes: &[u8], mut i: usize) -> usize {
    while let Some(b' ' | b'\t' | b'\n' | b'\r') = bytes.get(i) {
        i += 1;
    }
    i
}

/// The string that starts after the quote at `start - 1`, and the index after its end quote.
fn string(text: &str, start: usize) -> Option<(&str, usize)> {
    let bytes = text.as_bytes();
    let mut i = start;
    loop {
        match *bytes.get(i)? {
            b'"' => return Some((&text[start..i], i + 1)),
            b'\\' | 0..=0x1f => return None, // an escape, or a control character JSON forbids
            _ => i += 1,
        }
    }
}

fn value(text: &str, i: usize) -> Option<(Value<'_>, usize)> {
    let bytes = text.as_bytes();
    match *bytes.get(i)? {
        b'"' => string(text, i + 1).map(|(s, next)| (Value::Str(s), next)),
        b'n' => (bytes.get(i..i + 4)? == b"null").then_some((Value::Null, i + 4)),
        b'-' | b'0'..=b'9' => number(text, i),
        _ => None,
    }
}

/// JSON's number grammar, exactly: -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)?
fn number(text: &str, start: usize) -> Option<(Value<'_>, usize)> {
    let bytes = text.as_bytes();
    let digits = |mut i: usize| {
        let from = i;
        while bytes.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        (i > from).then_some(i)
    };
    let mut i = start + usize::from(bytes[start] == b'-');
    i = if bytes.get(i) == Some(&b'0') {
        i + 1
    } else {
        digits(i)?
    };
    let integral = i;
    if bytes.get(i) == Some(&b'.') {
        i = digits(i + 1)?;
    }
    if let Some(b'e' | b'E') = bytes.get(i) {
        i += 1;
        if let Some(b'+' | b'-') = bytes.get(i) {
            i += 1;
        }
        i = digits(i)?;
    }
    let literal = &text[start..i];
    if i == integral {
        // an integer: up to 18 digits always fits an i64; a longer one is the Python path's
        if literal.len() - usize::from(bytes[start] == b'-') > 18 {
            return None;
        }
        return literal.parse().ok().map(|n| (Value::Int(n), i));
    }
    let x: f64 = literal.parse().ok()?; // correctly rounded, as Python's float()
    x.is_finite().then_some((Value::Float(x), i))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> Option<[Option<Value<'_>>; 3]> {
        let mut out = [None; 3];
        read_object(text, &["a", "b", "c"], &mut out).map(|()| out)
    }

    #[test]
    fn reads_the_common_shape() {
        let out = read(" {\"a\": \"x y\", \"b\":-1.5e2,\n\"c\": null}\t").unwrap();
        assert_eq!(
            out,
            [
                Some(Value::Str("x y")),
                Some(Value::Float(-150.0)),
                Some(Value::Null)
            ]
        );
        assert_eq!(read("{}").unwrap(), [None, None, None]);
        assert_eq!(read("{\"b\": -0}").unwrap()[1], Some(Value::Int(0)));
    }

    #[test]
    fn says_no_to_anything_else() {
        for text in [
            "",
            "[]",
            "{",
            "{\"a\": 1",
            "{\"a\": 1,}",
            "{\"d\": 1}",
            "{\"a\": 1, \"a\": 2}",
            "{\"a\": \"\\n\"}",
            "{\"a\": \"\t\"}",
            "{\"a\": true}",
            "{\"a\": [1]}",
            "{\"a\": 01}",
            "{\"a\": 1.}",
            "{\"a\": .5}",
            "{\"a\": 1e}",
            "{\"a\": 1e999}",
            "{\"a\": +1}",
            "{\"a\": 1234567890123456789}",
            "{\"a\": 1} x",
            "{\"a\": nul}",
            "{\"a\" 1}",
        ] {
            assert!(read(text).is_none(), "{text}");
        }
    }
}
