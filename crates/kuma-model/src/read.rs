//! Readers: the documents users have in hand, turned into [`Resource`]s.
//! (Being written; the API below is the contract.)

use crate::Resource;

/// How to treat documents of a type kuma-sync does not know.
#[derive(Debug, Clone, Copy, Default)]
pub struct ReadOptions {
    /// Skip unknown types with a warning instead of failing the whole input.
    pub skip_unknown_types: bool,
}

/// What a reader produced: every resource, or an error; never half of them silently.
#[derive(Debug, Default)]
pub struct Loaded {
    pub resources: Vec<Resource>,
    /// Documents skipped on purpose (unknown types with `skip_unknown_types`), one line each.
    pub warnings: Vec<String>,
}

/// Input that could not be read, located precisely.
#[derive(Debug, thiserror::Error)]
#[error("{source_name}: document {document}: {reason}")]
pub struct ReadError {
    /// The file name (or other label) the caller gave.
    pub source_name: String,
    /// 1-based index of the document in a multi-document stream or list.
    pub document: usize,
    pub reason: String,
}

/// Reads every document in `text`, detecting its format.
pub fn read_str(source_name: &str, text: &str, opts: &ReadOptions) -> Result<Loaded, ReadError> {
    let _ = (source_name, text, opts);
    todo!("readers")
}
