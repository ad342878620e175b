//! Signed upload URLs for the local backend: the URL points at Athena itself and carries an
//! HMAC-SHA256 over method, key and expiry, so the upload route can trust it without a session.

use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::{BlobError, ObjectKey};

type HmacSha256 = Hmac<Sha256>;

/// Signs and checks `PUT {api_base}/api/v1/books/upload/{key}?expires=..&signature=..` URLs.
#[derive(Clone)]
pub struct LocalSigner {
    pub secret: Vec<u8>,
    /// Public base URL of Athena, e.g. `https://books.example.org` (a trailing `/` is ignored).
    pub api_base: String,
}

impl std::fmt::Debug for LocalSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret.
        f.debug_struct("LocalSigner").field("api_base", &self.api_base).finish_non_exhaustive()
    }
}

impl LocalSigner {
    pub fn new(secret: impl Into<Vec<u8>>, api_base: impl Into<String>) -> Self {
        Self { secret: secret.into(), api_base: api_base.into() }
    }

    fn mac(&self, key: &ObjectKey, expires: i64) -> HmacSha256 {
        let mut mac = HmacSha256::new_from_slice(&self.secret).expect("HMAC accepts keys of any length");
        mac.update(format!("PUT\n{key}\n{expires}").as_bytes());
        mac
    }

    /// Hex HMAC-SHA256 of `"PUT\n{key}\n{expires}"`; `expires` is a Unix time in seconds.
    pub fn sign(&self, key: &ObjectKey, expires: i64) -> String {
        hex::encode(self.mac(key, expires).finalize().into_bytes())
    }

    /// The full upload URL for `key`, valid until `expires`.
    pub fn url(&self, key: &ObjectKey, expires: i64) -> String {
        format!("{}/api/v1/books/upload/{key}?expires={expires}&signature={}", self.api_base.trim_end_matches('/'), self.sign(key, expires))
    }

    /// Checks a signature in constant time, then the expiry. The signature is checked first so
    /// that a tampered `expires` reads as a bad signature rather than as a hint about validity.
    pub fn verify(&self, key: &ObjectKey, expires: i64, signature: &str, now: DateTime<Utc>) -> Result<(), BlobError> {
        let given = hex::decode(signature.trim()).map_err(|_| BlobError::InvalidSignature)?;
        self.mac(key, expires).verify_slice(&given).map_err(|_| BlobError::InvalidSignature)?;
        if now.timestamp() > expires {
            return Err(BlobError::Expired);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn key(s: &str) -> ObjectKey {
        s.parse().unwrap()
    }

    #[test]
    fn signs_verifies_and_expires() {
        let signer = LocalSigner::new(b"secret".to_vec(), "https://a.example/");
        let k = key("users/u/1/book.epub");
        let now = Utc.timestamp_opt(1_000, 0).unwrap();
        let sig = signer.sign(&k, 1_060);
        assert_eq!(sig.len(), 64);
        signer.verify(&k, 1_060, &sig, now).unwrap();
        signer.verify(&k, 1_060, &sig.to_uppercase(), now).unwrap();
        assert!(matches!(signer.verify(&k, 1_060, &sig, Utc.timestamp_opt(1_061, 0).unwrap()), Err(BlobError::Expired)));
        assert!(matches!(signer.verify(&k, 9_999, &sig, now), Err(BlobError::InvalidSignature)));
        assert!(matches!(signer.verify(&key("users/u/2/book.epub"), 1_060, &sig, now), Err(BlobError::InvalidSignature)));
        assert!(matches!(signer.verify(&k, 1_060, "zz", now), Err(BlobError::InvalidSignature)));
        let other = LocalSigner::new(b"other".to_vec(), "https://a.example");
        assert!(matches!(other.verify(&k, 1_060, &sig, now), Err(BlobError::InvalidSignature)));
        assert_eq!(
            signer.url(&k, 1_060),
            format!("https://a.example/api/v1/books/upload/users/u/1/book.epub?expires=1060&signature={sig}")
        );
        assert!(!format!("{signer:?}").contains("secret"));
    }
}
