//! HMAC-SHA256, the one primitive behind webhook signatures and log tokens.

use hmac::{Hmac, KeyInit, Mac};
use sha2::Sha256;

type HmacSha256 = Hmac<Sha256>;

fn mac(key: &[u8], message: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut mac = HmacSha256::new_from_slice(key).expect("hmac accepts any key length");
    mac.update(message);
    mac
}

pub fn sign(key: &[u8], message: &[u8]) -> Vec<u8> {
    mac(key, message).finalize().into_bytes().to_vec()
}

/// Constant-time check of a full-length tag.
pub fn verify(key: &[u8], message: &[u8], tag: &[u8]) -> bool {
    mac(key, message).verify_slice(tag).is_ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_githubs_documented_example() {
        // From GitHub's "Validating webhook deliveries" page.
        let tag = sign(b"It's a Secret to Everybody", b"Hello, World!");
        assert_eq!(
            hex::encode(&tag),
            "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17"
        );
        assert!(verify(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            &tag
        ));
        assert!(!verify(
            b"It's a Secret to Everybody",
            b"Hello, World?",
            &tag
        ));
        assert!(!verify(
            b"It's a Secret to Everybody",
            b"Hello, World!",
            &tag[..16]
        ));
    }
}
