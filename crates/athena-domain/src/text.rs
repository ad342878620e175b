use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// Why a piece of outside input was not accepted as a domain value.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {reason}")]
pub struct ParseError {
    pub field: &'static str,
    pub reason: &'static str,
}

impl ParseError {
    pub fn new(field: &'static str, reason: &'static str) -> Self {
        Self { field, reason }
    }
}

/// An email address, trimmed and lowercased (the users table keeps emails unique in this form).
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Email(String);

impl Email {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Email {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let e = s.trim().to_lowercase();
        let invalid = ParseError::new("email", "must be an email address");
        if e.len() > 254 || e.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid);
        }
        let (local, domain) = e.split_once('@').ok_or(invalid.clone())?;
        if local.is_empty()
            || local.len() > 64
            || domain.len() < 3
            || !domain.contains('.')
            || domain.starts_with('.')
            || domain.ends_with('.')
            || domain.contains('@')
        {
            return Err(invalid);
        }
        Ok(Self(e))
    }
}

impl TryFrom<String> for Email {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<Email> for String {
    fn from(e: Email) -> String {
        e.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Addresses are personal data: keep the domain, hide the mailbox.
        match self.0.split_once('@') {
            Some((_, domain)) => write!(f, "Email(***@{domain})"),
            None => f.write_str("Email(***)"),
        }
    }
}

/// A SHA-256 content hash as 64 lowercase hex digits.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ContentHash(String);

impl ContentHash {
    pub fn as_str(&self) -> &str {
        &self.0
    }
    pub fn from_digest(digest: [u8; 32]) -> Self {
        Self(hex::encode(digest))
    }
    pub fn of_bytes(bytes: &[u8]) -> Self {
        use sha2::Digest;
        Self::from_digest(sha2::Sha256::digest(bytes).into())
    }
}

impl FromStr for ContentHash {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let s = s.trim().to_ascii_lowercase();
        if s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit()) {
            Ok(Self(s))
        } else {
            Err(ParseError::new("content_sha256", "must be 64 hex digits"))
        }
    }
}

impl TryFrom<String> for ContentHash {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<ContentHash> for String {
    fn from(h: ContentHash) -> String {
        h.0
    }
}

impl fmt::Display for ContentHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A key in object storage: `/`-separated segments of safe characters, no `..`, no leading `/`.
/// Built by the server (e.g. `users/{user_id}/{uuid}/{filename}`), or parsed from a key the server
/// handed out earlier; never taken raw from a client.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ObjectKey(String);

impl ObjectKey {
    pub const MAX_LEN: usize = 1024;

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// `users/{user}/{upload}/{filename}` with the filename sanitised.
    pub fn for_upload(user: &crate::UserId, upload: &uuid::Uuid, filename: &str) -> Self {
        Self(format!("users/{user}/{upload}/{}", sanitize_filename(filename)))
    }

    /// `covers/{book_id}.{ext}`.
    pub fn for_cover(book: &crate::BookId, ext: &str) -> Self {
        let ext: String = ext.chars().filter(|c| c.is_ascii_alphanumeric()).take(8).collect();
        Self(format!("covers/{book}.{ext}"))
    }

    /// `users/{user}/converted/{book}.epub`: the EPUB the worker made from a non-EPUB upload.
    pub fn for_converted(user: &crate::UserId, book: &crate::BookId) -> Self {
        Self(format!("users/{user}/converted/{book}.epub"))
    }

    /// `users/{user}/layered/{book}.pdf`: a book's OCR'd PDF (page images + invisible text).
    pub fn for_layered(user: &crate::UserId, book: &crate::BookId) -> Self {
        Self(format!("users/{user}/layered/{book}.pdf"))
    }

    /// `ocr/{sha256}.pdf`: the layered PDF of a content, kept for instant reuse by anyone who
    /// uploads the same bytes.
    pub fn for_ocr_content(sha: &ContentHash) -> Self {
        Self(format!("ocr/{sha}.pdf"))
    }

    /// `text/{sha256}.jsonl`: a content's extracted text (one JSON section per line). Keyed by
    /// the uploaded content, so it is extracted once however many users own the book.
    pub fn for_text(sha: &ContentHash) -> Self {
        Self(format!("text/{sha}.jsonl"))
    }

