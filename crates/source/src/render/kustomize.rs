//! Kustomize: `kustomize build` (or `kubectl kustomize`) on the application directory.
//!
//! The source's options are applied the way Argo CD applies them with `kustomize edit set
//! image|nameprefix|namesuffix|namespace|replicas`, `edit add label|annotation|component` and
//! patches: by editing the kustomization — here a pure function over its YAML, applied to a
//! private hard-linked copy of the checkout, so the shared checkout is never written.

use std::path::{Path, PathBuf};

use plumb_model::application::{ApplicationSource, KustomizeSource};
use serde_json::{Map, Value, json};

use super::{KustomizeTool, Manifest, RenderContext, RenderError, Rendered, relative, yaml};
use crate::command::{self, CommandSpec};

/// The kustomization file of `dir`, if it has one (kustomize's own order).
pub fn kustomization_file(dir: &Path) -> Option<PathBuf> {
    ["kustomization.yaml", "kustomization.yml", "Kustomization"]
        .iter()
        .map(|name| dir.join(name))
        .find(|p| p.is_file())
}

/// Whether any option requires editing the kustomization.
pub fn has_edits(k: &KustomizeSource) -> bool {
    !k.name_prefix.is_empty()
        || !k.name_suffix.is_empty()
        || !k.images.is_empty()
        || !k.common_labels.is_empty()
        || !k.common_annotations.is_empty()
        || !k.namespace.is_empty()
        || !k.replicas.is_empty()
        || !k.patches.is_empty()
        || !k.components.is_empty()
}

/// One `images` entry from Argo CD's override syntax: `name=newName:tag`, `name=newName@digest`,
/// `name:tag`, `name@digest`, `name=newName`.
pub fn parse_image(spec: &str) -> Result<Map<String, Value>, RenderError> {
    let bad = |message: &str| RenderError::BadOption {
        what: format!("kustomize image {spec:?}"),
        message: message.to_string(),
    };
    if spec.is_empty() || spec.contains(['\n', '\0', ' ']) {
        return Err(bad("must be name[=newName][:tag|@digest] without spaces"));
    }
    let (name, rest, renamed) = match spec.split_once('=') {
        Some((name, rest)) => (name.to_string(), rest, true),
        None => (String::new(), spec, false),
    };
    let (image, tag, digest) = split_reference(rest);
    let mut entry = Map::new();
    let name = if renamed { name } else { image.clone() };
    if name.is_empty() || image.is_empty() {
        return Err(bad("has no image name"));
    }
    entry.insert("name".into(), Value::from(name));
    if renamed {
        entry.insert("newName".into(), Value::from(image));
    }
    if let Some(tag) = tag {
        entry.insert("newTag".into(), Value::from(tag));
    }
    if let Some(digest) = digest {
        entry.insert("digest".into(), Value::from(digest));
    }
    Ok(entry)
}

/// `registry:5000/img:tag@sha256:...` → (`registry:5000/img`, tag, digest).
fn split_reference(reference: &str) -> (String, Option<String>, Option<String>) {
    let (rest, digest) = match reference.split_once('@') {
        Some((r, d)) => (r, Some(d.to_string())),
        None => (reference, None),
    };
    let last_slash = rest.rfind('/').map_or(0, |i| i + 1);
    match rest[last_slash..].rfind(':') {
        Some(i) => {
            let colon = last_slash + i;
            (
                rest[..colon].to_string(),
                Some(rest[colon + 1..].to_string()),
                digest,
            )
        }
        None => (rest.to_string(), None, digest),
    }
}

/// Runs `edit` on the list at `key`, creating it (or replacing a non-list) first.
fn with_list<T>(
    doc: &mut Map<String, Value>,
    key: &str,
    edit: impl FnOnce(&mut Vec<Value>) -> T,
) -> T {
    let slot = doc
        .entry(key.to_string())
        .or_insert_with(|| Value::Array(Vec::new()));
    if !slot.is_array() {
        *slot = Value::Array(Vec::new());
    }
    let mut items = match std::mem::take(slot) {
        Value::Array(items) => items,
        _ => Vec::new(),
    };
    let result = edit(&mut items);
    *slot = Value::Array(items);
    result
}

