//! `kuma-sync verify` on files: load every control plane's documents, fold them into the
//! engine, and report.

use std::{
    collections::{BTreeMap, HashMap, hash_map::Entry},
    fs,
    path::{Path, PathBuf},
};

use kuma_model::{
    CpRole, Environment, Fingerprint, KumaLine, Resource, ResourceKey, ResourceType, fingerprint,
    read::{ReadOptions, labels_digest, read_each, read_str},
    version::export_header_version,
};
use policy_watcher::{Discrepancy, Engine, Report, Selection, Topology, ZoneSpec, seed::check_seed};

use crate::{
    cli::{EnvArg, VerifyArgs},
    error::Error,
};

/// What `verify` concluded, before rendering.
#[derive(Debug)]
pub struct Verdict {
    pub report: Report,
    /// Problems found by `--export`, shown with the report's discrepancies.
    pub seed: Vec<Discrepancy>,
    /// Documents skipped with `--skip-unknown-types`.
    pub warnings: Vec<String>,
    /// Live control planes that could not be read, with why; their zones are `unknown`.
    pub unreadable: Vec<Unreadable>,
    /// The Kuma line whose sync rules were applied.
    pub kuma: KumaLine,
}

/// A control plane `verify --config` could not read.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Unreadable {
    pub cp: String,
    pub error: String,
}

impl Verdict {
    /// Converged only when every control plane was read, every zone is converged and
    /// the comparison proved something: a verdict on what was never seen is no verdict.
    pub fn converged(&self) -> bool {
        self.report.converged
            && self.seed.is_empty()
            && self.unreadable.is_empty()
            && self.inconclusive().is_none()
    }

    /// Why the comparison proves nothing, whatever it found: no zone was checked, or
    /// no side held a single resource of the checked types.
    pub fn inconclusive(&self) -> Option<&'static str> {
        if self.report.zones.is_empty() {
            return Some("no zone was checked: name at least one zone (--zone, or zones: in --config)");
        }
        let compared: usize = self.report.zones.iter().flat_map(|z| z.counts.values()).sum();
        let any_unknown = self
            .report
            .zones
            .iter()
            .any(|z| z.state == policy_watcher::ZoneState::Unknown);
        (compared == 0 && self.seed.is_empty() && !any_unknown).then_some(
            "nothing was compared: neither the global nor any zone holds a resource of the checked types",
        )
    }
}

/// One control plane's input files.
struct Input {
    files: Vec<PathBuf>,
    env: Option<EnvArg>,
}

/// Runs the offline verification described by `args`.
pub fn run(args: &VerifyArgs) -> Result<Verdict, Error> {
    let opts = ReadOptions {
        skip_unknown_types: args.skip_unknown_types,
        // A file is a whole control plane: a page with more after it is refused.
        caller_follows_pages: false,
    };
    let mut zones: BTreeMap<String, Input> = BTreeMap::new();
    for z in &args.zones {
        let (name, file) = split_pair(z, "--zone")?;
        validate_zone_name(name)?;
        zones
            .entry(name.to_owned())
            .or_insert_with(|| Input {
                files: Vec::new(),
                env: None,
            })
            .files
            .push(file.into());
    }
    for z in &args.zone_envs {
        let (name, env) = split_pair(z, "--zone-env")?;
        let input = zones
            .get_mut(name)
            .ok_or_else(|| Error::Usage(format!("--zone-env names zone {name:?}, which has no --zone")))?;
        input.env = Some(<EnvArg as clap::ValueEnum>::from_str(env, true).map_err(|_| {
            Error::Usage(format!(
                "--zone-env {name}={env}: expected universal or kubernetes"
            ))
        })?);
    }
    let mut warnings = Vec::new();
    let mut versions = Vec::new();
    // Texts first, parsed later straight into the engine: the environment and the Kuma
    // version (which decide the engine's rules) come from the texts, and a parsed
    // control plane is many times its text.
    let global = Texts::read(&args.global, args.global_env, &args.system_namespace)?;
    versions.extend(global.version.clone());
    let mut specs = Vec::new();
    let mut zone_texts = Vec::new();
    for (name, input) in &zones {
        let zone = Texts::read(&input.files, input.env, &args.system_namespace)?;
        versions.extend(zone.version.clone());
        specs.push(ZoneSpec::new(name, zone.env.clone()));
        zone_texts.push((name.clone(), zone));
    }
    // The global decides what it sends, so its version counts first; a zone's export is
    // the next best witness.
    let kuma = match args.kuma_version {
        Some(line) => line,
        None => match versions.first() {
            Some(version) => {
                let detected = KumaLine::detect(version);
                warnings.extend(detected.warning);
                detected.line
            }
            None => KumaLine::default(),
        },
    };
    let selection = selection(args, kuma, &mut warnings)?;

    let mut engine = Engine::new(
        Topology::new(global.env.clone(), specs).with_kuma(kuma),
        selection,
    );
    // Each file is a whole read of its control plane, empty or not: a zone whose file
    // holds nothing is read (every copy missing there), not unknown. The seed check
    // needs the global's resources whole; only then are they kept.
    let mut global_docs = args.export.as_ref().map(|_| Vec::new());
    global.feed(
        &mut engine,
        &CpRole::Global,
        &opts,
        &mut warnings,
        global_docs.as_mut(),
    )?;
    drop(global);
    for (name, texts) in zone_texts {
        texts.feed(&mut engine, &CpRole::Zone(name), &opts, &mut warnings, None)?;
    }
    let seed = match (&args.export, &global_docs) {
        (Some(path), Some(global_docs)) => {
            let exported = read_file(path, &opts, &mut warnings)?;
            check_seed(global_docs, &exported)
        }
        _ => Vec::new(),
    };
    Ok(Verdict {
        report: Report::build(&engine).with_probe_zone(kds_probe::config::DEFAULT_ZONE_NAME),
        seed,
        warnings,
        unreadable: Vec::new(),
        kuma,
    })
}

