//! Percent-encoding (RFC 3986), the small part of it mclr needs: the viewer's share links encode
//! and decode query components, and the site server (`mclr-serve`) decodes request paths
//! strictly before it maps them to files. One codec for both, so that what a link writes is
//! what a server reads.

/// Decodes one `application/x-www-form-urlencoded` component: `+` is a space and `%XX` a byte.
/// A `%` not followed by two hex digits is kept literally (as browsers do); bytes that are not
/// UTF-8 become U+FFFD. Never fails.
pub fn decode(component: &str) -> String {
    let bytes = unescape(component, Mode::Form).unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// Decodes the `%XX` escapes of a URL path strictly, as a server must before it maps the path
/// to a file: `+` stays `+`, and a `%` not followed by two hex digits or bytes that are not
/// UTF-8 give `None`.
pub fn decode_path(path: &str) -> Option<String> {
    String::from_utf8(unescape(path, Mode::Path)?).ok()
}

/// What [`unescape`] decodes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Mode {
    /// A query component: `+` is a space, a broken escape is kept literally.
    Form,
    /// A path: `+` is itself, a broken escape is refused.
    Path,
}

/// The bytes `text` stands for; `None` only in [`Mode::Path`], for a broken escape.
fn unescape(text: &str, mode: Mode) -> Option<Vec<u8>> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        match b {
            b'+' if mode == Mode::Form => out.push(b' '),
            b'%' => {
                let hi = bytes.get(i + 1).and_then(|&h| hex_value(h));
                let lo = bytes.get(i + 2).and_then(|&l| hex_value(l));
                if let (Some(hi), Some(lo)) = (hi, lo) {
                    out.push(hi << 4 | lo);
                    i += 2;
                } else if mode == Mode::Path {
                    return None;
                } else {
                    out.push(b'%');
                }
            }
            other => out.push(other),
        }
        i += 1;
    }
    Some(out)
}

/// Encodes `value` for a query component: unreserved characters (`A–Z a–z 0–9 - . _ ~`) and the
/// characters of `keep` stay as they are, everything else becomes `%XX` per UTF-8 byte. `keep` may
/// only hold characters that are safe inside a query value (such as `:`, `,` and `/`), never `&`,
/// `=`, `+`, `#` or `%`.
pub fn encode(value: &str, keep: &str) -> String {
    let mut out = String::with_capacity(value.len());
    for c in value.chars() {
        if c.is_ascii_alphanumeric() || matches!(c, '-' | '.' | '_' | '~') || keep.contains(c) {
            out.push(c);
        } else {
            let mut buf = [0u8; 4];
            for byte in c.encode_utf8(&mut buf).bytes() {
                out.push('%');
                out.push(hex_digit(byte >> 4));
                out.push(hex_digit(byte & 0xf));
            }
        }
    }
    out
}

fn hex_value(digit: u8) -> Option<u8> {
    char::from(digit)
        .to_digit(16)
        .and_then(|v| u8::try_from(v).ok())
}

fn hex_digit(nibble: u8) -> char {
    char::from_digit(u32::from(nibble), 16)
        .unwrap_or('0')
        .to_ascii_uppercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoding_then_decoding_gives_back_any_text() {
        for text in [
            "a b&c=d+e%f#g",
            "https://x.org/a b.mclr?q=1",
            "ünïcødé ✓",
            "",
            "%zz",
        ] {
            assert_eq!(decode(&encode(text, ":/,")), text);
        }
    }

    #[test]
    fn reserved_characters_are_escaped_and_kept_ones_are_not() {
        assert_eq!(encode("a&b=c d", ""), "a%26b%3Dc%20d");
        assert_eq!(encode("3:1.5,7:-2", ":,"), "3:1.5,7:-2");
    }

    #[test]
    fn malformed_escapes_are_kept_literally() {
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%4"), "%4");
        assert_eq!(decode("%41%zz+"), "A%zz ");
        assert_eq!(decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn paths_decode_strictly() {
        assert_eq!(
            decode_path("pkg/a%20b+c.js").as_deref(),
            Some("pkg/a b+c.js")
        );
        assert_eq!(decode_path("%2e%2E").as_deref(), Some(".."));
        assert_eq!(decode_path("bad%zz"), None);
        assert_eq!(decode_path("bad%4"), None);
        assert_eq!(decode_path("bad%+f"), None);
        assert_eq!(decode_path("%ff"), None);
    }
}
