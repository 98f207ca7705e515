//! Compare, health and sync with Argo CD semantics.
//!
//! The pure cores — [`health`], [`lua`], [`sync`] planning, [`diff`], [`hooks`] and
//! [`tracking`] — work on manifests as `serde_json::Value` and do no I/O; they are tested
//! with golden data and property tests. [`compare`] and [`sync::operation`] talk to a cluster
//! through [`cluster`]. [`settings`] reads Argo CD's `argocd-cm` and customization
//! directories.

pub mod actions;
mod bounded_map;
pub mod client_apply;
pub mod cluster;
pub mod compare;
pub mod diff;
pub mod health;
pub mod hooks;
pub mod json;
pub mod lua;
pub mod settings;
pub mod sync;
pub mod tracking;

#[cfg(test)]
mod tests {
    use std::path::{Path, PathBuf};

    fn rust_files(dir: &Path, found: &mut Vec<PathBuf>) {
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{dir:?}: {e}"));
        for entry in entries {
            let path = entry.expect("directory entry").path();
            if path.is_dir() {
                rust_files(&path, found);
            } else if path.extension().is_some_and(|ext| ext == "rs") {
                found.push(path);
            }
        }
    }

    /// `health` and `diff` sit beneath `sync` (sync plans from their answers), so they must
    /// not reach back into it; what they share with it (hook annotations) lives in `hooks`.
    #[test]
    fn health_and_diff_never_import_sync() {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut files = Vec::new();
        rust_files(&src.join("health"), &mut files);
        rust_files(&src.join("diff"), &mut files);
        assert!(!files.is_empty());
        for file in files {
            let text = std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{file:?}: {e}"));
            for pattern in ["crate::sync", "super::super::sync"] {
                assert!(!text.contains(pattern), "{file:?} uses {pattern}");
            }
        }
    }
}
