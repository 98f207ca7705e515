//! Finding the Go-built binaries: `PLUMB_TESTCLUSTER_BIN`, else the output of
//! `scripts/build-testcluster` (which builds them once per machine), else a clear error.
//! Never a silent skip: a test that needs the cluster fails when it is missing.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::OnceLock;

use crate::Error;

/// The environment variable naming the bin directory.
pub const BIN_DIR_ENV: &str = "PLUMB_TESTCLUSTER_BIN";

/// Every binary a complete build has.
pub const BINARIES: [&str; 8] = [
    "etcd",
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "kwok",
    "helm",
    "kustomize",
];

/// The directory holding the binaries (all of them present and executable).
pub fn bin_dir() -> Result<PathBuf, Error> {
    static FOUND: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    FOUND
        .get_or_init(|| locate().map_err(|e| e.to_string()))
        .clone()
        .map_err(|detail| Error::BinariesUnavailable { detail })
}

/// The path of one binary (e.g. `"kubectl"`, `"helm"`, `"kustomize"`).
pub fn binary(name: &str) -> Result<PathBuf, Error> {
    Ok(bin_dir()?.join(name))
}

/// The repository's `scripts/build-testcluster`, found from this crate's source location.
pub fn build_script() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-testcluster")
}

fn locate() -> Result<PathBuf, String> {
    if let Some(dir) = std::env::var_os(BIN_DIR_ENV) {
        let dir = PathBuf::from(dir);
        check(&dir)
            .map_err(|missing| format!("{BIN_DIR_ENV}={} lacks {missing}", dir.display()))?;
        return Ok(dir);
    }
    let script = build_script();
    if !script.exists() {
        return Err(format!(
            "{BIN_DIR_ENV} is not set and {} does not exist",
            script.display()
        ));
    }
    let dir = run_build_script(&script, None)?;
    check(&dir).map_err(|missing| {
        format!(
            "{} printed {}, which lacks {missing}",
            script.display(),
            dir.display()
        )
    })?;
    Ok(dir)
}

/// Runs the build script (progress on the inherited stderr) and returns the bin directory
/// it prints last. `cache_dir` overrides `PLUMB_CACHE_DIR`.
pub fn run_build_script(script: &Path, cache_dir: Option<&Path>) -> Result<PathBuf, String> {
    let mut command = Command::new(script);
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit());
    if let Some(cache_dir) = cache_dir {
        command.env("PLUMB_CACHE_DIR", cache_dir);
    }
    let output = command.output().map_err(|e| {
        format!(
            "{BIN_DIR_ENV} is not set and running {} failed: {e}",
            script.display()
        )
    })?;
    if !output.status.success() {
        return Err(format!(
            "{BIN_DIR_ENV} is not set and {} failed ({}); its messages are above",
            script.display(),
            output.status
        ));
    }
    let stdout = String::from_utf8_lossy(&output.stdout);
    let last = stdout
        .lines()
        .rev()
        .find(|l| !l.trim().is_empty())
        .unwrap_or("")
        .trim();
    if last.is_empty() {
        return Err(format!("{} printed no bin directory", script.display()));
    }
    Ok(PathBuf::from(last))
}

/// An error naming the missing binaries when `dir` lacks some.
pub(crate) fn check_dir(dir: &Path) -> Result<(), Error> {
    check(dir).map_err(|missing| Error::BinariesUnavailable {
        detail: format!("{} lacks {missing}", dir.display()),
    })
}

/// `Err(names)` when some binaries are missing or not executable.
fn check(dir: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt as _;
    let missing: Vec<&str> = BINARIES
        .iter()
        .copied()
        .filter(|name| {
            std::fs::metadata(dir.join(name))
                .map(|m| !m.is_file() || m.permissions().mode() & 0o111 == 0)
                .unwrap_or(true)
        })
        .collect();
    if missing.is_empty() {
        Ok(())
    } else {
        Err(missing.join(", "))
    }
}
