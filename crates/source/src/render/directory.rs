//! A directory of plain manifests: `.yaml`/`.yml`/`.json` files, and `.jsonnet` files
//! evaluated (`.libsonnet` are only imported), with Argo CD's `recurse`, `include` and
//! `exclude` (globs over the path relative to the application directory; `{a,b}` lists).

use std::path::{Path, PathBuf};

use globset::{Glob, GlobMatcher};
use plumb_model::application::ApplicationSource;

use super::{Manifest, RenderError, Rendered, relative, yaml};

struct Filter {
    include: Option<GlobMatcher>,
    exclude: Option<GlobMatcher>,
}

fn glob(what: &str, pattern: &str) -> Result<Option<GlobMatcher>, RenderError> {
    if pattern.is_empty() {
        return Ok(None);
    }
    Glob::new(pattern)
        .map(|g| Some(g.compile_matcher()))
        .map_err(|e| RenderError::BadOption {
            what: format!("directory.{what} {pattern:?}"),
            message: e.to_string(),
        })
}

enum Kind {
    Yaml,
    Json,
    Jsonnet,
}

fn kind_of(name: &str) -> Option<Kind> {
    let ext = name.rsplit_once('.')?.1.to_ascii_lowercase();
    match ext.as_str() {
        "yaml" | "yml" => Some(Kind::Yaml),
        "json" => Some(Kind::Json),
        "jsonnet" => Some(Kind::Jsonnet),
        _ => None,
    }
}

/// Collects the manifest files under `dir`, sorted, honouring recurse/include/exclude.
fn collect(
    root: &Path,
    app_dir: &Path,
    dir: &Path,
    recurse: bool,
    filter: &Filter,
    files: &mut Vec<(PathBuf, Kind)>,
) -> Result<(), RenderError> {
    let mut entries: Vec<_> = std::fs::read_dir(dir)
        .map_err(RenderError::io(format!("reading {}", relative(root, dir))))?
        .flatten()
        .collect();
    entries.sort_by_key(|e| e.file_name());
    let real_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
    for entry in entries {
        let path = entry.path();
        let name = entry.file_name().to_string_lossy().into_owned();
        let Ok(meta) = path.symlink_metadata() else {
            continue;
        };
        let is_link = meta.file_type().is_symlink();
        if is_link {
            // Followed only when it stays inside the repository (checked for the whole
            // checkout already; checked again here for direct callers).
            let inside = path
                .canonicalize()
                .is_ok_and(|real| real.starts_with(&real_root));
            if !inside {
                return Err(RenderError::EscapingSymlinks {
                    paths: vec![relative(root, &path)],
                });
            }
        }
        let target_meta = if is_link {
            path.metadata().ok()
        } else {
            Some(meta)
        };
        let Some(target_meta) = target_meta else {
            continue;
        };
        if target_meta.is_dir() {
            // Like Argo CD (filepath.Walk): symlinked directories are not descended into.
            if recurse && !is_link && name != ".git" {
                collect(root, app_dir, &path, recurse, filter, files)?;
            }
            continue;
        }
        let Some(kind) = kind_of(&name) else { continue };
        let rel = path
            .strip_prefix(app_dir)
            .unwrap_or(&path)
            .to_string_lossy()
            .into_owned();
        if filter.exclude.as_ref().is_some_and(|g| g.is_match(&rel)) {
            continue;
        }
        if filter.include.as_ref().is_some_and(|g| !g.is_match(&rel)) {
            continue;
        }
        files.push((path, kind));
    }
    Ok(())
}

pub(super) fn render(
    root: &Path,
    app_dir: &Path,
    rel_path: &str,
    source: &ApplicationSource,
    limit: u64,
) -> Result<Rendered, RenderError> {
    let options = source.directory.clone().unwrap_or_default();
    let filter = Filter {
        include: glob("include", &options.include)?,
        exclude: glob("exclude", &options.exclude)?,
    };
    let mut files = Vec::new();
    collect(root, app_dir, app_dir, options.recurse, &filter, &mut files)?;

    // The size limit is checked before anything is read.
    let mut total = 0u64;
    for (path, _) in &files {
        let size = path.metadata().map(|m| m.len()).unwrap_or(0);
        total += size;
        if total > limit {
            return Err(RenderError::TooLarge {
                path: rel_path.to_string(),
                size: total,
                limit,
                file: Some(format!("{} is {size} bytes", relative(root, path))),
            });
        }
    }

    let parse = |(path, kind): &(PathBuf, Kind)| -> Result<Vec<Manifest>, RenderError> {
        let file = relative(root, path);
        let mut out = Vec::new();
        match kind {
            Kind::Jsonnet => {
                let value = super::jsonnet::evaluate(root, path, &file, options.jsonnet.as_ref())?;
                yaml::push_objects(value, &file, None, &mut out)?;
            }
            Kind::Json | Kind::Yaml => {
                let text = std::fs::read_to_string(path)
                    .map_err(RenderError::io(format!("reading {file}")))?;
                match kind {
                    Kind::Json => yaml::parse_json(&text, &file, &mut out)?,
                    _ => yaml::parse_stream(&text, &file, &mut out)?,
                }
            }
        }
        Ok(out)
    };

    // Parsing dominates a large directory: spread the files over the cores.
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len().max(1))
        .min(8);
    let results: Vec<Result<Vec<Manifest>, RenderError>> = if workers <= 1 || total < 256 * 1024 {
        files.iter().map(parse).collect()
    } else {
        let chunk = files.len().div_ceil(workers);
        std::thread::scope(|scope| {
            let handles: Vec<_> = files
                .chunks(chunk)
                .map(|part| scope.spawn(move || part.iter().map(parse).collect::<Vec<_>>()))
                .collect();
            handles
                .into_iter()
                .flat_map(|h| {
                    h.join().unwrap_or_else(|_| {
                        vec![Err(RenderError::Io {
                            what: "parsing manifests".to_string(),
                            source: std::io::Error::other("a parser thread panicked"),
                        })]
                    })
                })
                .collect()
        })
    };
    let mut manifests = Vec::new();
    for result in results {
        manifests.extend(result?);
    }
    Ok(Rendered {
        manifests,
        approx_bytes: total as usize,
    })
}