fn selection(args: &VerifyArgs, kuma: KumaLine, warnings: &mut Vec<String>) -> Result<Selection, Error> {
    let meshes = (!args.meshes.is_empty()).then(|| args.meshes.clone());
    if args.types.is_empty() {
        return Ok(Selection::new(ResourceType::default_checked(kuma), meshes));
    }
    let mut types = Vec::new();
    for t in &args.types {
        let rtype =
            ResourceType::parse(t).ok_or_else(|| Error::Usage(format!("unknown resource type {t:?}")))?;
        if kuma.has_type(rtype.name()) {
            types.push(rtype);
        } else {
            warnings.push(format!("{rtype} does not exist in Kuma {kuma}: not checked"));
        }
    }
    Ok(Selection::new(types, meshes))
}

fn split_pair<'a>(s: &'a str, flag: &str) -> Result<(&'a str, &'a str), Error> {
    match s.split_once('=') {
        Some((k, v)) if !k.is_empty() && !v.is_empty() => Ok((k, v)),
        _ => Err(Error::Usage(format!("{flag} {s:?}: expected NAME=VALUE"))),
    }
}

/// Kuma requires zone names to be DNS labels (kuma-semantics 7.1).
fn validate_zone_name(name: &str) -> Result<(), Error> {
    kuma_model::zone_name::check(name)
        .map_err(|reason| Error::Usage(format!("zone name {name:?} is not a DNS label: {reason}")))
}

/// One control plane's files, read but not yet parsed.
struct Texts {
    files: Vec<(PathBuf, String)>,
    env: Environment,
    /// The Kuma version a `kumactl export` header names, if a file has one.
    version: Option<String>,
}

impl Texts {
    /// Reads a control plane's files and settles its environment: as given, else
    /// Kubernetes when its files are Kubernetes manifests.
    fn read(files: &[PathBuf], env: Option<EnvArg>, system_namespace: &str) -> Result<Self, Error> {
        let mut texts = Vec::with_capacity(files.len());
        let mut looks_kubernetes = !files.is_empty();
        let mut version = None;
        for f in files {
            let text = read_text(f)?;
            looks_kubernetes &= is_kubernetes(&text);
            version = version.or_else(|| export_header_version(&text).map(str::to_owned));
            texts.push((f.clone(), text));
        }
        let env = match env.unwrap_or(if looks_kubernetes {
            EnvArg::Kubernetes
        } else {
            EnvArg::Universal
        }) {
            EnvArg::Universal => Environment::Universal,
            EnvArg::Kubernetes => Environment::Kubernetes {
                system_namespace: system_namespace.to_owned(),
            },
        };
        Ok(Self {
            files: texts,
            env,
            version,
        })
    }

