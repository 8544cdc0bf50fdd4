//! Errors of the `kuma-sync` command. Every one of them exits with code 2.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Flags that do not make sense together or do not parse.
    #[error("{0}")]
    Usage(String),
    /// An input file could not be read at all.
    /// The IO error is in the message, not a `source`: printed with its chain
    /// (`{:#}`), it would say its reason twice.
    #[error("{}: {error}", path.display())]
    ReadFile { path: PathBuf, error: std::io::Error },
    /// An input file was read but a document in it is malformed.
    #[error(transparent)]
    Parse(#[from] kuma_model::read::ReadError),
    /// One resource in two files of one control plane, with different specs or labels:
    /// neither can be taken as what the control plane holds.
    #[error(
        "{}: {what} is also in {}, with a different spec or labels: one control plane's files must say one thing",
        second.display(),
        first.display()
    )]
    Contradiction {
        what: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// Writing the report failed (a closed pipe, a full disk).
    #[error("writing output: {0}")]
    Output(String),
}

impl Error {
    /// Nothing `verify` does on files succeeds by trying again unchanged.
    pub fn is_retryable(&self) -> bool {
        false
    }
}