fn merge_map(
    doc: &mut Map<String, Value>,
    key: &str,
    values: &std::collections::BTreeMap<String, String>,
    force: bool,
    what: &str,
) -> Result<(), RenderError> {
    let slot = doc.entry(key.to_string()).or_insert_with(|| json!({}));
    if !slot.is_object() {
        *slot = json!({});
    }
    if let Value::Object(map) = slot {
        for (k, v) in values {
            match map.get(k) {
                Some(existing) if !force && existing.as_str() != Some(v) => {
                    return Err(RenderError::BadOption {
                        what: format!("kustomize {what} {k:?}"),
                        message: format!(
                            "already set to {existing} in the kustomization; set force{}{} to override",
                            what[..1].to_uppercase(),
                            &what[1..]
                        ),
                    });
                }
                _ => {
                    map.insert(k.clone(), Value::from(v.clone()));
                }
            }
        }
    }
    Ok(())
}

/// Applies the source's options to a kustomization document, as `kustomize edit` would.
pub fn apply_edits(kustomization: &mut Value, k: &KustomizeSource) -> Result<(), RenderError> {
    if !kustomization.is_object() {
        *kustomization = json!({});
    }
    let Value::Object(doc) = kustomization else {
        return Ok(());
    };
    if !k.name_prefix.is_empty() {
        doc.insert("namePrefix".into(), Value::from(k.name_prefix.clone()));
    }
    if !k.name_suffix.is_empty() {
        doc.insert("nameSuffix".into(), Value::from(k.name_suffix.clone()));
    }
    if !k.namespace.is_empty() {
        doc.insert("namespace".into(), Value::from(k.namespace.clone()));
    }
    for spec in &k.images {
        let entry = parse_image(spec)?;
        with_list(doc, "images", |images| {
            match images
                .iter_mut()
                .find(|i| i.get("name") == entry.get("name"))
            {
                Some(Value::Object(existing)) => {
                    // `edit set image` replaces what it is given and clears the alternative
                    // (a tag replaces a digest and vice versa).
                    if entry.contains_key("newTag") {
                        existing.remove("digest");
                    }
                    if entry.contains_key("digest") {
                        existing.remove("newTag");
                    }
                    existing.extend(entry);
                }
                _ => images.push(Value::Object(entry)),
            }
        });
    }
    merge_map(
        doc,
        "commonLabels",
        &k.common_labels,
        k.force_common_labels,
        "commonLabels",
    )?;
    merge_map(
        doc,
        "commonAnnotations",
        &k.common_annotations,
        k.force_common_annotations,
        "commonAnnotations",
    )?;
    for replica in &k.replicas {
        let count = match &replica.count {
            Value::Number(n) if n.as_i64().is_some() => n.as_i64().unwrap_or(0),
            Value::String(s) => s
                .trim()
                .parse::<i64>()
                .map_err(|_| RenderError::BadOption {
                    what: format!("kustomize replicas {:?}", replica.name),
                    message: format!("count {s:?} is not an integer"),
                })?,
            other => {
                return Err(RenderError::BadOption {
                    what: format!("kustomize replicas {:?}", replica.name),
                    message: format!("count {other} is not an integer"),
                });
            }
        };
        let entry = json!({"name": replica.name, "count": count});
        with_list(doc, "replicas", |replicas| {
            match replicas
                .iter_mut()
                .find(|r| r.get("name").and_then(Value::as_str) == Some(&replica.name))
            {
                Some(existing) => *existing = entry,
                None => replicas.push(entry),
            }
        });
    }
    for patch in &k.patches {
        with_list(doc, "patches", |patches| patches.push(patch.clone()));
    }
    for component in &k.components {
        with_list(doc, "components", |components| {
            if !components.iter().any(|c| c.as_str() == Some(component)) {
                components.push(Value::from(component.clone()));
            }
        });
    }
    Ok(())
}

