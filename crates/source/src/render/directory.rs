//! A directory of plain manifests: `.yaml`/`.yml`/`.json` files, and `.jsonnet` files
//! evaluated (`.libsonnet` are only imported), with Argo CD's `recurse`, `include` and
//! `exclude` (globs over the path relative to the application directory; `{a,b}` lists).

use std::path::{Path, PathBuf};

use futures::{StreamExt, TryStreamExt};
use globset::{Glob, GlobMatcher};
use plumb_model::application::{ApplicationSource, JsonnetSource};

use super::jsonnet::WorkerRun;
use super::{Manifest, RenderContext, RenderError, Rendered, relative, yaml};

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

/// The manifest files of a directory source, found and checked against the size limit
/// before anything is read.
struct Plan {
    files: Vec<(PathBuf, Kind)>,
    total: u64,
}

fn plan(
    root: &Path,
    app_dir: &Path,
    rel_path: &str,
    source: &ApplicationSource,
    limit: u64,
) -> Result<Plan, RenderError> {
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
    Ok(Plan { files, total })
}

/// One file's outcome: its objects, or (with a worker) a Jsonnet file still to evaluate.
enum Slot {
    Done(Result<Vec<Manifest>, RenderError>),
    Jsonnet { file: String },
}

/// Reads and parses every file of `plan`, spread over the cores. Jsonnet files are evaluated
/// here when `inline_jsonnet`, else left for workers.
fn parse_files(
    root: &Path,
    plan: &Plan,
    jsonnet: Option<&JsonnetSource>,
    inline_jsonnet: bool,
    yaml_fast_path: bool,
) -> Vec<Slot> {
    let parse = |(path, kind): &(PathBuf, Kind)| -> Slot {
        let file = relative(root, path);
        let mut out = Vec::new();
        let result = match kind {
            Kind::Jsonnet if !inline_jsonnet => return Slot::Jsonnet { file },
            Kind::Jsonnet => super::jsonnet::evaluate(root, path, &file, jsonnet)
                .and_then(|value| yaml::push_objects(value, &file, None, &mut out)),
            Kind::Json | Kind::Yaml => std::fs::read_to_string(path)
                .map_err(RenderError::io(format!("reading {file}")))
                .and_then(|text| match kind {
                    Kind::Json => yaml::parse_json(&text, &file, &mut out),
                    _ => yaml::parse_stream_with(&text, &file, yaml_fast_path, &mut out),
                }),
        };
        Slot::Done(result.map(|()| out))
    };

    // Parsing dominates a large directory: spread the files over the cores.
    let files = &plan.files;
    let workers = std::thread::available_parallelism()
        .map(|n| n.get())
        .unwrap_or(1)
        .min(files.len().max(1))
        .min(8);
    if workers <= 1 || plan.total < 256 * 1024 {
        return files.iter().map(parse).collect();
    }
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
                    vec![Slot::Done(Err(RenderError::Io {
                        what: "parsing manifests".to_string(),
                        source: std::io::Error::other("a parser thread panicked"),
                    }))]
                })
            })
            .collect()
    })
}

/// Renders a directory source: files found, size-checked and parsed on a blocking thread;
/// Jsonnet files in worker processes (a few at a time) when a worker is configured.
pub(super) async fn render(
    source: &ApplicationSource,
    app_dir: PathBuf,
    rel_path: &str,
    ctx: &RenderContext<'_>,
) -> Result<Rendered, RenderError> {
    let budget = ctx.options.tool_timeout;
    let deadline = tokio::time::Instant::now() + budget;
    let worker = ctx.options.jsonnet_worker.clone();
    let jsonnet = source.directory.as_ref().and_then(|d| d.jsonnet.clone());
    let task = {
        let root = ctx.repo_root.to_path_buf();
        let source = source.clone();
        let rel = rel_path.to_string();
        let limit = ctx.options.max_directory_bytes;
        let jsonnet = jsonnet.clone();
        let inline = worker.is_none();
        let fast = ctx.options.yaml_fast_path;
        tokio::task::spawn_blocking(move || {
            let plan = plan(&root, &app_dir, &rel, &source, limit)?;
            let slots = parse_files(&root, &plan, jsonnet.as_ref(), inline, fast);
            Ok::<_, RenderError>((slots, plan.total))
        })
    };
    // Without a worker, Jsonnet runs in-process above and cannot be killed: past the
    // deadline (or on cancellation) the caller gets an error at once and the evaluation is
    // left to finish on its blocking thread, its result dropped.
    let (slots, total) = tokio::select! {
        joined = task => joined.map_err(|e| RenderError::Io {
            what: "directory render task".to_string(),
            source: std::io::Error::other(e.to_string()),
        })??,
        _ = tokio::time::sleep_until(deadline) => return Err(RenderError::Timeout {
            path: rel_path.to_string(),
            timeout: budget,
        }),
        _ = ctx.cancel.cancelled() => return Err(RenderError::Cancelled { path: rel_path.to_string() }),
    };

    let mut manifests = Vec::new();
    let mut pending = Vec::new();
    for slot in slots {
        match slot {
            Slot::Done(result) => manifests.push(result?),
            Slot::Jsonnet { file } => {
                pending.push((manifests.len(), file));
                manifests.push(Vec::new());
            }
        }
    }
    if let (Some(worker), false) = (worker.as_ref(), pending.is_empty()) {
        let root = ctx.repo_root;
        let jsonnet = jsonnet.as_ref();
        let parallel = std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1);
        // In file order; the first failure stops the rest (dropping a run kills its worker).
        let evaluated: Vec<(usize, Vec<Manifest>)> = futures::stream::iter(pending)
            .map(|(index, file)| async move {
                let run = WorkerRun {
                    worker,
                    timeout: deadline.saturating_duration_since(tokio::time::Instant::now()),
                    budget,
                    max_output: ctx.options.max_tool_output,
                    memory_limit: ctx.options.jsonnet_memory_limit,
                    cancel: ctx.cancel,
                };
                let value = super::jsonnet::evaluate_in_worker(root, &file, jsonnet, &run).await?;
                let mut out = Vec::new();
                yaml::push_objects(value, &file, None, &mut out)?;
                Ok::<_, RenderError>((index, out))
            })
            .buffered(parallel)
            .try_collect()
            .await?;
        for (index, out) in evaluated {
            manifests[index] = out;
        }
    }
    Ok(Rendered {
        manifests: manifests.into_iter().flatten().collect(),
        approx_bytes: total as usize,
        source_type: super::SourceType::Directory,
    })
}
