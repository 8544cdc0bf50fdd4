//! `probe --record DIR`: every KDS response the global sent, as the bytes of the
//! `DeltaDiscoveryResponse` it was, one file each, in arrival order. It is what a user
//! attaches to a bug report ("this is what my global sends"), and what the conformance
//! tests replay: [`replay`] decodes a recording as the probe would have.
//!
//! Files are `NNNNNN-<Type>.binpb` (protobuf binary, `kuma-sync probe` names them, the
//! number counts responses of the process). The probe never subscribes to Secrets, so a
//! recording holds none; it does hold every policy of every mesh it was sent.

use std::{
    fs,
    path::{Path, PathBuf},
    sync::atomic::{AtomicU64, Ordering},
};

use jiff::Timestamp;
use kds_wire::DeltaDiscoveryResponse;
use kuma_model::{Resource, ResourceType};
use prost::Message;

use crate::decode::decode_entry;

/// Writes each response to a directory; a write that fails is logged once and never
/// disturbs the stream (recording is for people, the ACKs are for the global).
#[derive(Debug)]
pub struct Recorder {
    dir: PathBuf,
    next: AtomicU64,
    failed: std::sync::atomic::AtomicBool,
}

impl Recorder {
    /// Records into `dir`, creating it.
    pub fn new(dir: &Path) -> std::io::Result<Self> {
        fs::create_dir_all(dir)?;
        Ok(Self {
            dir: dir.to_owned(),
            next: AtomicU64::new(1),
            failed: Default::default(),
        })
    }

    pub fn record(&self, response: &DeltaDiscoveryResponse) {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        // The type URL is a Kuma type name; anything else is written under a neutral name.
        let rtype = ResourceType::from_name(&response.type_url).map_or("unknown", |t| t.name());
        let path = self.dir.join(format!("{n:06}-{rtype}.binpb"));
        if let Err(error) = fs::write(&path, response.encode_to_vec())
            && !self.failed.swap(true, Ordering::Relaxed)
        {
            tracing::warn!(path = %path.display(), %error, "cannot record a KDS response; not recording further failures");
        }
    }
}

/// One recorded response, decoded.
#[derive(Debug)]
pub struct Replayed {
    pub file: PathBuf,
    pub type_url: String,
    /// Resources the response carried, and how many of them the probe could not decode
    /// (with why, one line each).
    pub resources: usize,
    pub undecodable: Vec<String>,
    pub removed: usize,
    /// What the probe's view would hold of each resource it could decode.
    pub decoded: Vec<Resource>,
}

/// Why a recording cannot be replayed.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The directory or a file cannot be read.
    #[error("{path}: {error}")]
    Read { path: PathBuf, error: std::io::Error },
    /// A file is not a `DeltaDiscoveryResponse`.
    #[error("{path}: not a KDS response: {error}")]
    NotAResponse {
        path: PathBuf,
        error: prost::DecodeError,
    },
}

impl ReplayError {
    /// A recording does not change by being read again.
    pub fn is_retryable(&self) -> bool {
        false
    }
}

/// Decodes every response recorded in `dir`, in recording order, as the probe would
/// have on receiving it.
pub fn replay(dir: &Path) -> Result<Vec<Replayed>, ReplayError> {
    let read_error = |path: &Path, error| ReplayError::Read {
        path: path.to_owned(),
        error,
    };
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .map_err(|e| read_error(dir, e))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "binpb"))
        .collect();
    files.sort();
    let now = Timestamp::now();
    files
        .into_iter()
        .map(|file| {
            let bytes = fs::read(&file).map_err(|e| read_error(&file, e))?;
            let response = DeltaDiscoveryResponse::decode(bytes.as_slice()).map_err(|error| {
                ReplayError::NotAResponse {
                    path: file.clone(),
                    error,
                }
            })?;
            let mut undecodable = Vec::new();
            let mut decoded = Vec::new();
            match ResourceType::from_name(&response.type_url) {
                Some(rtype) => {
                    for wire in &response.resources {
                        let entry = decode_entry(rtype, wire, now);
                        match entry.decode_error {
                            Some(ref reason) => undecodable.push(format!("{}: {reason}", wire.name)),
                            None => decoded.extend(entry.into_resource()),
                        }
                    }
                }
                None => undecodable.push(format!("type {:?} is not a Kuma type", response.type_url)),
            }
            Ok(Replayed {
                file,
                type_url: response.type_url,
                resources: response.resources.len(),
                undecodable,
                removed: response.removed_resources.len(),
                decoded,
            })
        })
        .collect()
}
