//! The master key: the key that wraps every data key at rest, and its file.

use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use aes_gcm_siv::aead::AeadInOut;
use aes_gcm_siv::{Aes256GcmSiv, KeyInit, Nonce, Tag};
use sha2::{Digest, Sha256};
use tracing::warn;
use zeroize::{Zeroize, Zeroizing};

use crate::error::io_error;
use crate::{DataKey, KeyError, SubjectId};

/// A wrapped data key: nonce (12) ‖ ciphertext (32) ‖ tag (16).
pub(crate) const WRAPPED_LEN: usize = 12 + 32 + 16;

/// A data key wrapped under the master key, byte for byte as a keyring slot holds it: nonce
/// (12) ‖ AES-256-GCM-SIV ciphertext of the key and its tag (48), the subject's id as the
/// associated data.
///
/// It opens only under the master key that wrapped it, and only for its subject. That is what
/// lets it travel: the nodes of a cluster, all given the same master key file, share their keys
/// as wrapped keys ([`crate::KeyCluster`]), and never as the keys themselves. Its `Debug` shows
/// no bytes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct WrappedKey(pub(crate) [u8; WRAPPED_LEN]);

impl WrappedKey {
    /// A wrapped key's length in bytes.
    pub const LEN: usize = WRAPPED_LEN;

    /// A wrapped key from its bytes (as another node sent them).
    pub fn from_bytes(bytes: [u8; WrappedKey::LEN]) -> WrappedKey {
        WrappedKey(bytes)
    }

    /// Its bytes, to send to other nodes.
    pub fn as_bytes(&self) -> &[u8; WrappedKey::LEN] {
        &self.0
    }
}

impl std::fmt::Debug for WrappedKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("WrappedKey(..)")
    }
}

/// The longest master key file read: 64 digits with room for whitespace around them. A longer
/// file is not a master key file, and is not read into memory.
const MAX_FILE_LEN: u64 = 4096;

/// The key that wraps every data key at rest. 32 random bytes, zeroed on drop, never printed.
pub struct MasterKey([u8; 32]);