    /// Parses every file into the engine as `cp`'s whole observation, a document at a
    /// time. One file is checked for contradictions by the reader itself; across files
    /// it is checked here, on digests. With `keep`, a copy of each resource goes there.
    fn feed(
        &self,
        engine: &mut Engine,
        cp: &CpRole,
        opts: &ReadOptions,
        warnings: &mut Vec<String>,
        mut keep: Option<&mut Vec<Resource>>,
    ) -> Result<(), Error> {
        // Which file each resource came from, with its contents' digests.
        let mut from: HashMap<ResourceKey, (usize, Fingerprint, u128)> = HashMap::new();
        engine.load_each(cp, |push| {
            for (file, (path, text)) in self.files.iter().enumerate() {
                let mut contradiction = None;
                let read = read_each(&path.display().to_string(), text, opts, &mut |r| {
                    if contradiction.is_some() {
                        return;
                    }
                    let digests = (fingerprint(&r.spec), labels_digest(&r.labels));
                    match from.entry(r.key()) {
                        Entry::Vacant(slot) => {
                            slot.insert((file, digests.0, digests.1));
                        }
                        Entry::Occupied(slot) => {
                            let (first, spec, labels) = *slot.get();
                            if (spec, labels) != digests {
                                let mesh = r.mesh.as_deref().map(|m| format!("{m}/")).unwrap_or_default();
                                contradiction = Some(Error::Contradiction {
                                    what: format!("{} {mesh}{}", r.rtype, r.name),
                                    first: self.files[first].0.clone(),
                                    second: path.clone(),
                                });
                            }
                            // The same resource in two files is read once.
                            return;
                        }
                    }
                    if let Some(keep) = keep.as_deref_mut() {
                        keep.push(r.clone());
                    }
                    push(r);
                })?;
                if let Some(e) = contradiction {
                    return Err(e);
                }
                warnings.extend(read);
            }
            Ok(())
        })?;
        Ok(())
    }
}

fn read_file(path: &Path, opts: &ReadOptions, warnings: &mut Vec<String>) -> Result<Vec<Resource>, Error> {
    let text = read_text(path)?;
    parse(path, &text, opts, warnings)
}

fn read_text(path: &Path) -> Result<String, Error> {
    fs::read_to_string(path).map_err(|error| Error::ReadFile {
        path: path.to_owned(),
        error,
    })
}

fn parse(
    path: &Path,
    text: &str,
    opts: &ReadOptions,
    warnings: &mut Vec<String>,
) -> Result<Vec<Resource>, Error> {
    let loaded = read_str(&path.display().to_string(), text, opts)?;
    warnings.extend(loaded.warnings);
    Ok(loaded.resources)
}

/// Kubernetes manifests all carry `apiVersion`; Kuma's own formats never do.
fn is_kubernetes(text: &str) -> bool {
    text.lines().any(|l| {
        let l = l.trim_start().trim_start_matches("- ");
        l.starts_with("apiVersion:") || l.starts_with("\"apiVersion\"")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zone_names_must_be_dns_labels() {
        assert!(validate_zone_name("zone-1").is_ok());
        for bad in ["Zone1", "-z", "z-", "a_b", &"a".repeat(64)] {
            assert!(validate_zone_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn pairs_need_both_sides() {
        assert_eq!(
            split_pair("zone-1=a.yaml", "--zone").unwrap(),
            ("zone-1", "a.yaml")
        );
        for bad in ["zone-1", "=a.yaml", "zone-1="] {
            let err = split_pair(bad, "--zone").unwrap_err().to_string();
            assert!(err.contains("expected NAME=VALUE"), "{err}");
        }
    }

    #[test]
    fn kubernetes_manifests_are_recognised() {
        assert!(is_kubernetes("apiVersion: v1\nkind: List\nitems: []\n"));
        assert!(is_kubernetes("items:\n- apiVersion: kuma.io/v1alpha1\n"));
        assert!(is_kubernetes("{\n  \"apiVersion\": \"v1\"\n}"));
        assert!(!is_kubernetes("type: Mesh\nname: default\n"));
    }
}
