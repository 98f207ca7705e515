//! Errors of starting and running the server (not HTTP errors: see `api_error`).

use std::path::PathBuf;

/// Why the server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A file or directory in the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// The store was written by a newer plumb; it is left untouched.
    #[error(
        "{path}: store format {found} is newer than this plumb understands (up to {supported}); refusing to open it (the file was not modified)"
    )]
    NewerFormat {
        /// The store file.
        path: PathBuf,
        /// Format version recorded in the file.
        found: u64,
        /// Highest format version this build reads.
        supported: u64,
    },
    /// The store is unreadable; it is left untouched.
    #[error(
        "{path}: store is corrupt or not a plumb store ({detail}); refusing to open it (the file was not modified)"
    )]
    Corrupt {
        /// The store file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// Another process has the store open.
    #[error("{path}: store is in use by another running server")]
    InUse {
        /// The store file.
        path: PathBuf,
    },
    /// Reading or writing the store failed while running.
    #[error("store: {0}")]
    Storage(String),
    /// TLS material could not be created or loaded.
    #[error("TLS material in {path}: {detail}")]
    Tls {
        /// The data directory or file.
        path: PathBuf,
        /// What was wrong.
        detail: String,
    },
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: std::net::SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
}
