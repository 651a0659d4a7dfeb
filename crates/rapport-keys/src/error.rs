//! What can go wrong with keys: each error names the file, what is wrong and what to do, and
//! none carries key material.

use std::path::{Path, PathBuf};

/// An error of the key store or of a master key file.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// Reading, writing or syncing a file failed.
    #[error("{what} {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// What was being done to it ("writing", "syncing", …).
        what: &'static str,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The master key file is missing, malformed or not the key the keyring needs.
    #[error("the master key {}: {why}", path.display())]
    MasterKey {
        /// The master key file.
        path: PathBuf,
        /// What is wrong with it and what to do.
        why: String,
    },
    /// A key store file is damaged in a way opening cannot repair.
    #[error(
        "{} is damaged at byte {offset}: {why}; restore the key store directory from a backup taken with its master \
         key",
        path.display()
    )]
    Corrupt {
        /// The damaged file.
        path: PathBuf,
        /// Where in the file.
        offset: u64,
        /// What is wrong.
        why: String,
    },
    /// A subject asked for has been forgotten: its key is deleted, and it never gets another.
    #[error("subject {index} of the request has been forgotten: its key is deleted and it gets no new one")]
    Forgotten {
        /// The subject's index in the slice asked for.
        index: usize,
    },
    /// Another process has the key store open.
    #[error(
        "the key store {} is in use: another Rapport server holds its lock; stop it or use another data directory",
        dir.display()
    )]
    InUse {
        /// The key store's directory.
        dir: PathBuf,
    },
    /// An earlier write or sync failed, so the files may differ from what this process
    /// believes; the store takes no more changes until it is reopened.
    #[error(
        "the key store {} takes no more changes after an earlier failure ({why}); restart the server so that it \
         reopens the key store",
        dir.display()
    )]
    Failed {
        /// The key store's directory.
        dir: PathBuf,
        /// The earlier failure.
        why: String,
    },
    /// The cluster the store shares its keys with ([`crate::KeyCluster`]) could not agree on
    /// keys or forget a subject: it was unreachable, too slow or broken. Its implementation
    /// writes the message: which cluster, what failed and what to do.
    #[error("{why}")]
    Cluster {
        /// The whole message.
        why: String,
    },
    /// [`crate::KeyStore::rotate`] on a store that shares its keys with a cluster.
    #[error(
        "the master key cannot be rotated while the key store shares its keys with a cluster: the cluster holds every \
         key wrapped under the master key all its nodes are given, so a node with a new one could no longer open \
         them, nor the others its new keys; keep the master key (no scheduled rotation, no rotation after erasures \
         on a node of a cluster): rotating a cluster's master key is not supported yet"
    )]
    SharedMasterKey,
    /// The operating system gave no random bytes for a key or a nonce.
    #[error("the operating system gave no random bytes for a new key: {source}")]
    Randomness {
        /// Its error.
        source: getrandom::Error,
    },
}

/// A [`KeyError::Io`] for `path`.
pub(crate) fn io_error(path: &Path, what: &'static str) -> impl FnOnce(std::io::Error) -> KeyError {
    let path = path.to_owned();
    move |source| KeyError::Io { path, what, source }
}
