//! Sealing a personal field under the data keys of the contacts it concerns: pure, no I/O.

use aes_gcm_siv::aead::{Aead, Payload};
use aes_gcm_siv::{Aes256GcmSiv, KeyInit, Nonce};
use hkdf::HkdfExtract;
use sha2::{Digest, Sha256};
use zeroize::Zeroizing;

use crate::DataKey;

/// The sealing scheme written into every sealed field (1: this scheme).
pub const SCHEME: u32 = 1;

const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The sealed text does not open with these keys: a key is missing, wrong or out of order, the
/// aad differs, or the bytes were altered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the sealed text does not open with these keys")]
pub struct Unreadable;

/// Seals `plaintext` under the data keys of every contact it concerns (`keys` in the order of
/// their contact ids, which the caller sorts; at least one). Deterministic: the same keys,
/// nonce seed, aad and plaintext give the same bytes. Returns nonce (12 bytes) ‖ ciphertext ‖
/// tag (16 bytes).
///
/// Field key = HKDF-SHA256(salt = "rapport field key v1", ikm = key1 ‖ key2 ‖ …, info = aad),
/// 32 bytes, so losing any one key makes the field unreadable. Nonce =
/// SHA-256("rapport nonce v1\0" ‖ nonce_seed)[..12]. The aad is also the cipher's associated
/// data.
///
/// # Panics
///
/// If `keys` is empty: a field sealed under no key would be readable by anyone forever, in an
/// immutable log, so this is a bug in the caller to stop at, not an input to handle.
pub fn seal(keys: &[&DataKey], nonce_seed: &[u8], aad: &[u8], plaintext: &[u8]) -> Vec<u8> {
    FieldKey::derive(keys, aad).seal(nonce_seed, plaintext)
}

