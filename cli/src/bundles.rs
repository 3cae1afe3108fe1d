//! Reading bundles from local paths, the way the reconciler reads them from S3.

use anyhow::{Context, Result, bail};
use eks_intents::intent::{self, BundleInput, BundleReport, Limits, check_namespace};
use eks_intents::model::{DesiredState, Namespace};
use std::fs;
use std::io::Read;
use std::path::{Path, PathBuf};

/// A path argument: `PATH`, or `NAMESPACE=PATH` to give that file's documents a default
/// namespace of their own (as `kubectl apply -n NAMESPACE -f PATH` would).
#[derive(Clone, Debug)]
pub struct PathArg {
    pub namespace: Option<Namespace>,
    pub path: PathBuf,
}

impl PathArg {
    pub fn parse(raw: &str) -> Result<Self> {
        if let Some((namespace, path)) = raw.split_once('=')
            && !namespace.contains('/')
            && !namespace.is_empty()
        {
            let namespace = check_namespace(namespace)
                .map_err(|e| anyhow::anyhow!("{raw}: {e} (the form is NAMESPACE=PATH)"))?;
            return Ok(PathArg {
                namespace: Some(namespace),
                path: PathBuf::from(path),
            });
        }
        Ok(PathArg {
            namespace: None,
            path: PathBuf::from(raw),
        })
    }
}

/// Every bundle file a path names: the file itself, or the bundle files under a directory
/// (`.yaml`, `.yml`, `.json`, `.tgz`, `.tar.gz`), in sorted order.
fn bundle_files(path: &Path) -> Result<Vec<PathBuf>> {
    let meta = fs::metadata(path).with_context(|| format!("{}: cannot read", path.display()))?;
    if meta.is_file() {
        return Ok(vec![path.to_owned()]);
    }
    let mut out = Vec::new();
    let mut entries: Vec<PathBuf> = fs::read_dir(path)
        .with_context(|| format!("{}: cannot list", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    entries.sort();
    for entry in entries {
        if entry.is_dir() {
            out.extend(bundle_files(&entry)?);
        } else {
            let name = entry.to_string_lossy();
            if [".yaml", ".yml", ".json", ".tgz", ".tar.gz"]
                .iter()
                .any(|ext| name.ends_with(ext))
            {
                out.push(entry);
            }
        }
    }
    Ok(out)
}

/// Reads every bundle the arguments name. A file too large is read only up to the cap, so
/// the reader reports it without loading it whole.
pub fn read_all(
    args: &[PathArg],
    default_namespace: Option<&Namespace>,
    limits: &Limits,
) -> Result<Vec<BundleReport>> {
    let mut reports = Vec::new();
    for arg in args {
        let files = bundle_files(&arg.path)?;
        if files.is_empty() {
            bail!("{}: no bundle files here", arg.path.display());
        }
        for file in files {
            let key = file.to_string_lossy();
            let mut bytes = Vec::new();
            let size = fs::File::open(&file)
                .and_then(|f| {
                    let size = f.metadata()?.len();
                    if size <= limits.max_bundle_bytes as u64 {
                        f.take(limits.max_bundle_bytes as u64 + 1)
                            .read_to_end(&mut bytes)?;
                    }
                    Ok(size)
                })
                .with_context(|| format!("{}: cannot read", file.display()))?;
            // Refused by its real size: what a capped read took is not the bundle's size.
            let too_large = limits.bundle_too_large(size).map(|e| e.to_string());
            let too_large = too_large.or_else(|| {
                (bytes.len() > limits.max_bundle_bytes).then(|| {
                    format!(
                        "bundle grew past the limit of {} bytes while being read",
                        limits.max_bundle_bytes
                    )
                })
            });
            if let Some(problem) = too_large {
                reports.push(intent::BundleReport::refused(&key, problem));
                continue;
            }
            let namespace = arg.namespace.as_ref().or(default_namespace);
            reports.push(intent::read_bundle(
                &BundleInput {
                    key: &key,
                    bytes: &bytes,
                    default_namespace: namespace,
                    tenant_namespace: None,
                },
                limits,
            ));
        }
    }
    Ok(reports)
}

/// The desired state the bundles give, their intents moved out of the reports (which keep
/// their diagnostics): a fleet's intents are held once, not once as read and once as desired.
pub fn desired_state(reports: &mut [BundleReport]) -> DesiredState {
    let mut desired = DesiredState::default();
    for report in reports {
        report.move_into(&mut desired);
    }
    desired
}

/// Prints notices and errors as `file:line: message` on stderr; returns the error count.
pub fn print_diagnostics(reports: &[BundleReport]) -> usize {
    let mut errors = 0;
    for report in reports {
        for notice in &report.notices {
            eprintln!("{notice}");
        }
        for error in &report.errors {
            eprintln!("{error}");
            errors += 1;
        }
    }
    errors
}