impl MasterKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<MasterKey, KeyError> {
        let mut bytes = [0; 32];
        getrandom::fill(&mut bytes).map_err(|source| KeyError::Randomness { source })?;
        Ok(MasterKey(bytes))
    }

    /// A key from its 32 bytes (from a secret manager, or in tests).
    pub fn from_bytes(bytes: [u8; 32]) -> MasterKey {
        MasterKey(bytes)
    }

    /// Reads a master key file: 64 hex digits (either case), surrounding whitespace ignored.
    /// Errors name the path and what is wrong, never the file's content. A file that other
    /// users may read is accepted with a warning.
    pub fn read(path: &Path) -> Result<MasterKey, KeyError> {
        let wrong = |why: String| KeyError::MasterKey { path: path.to_owned(), why };
        let mut file = match File::open(path) {
            Ok(file) => file,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(wrong("there is no such file; give the file that holds the key store's master key".into()));
            }
            Err(e) => return Err(io_error(path, "opening the master key")(e)),
        };
        let metadata = file.metadata().map_err(io_error(path, "reading the master key"))?;
        if !metadata.is_file() {
            return Err(wrong("is not a file".into()));
        }
        if metadata.len() > MAX_FILE_LEN {
            return Err(wrong(format!(
                "is {} bytes long; a master key file holds 64 hexadecimal digits",
                metadata.len()
            )));
        }
        if metadata.permissions().mode() & 0o077 != 0 {
            warn!(
                path = %path.display(),
                mode = format_args!("{:o}", metadata.permissions().mode() & 0o777),
                "the master key file can be read by other users; make it readable by its owner only (chmod 600)"
            );
        }
        // Sized for the whole file, so that reading never moves the digits to a larger buffer
        // and leaves a copy behind unzeroed.
        let mut content = Zeroizing::new(Vec::with_capacity(MAX_FILE_LEN as usize + 1));
        file.read_to_end(&mut content).map_err(io_error(path, "reading the master key"))?;
        let digits = content.trim_ascii();
        if digits.len() != 64 {
            return Err(wrong(format!(
                "holds {} characters besides whitespace; a master key file holds exactly 64 hexadecimal digits",
                digits.len()
            )));
        }
        let mut bytes = [0u8; 32];
        for (i, pair) in digits.chunks_exact(2).enumerate() {
            match (hex_value(pair[0]), hex_value(pair[1])) {
                (Some(high), Some(low)) => bytes[i] = high << 4 | low,
                _ => {
                    bytes.zeroize();
                    return Err(wrong(format!(
                        "holds something other than a hexadecimal digit near character {}; a master key file holds \
                         64 hexadecimal digits",
                        2 * i + 1
                    )));
                }
            }
        }
        Ok(MasterKey(bytes))
    }

    /// Writes the key file atomically and durably: a temporary file in the same directory,
    /// created with mode 0600, written, fsynced, renamed over `path`, the directory fsynced.
    /// A crash leaves either the old file or the new one at `path`, never a part of either.
    /// (A symbolic link at `path` is replaced, not followed.)
    pub fn write(&self, path: &Path) -> Result<(), KeyError> {
        let dir = parent_dir(path);
        let Some(name) = path.file_name() else {
            return Err(KeyError::MasterKey { path: path.to_owned(), why: "names no file".into() });
        };
        let mut temporary_name = std::ffi::OsString::from(".");
        temporary_name.push(name);
        temporary_name.push(".tmp");
        let temporary = dir.join(temporary_name);
        // A leftover of a write a crash interrupted holds a key that never became the master:
        // it goes, so that the file is created afresh with this mode.
        match fs::remove_file(&temporary) {
            Ok(()) => {}
            Err(e) if e.kind() == ErrorKind::NotFound => {}
            Err(e) => return Err(io_error(&temporary, "removing the leftover")(e)),
        }
        let written = write_new(&temporary, &self.to_hex()).and_then(|()| {
            fs::rename(&temporary, path).map_err(io_error(path, "renaming the new master key into place at"))
        });
        if written.is_err() {
            let _ = fs::remove_file(&temporary);
        }
        written?;
        sync_directory(&dir)
    }

    /// 16 bytes identifying the key without revealing it:
    /// SHA-256("rapport master check v1\0" ‖ key)[..16].
    pub fn check(&self) -> [u8; 16] {
        let digest = Sha256::new().chain_update(b"rapport master check v1\0").chain_update(self.0).finalize();
        let mut check = [0; 16];
        check.copy_from_slice(&digest[..16]);
        check
    }

    /// Wraps `key` for `subject`, under a random nonce: nonce ‖ ciphertext ‖ tag. The subject
    /// is the associated data, so a wrapped key copied into another subject's slot does not
    /// open.
    pub(crate) fn wrap(&self, subject: &SubjectId, key: &DataKey) -> Result<[u8; WRAPPED_LEN], KeyError> {
        let mut nonce = Nonce::default();
        getrandom::fill(&mut nonce).map_err(|source| KeyError::Randomness { source })?;
        let mut wrapped = [0u8; WRAPPED_LEN];
        wrapped[..12].copy_from_slice(&nonce);
        let ciphertext = &mut wrapped[12..44];
        ciphertext.copy_from_slice(key.as_bytes());
        match self.cipher().encrypt_inout_detached(&nonce, subject.as_bytes(), ciphertext.into()) {
            Ok(tag) => wrapped[44..].copy_from_slice(&tag),
            // Only a message or aad of 64 GiB is refused; this one is 32 bytes.
            Err(_) => unreachable!("a 32-byte key is within AES-GCM-SIV's limits"),
        }
        Ok(wrapped)
    }

    /// Unwraps what [`MasterKey::wrap`] made for `subject`; `None` when it does not open
    /// (another master key, another subject, altered bytes).
    pub(crate) fn unwrap_key(&self, subject: &SubjectId, wrapped: &[u8; WRAPPED_LEN]) -> Option<DataKey> {
        let nonce = Nonce::try_from(&wrapped[..12]).ok()?;
        let tag = Tag::try_from(&wrapped[44..]).ok()?;
        let mut key = [0u8; 32];
        key.copy_from_slice(&wrapped[12..44]);
        match self.cipher().decrypt_inout_detached(&nonce, subject.as_bytes(), key.as_mut_slice().into(), &tag) {
            Ok(()) => Some(DataKey::from_bytes(key)),
            Err(_) => None,
        }
    }

    fn cipher(&self) -> Aes256GcmSiv {
        Aes256GcmSiv::new((&self.0).into())
    }

    fn to_hex(&self) -> Zeroizing<String> {
        const DIGITS: &[u8; 16] = b"0123456789abcdef";
        let mut hex = Zeroizing::new(String::with_capacity(65));
        for byte in &self.0 {
            hex.push(char::from(DIGITS[usize::from(byte >> 4)]));
            hex.push(char::from(DIGITS[usize::from(byte & 0x0f)]));
        }
        hex.push('\n');
        hex
    }
}

impl Drop for MasterKey {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl std::fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("MasterKey(..)")
    }
}

