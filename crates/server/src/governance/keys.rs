//! Virtual API key material: generation, hashing, display prefixes.

use rand::Rng;
use sha2::{Digest, Sha256};

/// Every virtual key starts with this, so leaked keys are recognisable
/// (secret scanners can match `sk-sy-[A-Za-z0-9]{43}`).
pub const KEY_PREFIX: &str = "sk-sy-";
const KEY_CHARS: usize = 43; // 43 × log2(62) ≈ 256 bits

const BASE62: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// A fresh key: shown once, never stored.
pub fn generate() -> String {
    let mut rng = rand::thread_rng();
    let mut s = String::with_capacity(KEY_PREFIX.len() + KEY_CHARS);
    s.push_str(KEY_PREFIX);
    for _ in 0..KEY_CHARS {
        let i = rng.gen_range(0..BASE62.len());
        s.push(char::from(BASE62[i]));
    }
    s
}

/// SHA-256 of the key (keys carry 256 bits of entropy, so a fast hash is
/// the right tool; a slow KDF would only slow down the hot path).
pub fn digest(key: &str) -> [u8; 32] {
    Sha256::digest(key.as_bytes()).into()
}

/// Hex form stored in the database.
pub fn hash_hex(key: &str) -> String {
    hex::encode(digest(key))
}

/// The hex form back to bytes (invalid rows are skipped by the cache).
pub fn parse_hex(h: &str) -> Option<[u8; 32]> {
    let v = hex::decode(h).ok()?;
    v.try_into().ok()
}

/// What listings show: `sk-sy-AbC1…` (enough to tell keys apart).
pub fn display_prefix(key: &str) -> String {
    key.chars().take(KEY_PREFIX.len() + 6).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_prefixed_random_and_hash_round_trips() {
        let a = generate();
        let b = generate();
        assert!(a.starts_with(KEY_PREFIX) && a.len() == KEY_PREFIX.len() + KEY_CHARS);
        assert_ne!(a, b);
        assert_eq!(parse_hex(&hash_hex(&a)), Some(digest(&a)));
        assert_eq!(display_prefix(&a).len(), 12);
    }
}
