//! Tool discovery with the real helm and kustomize: found in a tools cache laid out as
//! scripts/install-tools leaves it with nothing on PATH, named by `$PLUMB_HELM`, and the
//! message of a render that needs a missing one. The environment is a `ToolEnv` value, never
//! the process's (shared by every test).

use std::path::{Path, PathBuf};

use plumb_source::render::Tools;
use plumb_source::render::discover::ToolEnv;
use plumb_source::{RenderError, SourceConfig, SourceError, SourceService, UrlPolicy};
use tokio_util::sync::CancellationToken;

use crate::servers::{self, Repo};
use crate::{jsonnet_worker, names, request, source};

fn service_with_tools(dir: &Path, tools: Tools) -> SourceService {
    let mut config = SourceConfig::new(dir.join("cache"));
    config.git.url_policy = UrlPolicy { allow_file: true };
    config.render.jsonnet_worker = Some(jsonnet_worker());
    SourceService::with_tools(config, tools).expect("service")
}

/// A repository with a chart at `chart` and an overlay at `overlay`.
fn repo(root: &Path) -> Repo {
    let repo = Repo::create(root, "apps");
    repo.commit(
        &[
            (
                "chart/Chart.yaml",
                "apiVersion: v2\nname: web\nversion: 0.1.0\n",
            ),
            (
                "chart/templates/cm.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-cm\n",
            ),
            (
                "overlay/kustomization.yaml",
                "resources:\n- cm.yaml\nnamePrefix: k-\n",
            ),
            ("overlay/cm.yaml", &crate::cm("cm")),
        ],
        "apps",
    );
    repo
}

async fn render(svc: &SourceService, repo: &Repo, path: &str) -> Result<Vec<String>, SourceError> {
    let cancel = CancellationToken::new();
    svc.render(
        &request(vec![source(&repo.file_url(), "main", path)]),
        &cancel,
    )
    .await
    .map(|rendered| names(&rendered))
}

fn missing_tool_message(err: SourceError) -> String {
    match err {
        SourceError::Render { source, .. } => match *source {
            err @ RenderError::ToolMissing { .. } => err.to_string(),
            other => panic!("expected a missing tool, got {other}"),
        },
        other => panic!("expected a render error, got {other}"),
    }
}

#[tokio::test]
async fn helm_and_kustomize_from_the_tools_cache_with_nothing_on_path() {
    let real = servers::tool_bin_dir();
    let root = tempfile::tempdir().expect("tmp");
    let repo = repo(root.path());
    // As scripts/install-tools leaves a build: <cache>/tools/<key>/{bin,complete}.
    let cache = root.path().join("plumb-cache");
    let bin = cache.join("tools/0123456789abcdef/bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    for tool in ["helm", "kustomize"] {
        std::os::unix::fs::symlink(real.join(tool), bin.join(tool)).expect("symlink");
    }
    std::fs::write(cache.join("tools/0123456789abcdef/complete"), "").expect("marker");
    let env = ToolEnv {
        path: Some(root.path().join("empty-path").into()),
        plumb_cache_dir: Some(cache.clone().into()),
        ..ToolEnv::default()
    };
    let dir = tempfile::tempdir().expect("tmp");
    let tools = Tools::discover_in(&[], &env, dir.path().join("cache/helm"));
    assert_eq!(tools.helm, Some(bin.join("helm")));
    let svc = service_with_tools(dir.path(), tools);
    assert_eq!(
        render(&svc, &repo, "chart").await.expect("chart"),
        ["ConfigMap/demo-cm"]
    );
    assert_eq!(
        render(&svc, &repo, "overlay").await.expect("overlay"),
        ["ConfigMap/k-cm"]
    );
}

#[tokio::test]
async fn plumb_helm_names_the_helm_to_use() {
    let real: PathBuf = servers::tool_bin_dir().join("helm");
    let root = tempfile::tempdir().expect("tmp");
    let repo = repo(root.path());
    let env = ToolEnv {
        plumb_helm: Some(real.clone().into()),
        ..ToolEnv::default()
    };
    let dir = tempfile::tempdir().expect("tmp");
    let tools = Tools::discover_in(&[], &env, dir.path().join("cache/helm"));
    assert_eq!(tools.helm, Some(real));
    assert_eq!(tools.kustomize, None, "no PATH and no cache: no kustomize");
    let svc = service_with_tools(dir.path(), tools);
    assert_eq!(
        render(&svc, &repo, "chart").await.expect("chart"),
        ["ConfigMap/demo-cm"]
    );
}

#[tokio::test]
async fn a_missing_helm_or_kustomize_names_what_provides_it() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = repo(root.path());
    let home = root.path().join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    let env = ToolEnv {
        path: Some(root.path().join("empty-path").into()),
        home: Some(home.clone().into()),
        ..ToolEnv::default()
    };
    let dir = tempfile::tempdir().expect("tmp");
    let tools = Tools::discover_in(&[], &env, dir.path().join("cache/helm"));
    let svc = service_with_tools(dir.path(), tools);

    let helm = missing_tool_message(render(&svc, &repo, "chart").await.expect_err("no helm"));
    let cache = home.join(".cache/plumb");
    assert_eq!(
        helm,
        format!(
            "helm is needed to render \"chart\" but was not found (looked in $PLUMB_HELM (not \
             set), on PATH and in {c}/tools/*/bin, {c}/testcluster/*/bin): run \
             scripts/install-tools (in plumb's repository), or install helm 3 and put it on PATH \
             or set PLUMB_HELM to its path",
            c = cache.display()
        )
    );
    let kustomize = missing_tool_message(
        render(&svc, &repo, "overlay")
            .await
            .expect_err("no kustomize"),
    );
    assert!(
        kustomize.starts_with("kustomize is needed to render \"overlay\" but was not found (looked for kustomize and kubectl in $PLUMB_KUSTOMIZE (not set), on PATH"),
        "{kustomize}"
    );
    assert!(
        kustomize.ends_with("run scripts/install-tools (in plumb's repository), or install kustomize 5 (or kubectl) and put it on PATH or set PLUMB_KUSTOMIZE to its path"),
        "{kustomize}"
    );
}