fn hex_value(digit: u8) -> Option<u8> {
    match digit {
        b'0'..=b'9' => Some(digit - b'0'),
        b'a'..=b'f' => Some(digit - b'a' + 10),
        b'A'..=b'F' => Some(digit - b'A' + 10),
        _ => None,
    }
}

/// Creates `path` (which must not exist) with mode 0600, writes `content` and syncs it.
fn write_new(path: &Path, content: &str) -> Result<(), KeyError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io_error(path, "creating the new master key"))?;
    file.write_all(content.as_bytes()).map_err(io_error(path, "writing the new master key"))?;
    file.sync_all().map_err(io_error(path, "syncing the new master key"))
}

/// The directory `path` is in (`.` for a bare file name).
pub(crate) fn parent_dir(path: &Path) -> PathBuf {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir.to_owned(),
        _ => PathBuf::from("."),
    }
}

/// Makes a directory's entries (a created, renamed or removed file) durable.
pub(crate) fn sync_directory(dir: &Path) -> Result<(), KeyError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(io_error(dir, "syncing the directory"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_key_reads_back_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("master.key");
        let key = MasterKey::generate().unwrap();
        key.write(&path).unwrap();
        assert_eq!(fs::metadata(&path).unwrap().permissions().mode() & 0o777, 0o600);
        assert_eq!(MasterKey::read(&path).unwrap().check(), key.check());
        let content = fs::read_to_string(&path).unwrap();
        assert_eq!(content.len(), 65, "64 digits and a newline");
        // Written again over the first: replaced, and no temporary file is left.
        let other = MasterKey::generate().unwrap();
        other.write(&path).unwrap();
        assert_eq!(MasterKey::read(&path).unwrap().check(), other.check());
        let names: Vec<_> = fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name()).collect();
        assert_eq!(names, ["master.key"]);
    }

    #[test]
    fn either_case_and_surrounding_whitespace_are_accepted() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let hex = "00112233445566778899AABBCCDDEEFF00112233445566778899aabbccddeeff";
        fs::write(&path, format!("\n  {hex}\t\r\n")).unwrap();
        let key = MasterKey::read(&path).unwrap();
        let mut expected = [0u8; 32];
        for (i, byte) in expected.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16).unwrap();
        }
        assert_eq!(key.0, expected);
    }

    #[test]
    fn a_malformed_file_is_refused_naming_the_path_and_not_the_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("key");
        let secretish = format!("{}ab", "5ec2e7".repeat(10));
        let cases = [
            (secretish.clone(), "62 characters"),
            (format!("{secretish}zz"), "hexadecimal digit near character 63"),
            (format!("{secretish}00 00"), "67 characters"),
            ("x".repeat(5000), "5000 bytes long"),
            (String::new(), "0 characters"),
        ];
        for (content, why) in cases {
            fs::write(&path, &content).unwrap();
            let message = MasterKey::read(&path).unwrap_err().to_string();
            assert!(message.contains(&path.display().to_string()), "{message}");
            assert!(message.contains(why), "{message} should say {why}");
            assert!(!message.contains("5ec2e7"), "{message} shows the content");
        }
        let missing = dir.path().join("missing");
        let message = MasterKey::read(&missing).unwrap_err().to_string();
        assert!(message.contains("missing: there is no such file"), "{message}");
        assert!(MasterKey::read(dir.path()).unwrap_err().to_string().contains("is not a file"));
    }

    #[test]
    fn the_check_identifies_the_key() {
        let key = MasterKey::from_bytes([9; 32]);
        let digest = Sha256::digest([b"rapport master check v1\0".as_slice(), &[9; 32]].concat());
        assert_eq!(key.check(), digest[..16]);
        assert_ne!(key.check(), MasterKey::from_bytes([8; 32]).check());
        assert_eq!(format!("{key:?}"), "MasterKey(..)");
    }

    #[test]
    fn a_wrapped_key_opens_only_with_its_master_and_subject() {
        let master = MasterKey::generate().unwrap();
        let (alice, bob) = (SubjectId::from_bytes([1; 32]), SubjectId::from_bytes([2; 32]));
        let key = DataKey::from_bytes([7; 32]);
        let wrapped = master.wrap(&alice, &key).unwrap();
        assert_eq!(master.unwrap_key(&alice, &wrapped).unwrap().as_bytes(), key.as_bytes());
        assert_ne!(wrapped, master.wrap(&alice, &key).unwrap(), "nonces are random");
        assert!(master.unwrap_key(&bob, &wrapped).is_none());
        assert!(MasterKey::generate().unwrap().unwrap_key(&alice, &wrapped).is_none());
        let mut altered = wrapped;
        altered[20] ^= 1;
        assert!(master.unwrap_key(&alice, &altered).is_none());
    }
}