/// Whether a kustomization entry names something remote (kustomize fetches those itself).
fn is_remote(entry: &str) -> bool {
    entry.contains("://")
        || entry.starts_with("git@")
        || entry.starts_with("github.com/")
        || entry.starts_with("gitlab.com/")
        || entry.starts_with("bitbucket.org/")
}

/// The local paths a kustomization refers to: resources, bases, components, crds, patch
/// and generator files.
fn local_references(doc: &Value) -> Vec<String> {
    let mut out = Vec::new();
    let strings = |v: &Value| -> Vec<String> {
        v.as_array()
            .map(|a| {
                a.iter()
                    .filter_map(|e| e.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    for key in [
        "resources",
        "bases",
        "components",
        "crds",
        "configurations",
        "generators",
        "transformers",
        "validators",
    ] {
        out.extend(strings(&doc[key]));
    }
    // Inline strategic-merge patches are YAML text, not paths.
    out.extend(
        strings(&doc["patchesStrategicMerge"])
            .into_iter()
            .filter(|p| !p.contains('\n')),
    );
    for patch in doc["patches"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(doc["patchesJson6902"].as_array().into_iter().flatten())
    {
        if let Some(path) = patch["path"].as_str() {
            out.push(path.to_string());
        }
    }
    for generator in doc["configMapGenerator"]
        .as_array()
        .into_iter()
        .flatten()
        .chain(doc["secretGenerator"].as_array().into_iter().flatten())
    {
        for file in strings(&generator["files"]) {
            // `key=path` or `path`
            out.push(
                file.split_once('=')
                    .map_or(file.clone(), |(_, p)| p.to_string()),
            );
        }
        out.extend(strings(&generator["envs"]));
        if let Some(env) = generator["env"].as_str() {
            out.push(env.to_string());
        }
    }
    out.retain(|entry| !entry.is_empty() && !is_remote(entry) && !entry.contains('\n'));
    out
}

/// Refuses references (followed through nested kustomizations) that leave the repository.
fn check_references(
    root: &Path,
    dir: &Path,
    visited: &mut Vec<PathBuf>,
) -> Result<(), RenderError> {
    if visited.iter().any(|v| v == dir) || visited.len() > 1000 {
        return Ok(());
    }
    visited.push(dir.to_path_buf());
    let Some(file) = kustomization_file(dir) else {
        return Ok(());
    };
    let Ok(text) = std::fs::read_to_string(&file) else {
        return Ok(());
    };
    // A kustomization kustomize cannot parse is kustomize's error to report.
    let Ok(doc) = serde_saphyr::from_str::<Value>(&text) else {
        return Ok(());
    };
    let what = format!("reference in {}", relative(root, &file));
    for entry in local_references(&doc) {
        match crate::paths::resolve_inside(root, dir, &entry, &what) {
            Ok(path) if path.is_dir() => check_references(root, &path, visited)?,
            Ok(_) | Err(crate::paths::PathError::Missing { .. }) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

pub(super) async fn render(
    source: &ApplicationSource,
    app_dir: &Path,
    rel_path: &str,
    ctx: &RenderContext<'_>,
) -> Result<Rendered, RenderError> {
    let Some(tool) = ctx.tools.kustomize.clone() else {
        return Err(ctx.tools.kustomize_missing(rel_path));
    };
    let Some(kfile) = kustomization_file(app_dir) else {
        return Err(RenderError::Tool {
            tool: "kustomize",
            path: rel_path.to_string(),
            message: "no kustomization.yaml, kustomization.yml or Kustomization in the directory"
                .to_string(),
        });
    };
    let kfile_rel = relative(ctx.repo_root, &kfile);
    let options = source.kustomize.clone().unwrap_or_default();
    for component in &options.components {
        if !component.contains("://") {
            crate::paths::resolve_inside(ctx.repo_root, app_dir, component, "kustomize component")?;
        }
    }
    for (i, patch) in options.patches.iter().enumerate() {
        if let Some(path) = patch.get("path").and_then(Value::as_str) {
            crate::paths::resolve_inside(
                ctx.repo_root,
                app_dir,
                path,
                &format!("kustomize patch {i} path"),
            )?;
        }
    }
    // kustomize's load restrictor stops files outside the kustomization root, but not
    // directories (that is how `../base` works): check every local reference, recursively.
    let mut visited = Vec::new();
    check_references(ctx.repo_root, app_dir, &mut visited)?;

    // Edits go to a private copy; without edits the shared checkout is read as is.
    let mut _copy = None;
    let build_dir = if has_edits(&options) {
        let copy = tempfile::Builder::new()
            .prefix("kustomize-")
            .tempdir_in(&ctx.options.scratch_dir)
            .map_err(RenderError::io("creating a scratch directory"))?;
        let root_copy = copy.path().join("repo");
        crate::git::copy_tree(ctx.repo_root, &root_copy)
            .map_err(RenderError::io("copying the checkout for kustomize edits"))?;
        let dir_copy = root_copy.join(app_dir.strip_prefix(ctx.repo_root).unwrap_or(Path::new("")));
        let file_copy = dir_copy.join(kfile.file_name().unwrap_or_default());
        let text = std::fs::read_to_string(&kfile)
            .map_err(RenderError::io(format!("reading {kfile_rel}")))?;
        let mut doc: Value = serde_saphyr::from_str(&text).map_err(|e| RenderError::Yaml {
            file: kfile_rel.clone(),
            line: e.location().map(|l| l.line()).unwrap_or(1),
            message: e.to_string().lines().next().unwrap_or_default().to_string(),
        })?;
        apply_edits(&mut doc, &options)?;
        let edited = serde_json::to_string_pretty(&doc).map_err(|e| RenderError::Io {
            what: "writing the edited kustomization".to_string(),
            source: std::io::Error::other(e),
        })?;
        // Replace, never write through: the old name is a hard link into the checkout.
        std::fs::remove_file(&file_copy)
            .map_err(RenderError::io(format!("replacing {kfile_rel}")))?;
        std::fs::write(&file_copy, edited)
            .map_err(RenderError::io(format!("writing {kfile_rel}")))?;
        _copy = Some(copy);
        dir_copy
    } else {
        app_dir.to_path_buf()
    };

    let (program, mut args): (PathBuf, Vec<String>) = match &tool {
        KustomizeTool::Kustomize(bin) => (bin.clone(), vec!["build".to_string()]),
        KustomizeTool::Kubectl(bin) => (bin.clone(), vec!["kustomize".to_string()]),
    };
    args.extend(ctx.options.kustomize_build_options.iter().cloned());
    let spec = CommandSpec::new(program)
        .args(args)
        .arg(&build_dir)
        .env("KUSTOMIZE_PLUGIN_HOME", "/nonexistent")
        .current_dir(&build_dir)
        .timeout(ctx.options.tool_timeout)
        .max_stdout(ctx.options.max_tool_output);
    let out = command::run(&spec, ctx.cancel)
        .await
        .map_err(|source| RenderError::Command {
            tool: "kustomize",
            path: rel_path.to_string(),
            source,
        })?;
    if !out.success {
        let copy_root = _copy.as_ref().map(|c| c.path().join("repo"));
        let mut message = out.stderr.trim().to_string();
        // Paths of the private copy mean nothing to the user: show repository paths.
        for root in [copy_root.as_deref(), Some(ctx.repo_root)]
            .into_iter()
            .flatten()
        {
            message = message.replace(&format!("{}/", root.display()), "");
        }
        return Err(RenderError::Tool {
            tool: "kustomize",
            path: rel_path.to_string(),
            message,
        });
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut manifests: Vec<Manifest> = Vec::new();
    yaml::parse_stream(&text, &kfile_rel, &mut manifests)?;
    // Lines of kustomize's output are not lines of the kustomization.
    for m in &mut manifests {
        m.line = None;
    }
    Ok(Rendered {
        manifests,
        approx_bytes: out.stdout.len(),
        source_type: super::SourceType::Kustomize,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_model::application::KustomizeReplica;

    #[test]
    fn image_override_forms() {
        let cases = [
            ("nginx:1.25", json!({"name": "nginx", "newTag": "1.25"})),
            (
                "nginx=registry.example/nginx:1.25",
                json!({"name": "nginx", "newName": "registry.example/nginx", "newTag": "1.25"}),
            ),
            (
                "app=reg:5000/team/app",
                json!({"name": "app", "newName": "reg:5000/team/app"}),
            ),
            (
                "app@sha256:abc",
                json!({"name": "app", "digest": "sha256:abc"}),
            ),
            (
                "reg:5000/app:v2",
                json!({"name": "reg:5000/app", "newTag": "v2"}),
            ),
        ];
        for (spec, want) in cases {
            assert_eq!(
                Value::Object(parse_image(spec).expect(spec)),
                want,
                "{spec}"
            );
        }
        assert!(parse_image("=x").is_err());
        assert!(parse_image("a b").is_err());
    }

    #[test]
    fn edits_match_kustomize_edit() {
        let mut doc = json!({
            "resources": ["deploy.yaml"],
            "namePrefix": "old-",
            "images": [{"name": "app", "digest": "sha256:1"}],
            "commonLabels": {"team": "a"},
        });
        let mut options = KustomizeSource {
            name_prefix: "new-".into(),
            name_suffix: "-x".into(),
            namespace: "prod".into(),
            images: vec!["app:2.0".into(), "db=postgres:16".into()],
            replicas: vec![KustomizeReplica {
                name: "web".into(),
                count: json!("3"),
            }],
            components: vec!["../components/a".into()],
            patches: vec![json!({"target": {"kind": "Deployment"}, "patch": "[]"})],
            ..Default::default()
        };
        options.common_labels.insert("env".into(), "prod".into());
        options
            .common_annotations
            .insert("owner".into(), "me".into());
        apply_edits(&mut doc, &options).expect("edits");
        assert_eq!(
            doc,
            json!({
                "resources": ["deploy.yaml"],
                "namePrefix": "new-",
                "images": [{"name": "app", "newTag": "2.0"}, {"name": "db", "newName": "postgres", "newTag": "16"}],
                "commonLabels": {"team": "a", "env": "prod"},
                "nameSuffix": "-x",
                "namespace": "prod",
                "commonAnnotations": {"owner": "me"},
                "replicas": [{"name": "web", "count": 3}],
                "patches": [{"target": {"kind": "Deployment"}, "patch": "[]"}],
                "components": ["../components/a"],
            })
        );
    }

    #[test]
    fn local_references_of_a_kustomization() {
        let doc = json!({
            "resources": ["deploy.yaml", "../base", "https://github.com/org/repo//x?ref=v1", "github.com/org/repo/y"],
            "components": ["../c"],
            "patchesStrategicMerge": ["p.yaml", "apiVersion: v1\nkind: X\n"],
            "patches": [{"path": "patch.yaml"}, {"patch": "[]"}],
            "configMapGenerator": [{"files": ["k=cfg/a.txt", "b.txt"], "envs": ["e.env"]}],
        });
        assert_eq!(
            local_references(&doc),
            [
                "deploy.yaml",
                "../base",
                "../c",
                "p.yaml",
                "patch.yaml",
                "cfg/a.txt",
                "b.txt",
                "e.env"
            ]
        );
    }

    #[test]
    fn conflicting_label_needs_force() {
        let mut doc = json!({"commonLabels": {"team": "a"}});
        let mut options = KustomizeSource::default();
        options.common_labels.insert("team".into(), "b".into());
        let err = apply_edits(&mut doc.clone(), &options).expect_err("conflict");
        assert!(err.to_string().contains("forceCommonLabels"), "{err}");
        options.force_common_labels = true;
        apply_edits(&mut doc, &options).expect("forced");
        assert_eq!(doc["commonLabels"]["team"], "b");
        let bad = KustomizeSource {
            replicas: vec![KustomizeReplica {
                name: "w".into(),
                count: json!("many"),
            }],
            ..Default::default()
        };
        assert!(apply_edits(&mut json!({}), &bad).is_err());
    }
}
