//! Paths as text, losslessly: how an image's path is written into the scores CSV, the results
//! file and the report JSON (all UTF-8), so that a file name with bytes that are not UTF-8 is kept
//! exactly and can be found again.
//!
//! The escaping (docs/results.md, "Paths that are not UTF-8"):
//! - a path that is valid UTF-8 is written as it is, except that a backslash followed by `x` is
//!   written `\x5c` (so `a\xb.png` becomes `a\x5cxb.png`; paths with no `\x` are unchanged, as
//!   before this escaping existed);
//! - each byte that is not part of valid UTF-8 is written `\xHH`, two lower-case hex digits (what
//!   Python's `bytes.decode("utf-8", "backslashreplace")` writes for it).
//!
//! Reading back replaces every `\xHH` by the byte 0xHH; nothing else is special. In Python:
//! `os.fsdecode(re.sub(rb"\\x([0-9a-fA-F]{2})", lambda m: bytes([int(m[1], 16)]), text.encode()))`.
//!
//! Why this and not another: Python's `surrogateescape` (lone surrogates such as `\udcff`) can be
//! written in JSON but not in UTF-8 CSV or a Parquet string column, and serde cannot read it back
//! into a Rust string; percent-encoding or `\\` doubling would change every ordinary path that
//! holds a `%` or a backslash. Here only paths with an invalid byte or a literal `\x` change, and
//! one rule serves CSV, JSON and Parquet alike. Hand-written: no crate does exactly this (bstr's
//! escaping also rewrites control characters and quotes), and it is twenty lines.

use std::path::{Path, PathBuf};

/// A path as text: unchanged when it is UTF-8 without a `\x`; otherwise escaped as above.
///
/// ```
/// use oodscope_data::path_text::{path_from_text, path_to_text};
/// assert_eq!(path_to_text("ood/cat 1.png".as_ref()), "ood/cat 1.png");
/// # #[cfg(unix)] {
/// use std::os::unix::ffi::OsStrExt;
/// let odd = std::path::Path::new(std::ffi::OsStr::from_bytes(b"ood/caf\xe9.png"));
/// assert_eq!(path_to_text(odd), r"ood/caf\xe9.png");
/// assert_eq!(path_from_text(r"ood/caf\xe9.png"), odd);
/// # }
/// ```
pub fn path_to_text(path: &Path) -> String {
    escape_bytes(&path_bytes(path))
}

/// The path a text made by [`path_to_text`] stands for (`\xHH` back to the byte 0xHH).
pub fn path_from_text(text: &str) -> PathBuf {
    path_of_bytes(unescape(text))
}

/// Escapes bytes as described in the module's documentation.
pub fn escape_bytes(bytes: &[u8]) -> String {
    let mut out = String::with_capacity(bytes.len());
    for chunk in bytes.utf8_chunks() {
        let mut rest = chunk.valid();
        while let Some(at) = rest.find("\\x") {
            out.push_str(&rest[..at]);
            out.push_str("\\x5c");
            rest = &rest[at + 1..];
        }
        out.push_str(rest);
        for byte in chunk.invalid() {
            out.push_str(&format!("\\x{byte:02x}"));
        }
    }
    out
}

/// Every `\xHH` (either case of hex digit) back to its byte; all else as it is.
pub fn unescape(text: &str) -> Vec<u8> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && bytes.get(i + 1) == Some(&b'x')
            && let Some(byte) = bytes.get(i + 2..i + 4).and_then(hex_byte)
        {
            out.push(byte);
            i += 4;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    out
}

fn hex_byte(digits: &[u8]) -> Option<u8> {
    let text = std::str::from_utf8(digits).ok()?;
    if !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    u8::from_str_radix(text, 16).ok()
}

#[cfg(unix)]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    use std::os::unix::ffi::OsStrExt;
    std::borrow::Cow::Borrowed(path.as_os_str().as_bytes())
}

#[cfg(unix)]
fn path_of_bytes(bytes: Vec<u8>) -> PathBuf {
    use std::os::unix::ffi::OsStringExt;
    PathBuf::from(std::ffi::OsString::from_vec(bytes))
}

// Elsewhere a path is not a byte string: it is written as Rust displays it, and read back as UTF-8.
#[cfg(not(unix))]
fn path_bytes(path: &Path) -> std::borrow::Cow<'_, [u8]> {
    std::borrow::Cow::Owned(path.to_string_lossy().into_owned().into_bytes())
}

#[cfg(not(unix))]
fn path_of_bytes(bytes: Vec<u8>) -> PathBuf {
    PathBuf::from(String::from_utf8_lossy(&bytes).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ordinary_paths_are_unchanged() {
        for text in [
            "id/c0/img 1.png",
            "/données/été/ß.jpg",
            r"C:\images\a.png",
            "100%/a\\b.png",
            "tab\there.png",
            "",
        ] {
            assert_eq!(escape_bytes(text.as_bytes()), text);
            assert_eq!(unescape(text), text.as_bytes());
        }
    }

    #[test]
    fn invalid_bytes_and_a_literal_backslash_x_are_escaped() {
        assert_eq!(escape_bytes(b"bad\xff\xfename.png"), r"bad\xff\xfename.png");
        assert_eq!(escape_bytes(b"a\\xb.png"), r"a\x5cxb.png");
        assert_eq!(escape_bytes(b"a\\\xff"), r"a\\xff");
        // A truncated multi-byte sequence: each byte on its own.
        assert_eq!(escape_bytes(b"caf\xc3"), r"caf\xc3");
        assert_eq!(unescape(r"bad\xff\xFEname.png"), b"bad\xff\xfename.png");
        // Not an escape: left as it is.
        assert_eq!(unescape(r"a\xZZ\x5"), b"a\\xZZ\\x5");
    }

    #[test]
    fn every_byte_string_round_trips() {
        // Random strings over an alphabet rich in the bytes that matter: `\`, `x`, hex digits,
        // invalid bytes and the pieces of multi-byte characters.
        let alphabet = b"\\xX5cfa/.\xff\xfe\xc3\xa9\xe2\x82\xac\x80\x00";
        let mut state = 0x2545_f491_4f6c_dd1du64;
        for _ in 0..20_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 12) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|k| alphabet[((state >> (5 * k)) % alphabet.len() as u64) as usize])
                .collect();
            let text = escape_bytes(&bytes);
            assert_eq!(unescape(&text), bytes, "{bytes:?} → {text}");
            assert_eq!(escape_bytes(&unescape(&text)), text);
        }
    }

    #[cfg(unix)]
    #[test]
    fn paths_round_trip_through_text() {
        use std::os::unix::ffi::OsStrExt;
        let path = Path::new(std::ffi::OsStr::from_bytes(b"/tmp/\xffodd\\x41.png"));
        let text = path_to_text(path);
        assert_eq!(text, r"/tmp/\xffodd\x5cx41.png");
        assert_eq!(path_from_text(&text), path);
    }
}