/// Opens what [`seal`] made, with the same keys (in the same order) and aad. `Err` when any key
/// or the aad differs, or the bytes were altered.
pub fn open(keys: &[&DataKey], aad: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Unreadable> {
    if keys.is_empty() {
        return Err(Unreadable);
    }
    FieldKey::derive(keys, aad).open(sealed)
}

/// The key of the fields one set of contacts' keys seal under one aad: derived once, to seal or
/// open several fields of an event (what [`seal`] and [`open`] do for one). Zeroed on drop.
pub struct FieldKey {
    cipher: Aes256GcmSiv,
    aad: Vec<u8>,
}

impl FieldKey {
    /// The field key of `keys` (in the order of their contact ids; at least one) and `aad`.
    ///
    /// # Panics
    ///
    /// If `keys` is empty, as [`seal`].
    pub fn derive(keys: &[&DataKey], aad: &[u8]) -> FieldKey {
        assert!(!keys.is_empty(), "a field is sealed under at least one data key");
        FieldKey { cipher: field_cipher(keys, aad), aad: aad.to_vec() }
    }

    /// [`seal`] under this key.
    pub fn seal(&self, nonce_seed: &[u8], plaintext: &[u8]) -> Vec<u8> {
        let nonce = nonce_of(nonce_seed);
        let ciphertext = match self.cipher.encrypt(&nonce, Payload { msg: plaintext, aad: &self.aad }) {
            Ok(ciphertext) => ciphertext,
            // AES-GCM-SIV refuses only a plaintext or aad of 2^36 bytes or more, which no field
            // of an event (bounded far below by the request limits) comes near.
            Err(_) => unreachable!("a field of {} bytes is within AES-GCM-SIV's 64 GiB", plaintext.len()),
        };
        let mut sealed = Vec::with_capacity(NONCE_LEN + ciphertext.len());
        sealed.extend_from_slice(&nonce);
        sealed.extend_from_slice(&ciphertext);
        sealed
    }

    /// [`open`] under this key.
    pub fn open(&self, sealed: &[u8]) -> Result<Vec<u8>, Unreadable> {
        if sealed.len() < NONCE_LEN + TAG_LEN {
            return Err(Unreadable);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce = Nonce::try_from(nonce).map_err(|_| Unreadable)?;
        self.cipher.decrypt(&nonce, Payload { msg: ciphertext, aad: &self.aad }).map_err(|_| Unreadable)
    }
}

/// The cipher under the field key the keys and the aad derive.
fn field_cipher(keys: &[&DataKey], aad: &[u8]) -> Aes256GcmSiv {
    // Feeding the keys one by one is HKDF-Extract over their concatenation, without a buffer
    // of key bytes to zero afterwards.
    let mut extract = HkdfExtract::<Sha256>::new(Some(b"rapport field key v1"));
    for key in keys {
        extract.input_ikm(key.as_bytes());
    }
    let (_, hkdf) = extract.finalize();
    let mut field_key = Zeroizing::new([0u8; 32]);
    if hkdf.expand(aad, field_key.as_mut_slice()).is_err() {
        // HKDF-SHA256 expands to at most 255 · 32 bytes; 32 is always within.
        unreachable!("32 bytes are within what HKDF-SHA256 expands to");
    }
    // Borrowed, not copied: the only copy of the field key is the one zeroed on return.
    Aes256GcmSiv::new((&*field_key).into())
}

/// The nonce of a seed: SHA-256("rapport nonce v1\0" ‖ seed)[..12].
fn nonce_of(nonce_seed: &[u8]) -> Nonce {
    let digest = Sha256::new().chain_update(b"rapport nonce v1\0").chain_update(nonce_seed).finalize();
    let mut nonce = Nonce::default();
    nonce.copy_from_slice(&digest[..NONCE_LEN]);
    nonce
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> DataKey {
        DataKey::from_bytes([byte; 32])
    }

    #[test]
    fn a_sealed_field_opens_with_its_keys_and_aad() {
        let alice = key(1);
        let sealed = seal(&[&alice], b"event 1 / note", b"acme / note", b"met at the fair");
        assert_eq!(sealed.len(), 12 + 15 + 16, "nonce, ciphertext as long as the text, tag");
        assert_eq!(open(&[&alice], b"acme / note", &sealed).unwrap(), b"met at the fair");
        assert!(!sealed.windows(4).any(|w| w == b"fair"), "the text is not in the sealed bytes");
        let empty = seal(&[&alice], b"seed", b"aad", b"");
        assert_eq!(open(&[&alice], b"aad", &empty).unwrap(), b"");
    }

    #[test]
    fn sealing_is_deterministic_and_the_seed_picks_the_nonce() {
        let alice = key(1);
        let once = seal(&[&alice], b"seed", b"aad", b"text");
        assert_eq!(once, seal(&[&alice], b"seed", b"aad", b"text"), "the same inputs give the same bytes");
        let digest = Sha256::digest(b"rapport nonce v1\0seed");
        assert_eq!(&once[..12], &digest[..12]);
        let other = seal(&[&alice], b"other seed", b"aad", b"text");
        assert_ne!(once[..12], other[..12]);
        assert_eq!(open(&[&alice], b"aad", &other).unwrap(), b"text", "any seed opens with the same key");
    }

    #[test]
    fn a_missing_or_different_key_or_aad_leaves_it_unreadable() {
        let (alice, bob) = (key(1), key(2));
        let sealed = seal(&[&alice], b"seed", b"aad", b"text");
        assert_eq!(open(&[&bob], b"aad", &sealed), Err(Unreadable));
        assert_eq!(open(&[], b"aad", &sealed), Err(Unreadable));
        assert_eq!(open(&[&alice, &bob], b"aad", &sealed), Err(Unreadable), "an extra key is a different key");
        assert_eq!(open(&[&alice], b"aae", &sealed), Err(Unreadable));
        assert_eq!(open(&[&alice], b"", &sealed), Err(Unreadable));
    }

    #[test]
    fn altered_or_short_bytes_are_unreadable() {
        let alice = key(1);
        let sealed = seal(&[&alice], b"seed", b"aad", b"text");
        for at in 0..sealed.len() {
            let mut altered = sealed.clone();
            altered[at] ^= 0x01;
            assert_eq!(open(&[&alice], b"aad", &altered), Err(Unreadable), "a flipped bit at byte {at}");
        }
        for len in 0..sealed.len() {
            assert_eq!(open(&[&alice], b"aad", &sealed[..len]), Err(Unreadable), "cut to {len} bytes");
        }
    }

    #[test]
    fn a_field_about_two_contacts_needs_both_keys_in_order() {
        let (alice, bob) = (key(1), key(2));
        let sealed = seal(&[&alice, &bob], b"seed", b"aad", b"their joint dinner");
        assert_eq!(open(&[&alice, &bob], b"aad", &sealed).unwrap(), b"their joint dinner");
        assert_eq!(open(&[&bob, &alice], b"aad", &sealed), Err(Unreadable), "out of order");
        assert_eq!(open(&[&alice], b"aad", &sealed), Err(Unreadable), "bob forgotten");
        assert_eq!(open(&[&bob], b"aad", &sealed), Err(Unreadable), "alice forgotten");
        assert_ne!(sealed, seal(&[&bob, &alice], b"seed", b"aad", b"their joint dinner"));
    }

    #[test]
    fn the_field_key_is_hkdf_of_the_keys_with_the_aad_as_info() {
        // Worked out independently of `field_cipher`: HKDF over the concatenation.
        let (alice, bob) = (key(1), key(2));
        let mut ikm = [0u8; 64];
        ikm[..32].copy_from_slice(alice.as_bytes());
        ikm[32..].copy_from_slice(bob.as_bytes());
        let mut field_key = [0u8; 32];
        hkdf::Hkdf::<Sha256>::new(Some(b"rapport field key v1"), &ikm).expand(b"aad", &mut field_key).unwrap();
        let nonce = nonce_of(b"seed");
        let expected =
            Aes256GcmSiv::new(&field_key.into()).encrypt(&nonce, Payload { msg: b"text", aad: b"aad" }).unwrap();
        assert_eq!(seal(&[&alice, &bob], b"seed", b"aad", b"text")[12..], expected[..]);
    }

    #[test]
    #[should_panic(expected = "at least one data key")]
    fn sealing_under_no_key_is_a_bug() {
        let _ = seal(&[], b"seed", b"aad", b"text");
    }
}