    /// The key's segments after a prefix, if it starts with it.
    pub fn strip_prefix(&self, prefix: &str) -> Option<&str> {
        self.0.strip_prefix(prefix)
    }
}

impl FromStr for ObjectKey {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        let bad = |reason| Err(ParseError::new("key", reason));
        if s.is_empty() || s.len() > Self::MAX_LEN {
            return bad("must be 1 to 1024 bytes");
        }
        if s.starts_with('/') || s.ends_with('/') {
            return bad("must be relative");
        }
        for segment in s.split('/') {
            if segment.is_empty() || segment == "." || segment == ".." {
                return bad("has an empty or dot segment");
            }
            if !segment.chars().all(is_safe_key_char) {
                return bad("has characters outside the safe set");
            }
        }
        Ok(Self(s.to_string()))
    }
}

impl TryFrom<String> for ObjectKey {
    type Error = ParseError;
    fn try_from(s: String) -> Result<Self, ParseError> {
        s.parse()
    }
}

impl From<ObjectKey> for String {
    fn from(k: ObjectKey) -> String {
        k.0
    }
}

impl fmt::Display for ObjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

fn is_safe_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '+' | '=' | ',' | '@')
}

/// Turns any client-supplied file name into one safe key segment of at most 120 bytes:
/// the last path component only, ASCII letters, digits and `-_.` kept, everything else `_`,
/// no leading dots. Never empty.
pub fn sanitize_filename(name: &str) -> String {
    let last = name.rsplit(['/', '\\']).next().unwrap_or("");
    let mut out: String = last.chars().map(|c| if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') { c } else { '_' }).collect();
    while out.starts_with('.') {
        out.remove(0);
    }
    if out.len() > 120 {
        // Keep the extension, which readers and downloads rely on.
        let ext = out.rsplit_once('.').map(|(_, e)| e.to_string()).filter(|e| e.len() <= 10);
        out.truncate(100);
        if let Some(ext) = ext {
            out.push('.');
            out.push_str(&ext);
        }
    }
    if out.is_empty() || out.chars().all(|c| c == '_' || c == '.') {
        "book".to_string()
    } else {
        out
    }
}

/// What a user may do beyond their own data.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    User,
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::Admin => "admin",
        }
    }
}

impl FromStr for Role {
    type Err = ParseError;
    fn from_str(s: &str) -> Result<Self, ParseError> {
        match s {
            "user" => Ok(Self::User),
            "admin" => Ok(Self::Admin),
            _ => Err(ParseError::new("role", "must be user or admin")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(" Ann@Example.COM ".parse::<Email>().unwrap().as_str(), "ann@example.com");
        for bad in ["", "ann", "@x.com", "ann@", "ann@com", "a b@x.com", "ann@x.com@y.com"] {
            assert!(bad.parse::<Email>().is_err(), "{bad}");
        }
        assert!(!format!("{:?}", "ann@example.com".parse::<Email>().unwrap()).contains("ann"));
    }

    #[test]
    fn hostile_filenames_become_one_safe_segment() {
        assert_eq!(sanitize_filename("../../x"), "x");
        assert_eq!(sanitize_filename("/etc/passwd"), "passwd");
        assert_eq!(sanitize_filename("a\0b.epub"), "a_b.epub");
        assert_eq!(sanitize_filename(".."), "book");
        assert_eq!(sanitize_filename(""), "book");
        assert_eq!(sanitize_filename("C:\\Users\\x\\论语.epub"), "__.epub");
        let long = format!("{}.epub", "a".repeat(2000));
        let s = sanitize_filename(&long);
        assert!(s.len() <= 120 && s.ends_with(".epub"));
        let user = crate::UserId::new();
        for name in ["../../x", "/abs", "nul\0", &long, "..", "a/../../b"] {
            let key = ObjectKey::for_upload(&user, &uuid::Uuid::new_v4(), name);
            assert!(key.as_str().parse::<ObjectKey>().is_ok(), "{key}");
        }
    }

    #[test]
    fn object_keys_reject_traversal() {
        for bad in ["", "/a", "a/", "a//b", "a/../b", "./a", "a\\b", "a b", "a\0"] {
            assert!(bad.parse::<ObjectKey>().is_err(), "{bad:?}");
        }
        assert!("users/u/1/book.epub".parse::<ObjectKey>().is_ok());
    }

    #[test]
    fn hashes_are_64_hex() {
        assert!("ab".parse::<ContentHash>().is_err());
        let h = ContentHash::of_bytes(b"abc");
        assert_eq!(h.as_str(), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
        assert_eq!(h.as_str().to_uppercase().parse::<ContentHash>().unwrap(), h);
    }
}
