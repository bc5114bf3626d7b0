//! The crate's error type.

use std::path::PathBuf;

use snd_voip_logic::fifo::FifoError;

/// Why a simulator operation failed.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// An I/O error on a named file.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: std::io::Error,
    },
    /// The requested window does not lie inside the file.
    #[error("region {offset:#x}+{size:#x} does not fit in {path} ({len:#x} bytes)")]
    OutsideFile {
        /// The file.
        path: PathBuf,
        /// Window offset in the file.
        offset: u64,
        /// Window size.
        size: usize,
        /// File length.
        len: u64,
    },
    /// The region or a ring header is not 8-byte aligned (counters are u64).
    #[error("{0:#x} is not 8-byte aligned")]
    Misaligned(u64),
    /// A ring header does not validate, or its counters are impossible.
    #[error("{ring} ring: {err:?}")]
    Ring {
        /// "mic" or "speaker".
        ring: &'static str,
        /// What `snd_voip_logic::fifo` reported.
        err: FifoError,
    },
    /// Command-line parameters that cannot work.
    #[error("{0}")]
    Params(String),
    /// An input WAV file the simulator cannot play.
    #[error("{path}: {msg}")]
    Wav {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        msg: String,
    },
}

impl SimError {
    /// Wraps an I/O error with the file it concerns.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        SimError::Io {
            path: path.into(),
            source,
        }
    }
}
