//! Kustomize (the kustomize binary and `kubectl kustomize`) and Helm (charts from Git, an
//! HTTP chart repository served by lighttpd, an OCI registry), and runaway tools.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use plumb_model::application::{
    ApplicationSource, HelmFileParameter, HelmParameter, HelmSource, KustomizeReplica,
    KustomizeSource,
};
use plumb_source::command::{self, CommandError, CommandSpec};
use plumb_source::creds::{CredentialStore, RepositorySecret, SecretType};
use plumb_source::{RenderError, SourceError};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use crate::servers::{self, HttpServer, Registry, Repo, helm, helm_repo_index};
use crate::{names, request, service, service_kubectl, service_with, source};

fn render_error(err: SourceError) -> RenderError {
    match err {
        SourceError::Render { source, .. } => *source,
        other => panic!("expected a render error, got {other}"),
    }
}

const DEPLOYMENT: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: web\nspec:\n  replicas: 1\n  selector:\n    matchLabels: {app: web}\n  template:\n    metadata:\n      labels: {app: web}\n    spec:\n      containers:\n      - name: web\n        image: nginx:1.0\n";

fn kustomize_repo(root: &Path) -> Repo {
    let repo = Repo::create(root, "kust");
    repo.commit(
        &[
            ("base/kustomization.yaml", "resources:\n- deploy.yaml\n"),
            ("base/deploy.yaml", DEPLOYMENT),
            ("overlays/prod/kustomization.yaml", "resources:\n- ../../base\nnamePrefix: prod-\n"),
            ("components/extra/kustomization.yaml", "apiVersion: kustomize.config.k8s.io/v1alpha1\nkind: Component\nresources:\n- cm.yaml\n"),
            ("components/extra/cm.yaml", &crate::cm("extra")),
            ("broken/kustomization.yaml", "resources:\n- missing.yaml\n"),
            ("outside/kustomization.yaml", "resources:\n- ../../../../../../../../../../tmp\n"),
            ("outside-nested/kustomization.yaml", "resources:\n- ../base\n- ../outside\n"),
        ],
        "kustomize",
    );
    repo
}

async fn check_kustomize(svc: plumb_source::SourceService, repo: &Repo) {
    let cancel = CancellationToken::new();
    let url = repo.file_url();
    let plain = svc
        .render(
            &request(vec![source(&url, "main", "overlays/prod")]),
            &cancel,
        )
        .await
        .expect("plain");
    assert_eq!(names(&plain), ["Deployment/prod-web"]);
    assert_eq!(plain.manifests[0].file, "overlays/prod/kustomization.yaml");

    let mut src = source(&url, "main", "overlays/prod");
    let mut options = KustomizeSource {
        name_prefix: "staging-".into(),
        name_suffix: "-v2".into(),
        images: vec!["nginx=registry.example/nginx:1.27".into()],
        namespace: "team-a".into(),
        replicas: vec![KustomizeReplica {
            name: "web".into(),
            count: json!(3),
        }],
        components: vec!["../../components/extra".into()],
        patches: vec![json!({
            "target": {"kind": "Deployment"},
            "patch": "- op: add\n  path: /metadata/annotations\n  value: {patched: 'yes'}\n",
        })],
        ..Default::default()
    };
    options.common_labels.insert("env".into(), "staging".into());
    options
        .common_annotations
        .insert("owner".into(), "team-a".into());
    src.kustomize = Some(options);
    let edited = svc
        .render(&request(vec![src]), &cancel)
        .await
        .expect("edited");
    let mut got = names(&edited);
    got.sort();
    assert_eq!(
        got,
        ["ConfigMap/staging-extra-v2", "Deployment/staging-web-v2"]
    );
    let deploy = edited
        .manifests
        .iter()
        .find(|m| m.object["kind"] == "Deployment")
        .expect("deployment");
    let obj = &deploy.object;
    assert_eq!(obj["metadata"]["namespace"], "team-a");
    assert_eq!(obj["metadata"]["labels"]["env"], "staging");
    assert_eq!(obj["metadata"]["annotations"]["owner"], "team-a");
    assert_eq!(obj["metadata"]["annotations"]["patched"], "yes");
    assert_eq!(obj["spec"]["replicas"], 3);
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"],
        "registry.example/nginx:1.27"
    );

    // The shared checkout was not edited: a plain render is unchanged.
    let again = svc
        .render(
            &{
                let mut r = request(vec![source(&url, "main", "overlays/prod")]);
                r.hard_refresh = true;
                r
            },
            &cancel,
        )
        .await
        .expect("plain again");
    assert_eq!(names(&again), ["Deployment/prod-web"]);

    // A kustomization referencing a missing file: kustomize's message, nothing cached.
    let entries = svc.cache_stats().entries;
    let err = render_error(
        svc.render(&request(vec![source(&url, "main", "broken")]), &cancel)
            .await
            .expect_err("missing resource"),
    );
    assert!(err.to_string().contains("missing.yaml"), "{err}");
    assert_eq!(svc.cache_stats().entries, entries);

    // Resources (directly or through a nested kustomization) outside the repository.
    for path in ["outside", "outside-nested"] {
        let err = render_error(
            svc.render(&request(vec![source(&url, "main", path)]), &cancel)
                .await
                .expect_err(path),
        );
        assert!(
            err.to_string().contains("leaves the repository")
                && err.to_string().contains("outside/kustomization.yaml"),
            "{path}: {err}"
        );
    }

    // A component outside the repository is refused before kustomize runs.
    let mut src = source(&url, "main", "overlays/prod");
    src.kustomize = Some(KustomizeSource {
        components: vec!["../../../../etc".into()],
        ..Default::default()
    });
    let err = render_error(
        svc.render(&request(vec![src]), &cancel)
            .await
            .expect_err("escape"),
    );
    assert!(err.to_string().contains("leaves the repository"), "{err}");
}

#[tokio::test]
async fn kustomize_binary_with_every_option() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = kustomize_repo(root.path());
    let dir = tempfile::tempdir().expect("tmp");
    check_kustomize(service(dir.path()), &repo).await;
}

#[tokio::test]
async fn kubectl_kustomize_with_every_option() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = kustomize_repo(root.path());
    let dir = tempfile::tempdir().expect("tmp");
    check_kustomize(service_kubectl(dir.path()), &repo).await;
}

const CHART_YAML: &str = "apiVersion: v2\nname: web\nversion: 0.1.0\n";
const VALUES_YAML: &str = "replicas: 1\nimage: nginx:1.0\ngreeting: hello\n";
const TEMPLATE: &str = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}-web\n  namespace: {{ .Release.Namespace }}\n  annotations:\n    greeting: {{ .Values.greeting | quote }}\n    kube: {{ .Capabilities.KubeVersion.Version | quote }}\n    extra: {{ .Values.extra | default \"none\" | quote }}\n    file: {{ .Values.fileParam | default \"\" | trim | quote }}\n    api: {{ .Capabilities.APIVersions.Has \"example.com/v1\" | quote }}\nspec:\n  replicas: {{ .Values.replicas }}\n  selector: {matchLabels: {app: web}}\n  template:\n    metadata: {labels: {app: web}}\n    spec:\n      containers:\n      - name: web\n        image: {{ .Values.image }}\n";
const CRD: &str = "apiVersion: apiextensions.k8s.io/v1\nkind: CustomResourceDefinition\nmetadata:\n  name: widgets.example.com\nspec:\n  group: example.com\n  names: {kind: Widget, plural: widgets}\n  scope: Namespaced\n  versions:\n  - name: v1\n    served: true\n    storage: true\n    schema:\n      openAPIV3Schema: {type: object}\n";

fn chart_files(prefix: &str) -> Vec<(String, String)> {
    vec![
        (format!("{prefix}/Chart.yaml"), CHART_YAML.to_string()),
        (format!("{prefix}/values.yaml"), VALUES_YAML.to_string()),
        (
            format!("{prefix}/templates/deploy.yaml"),
            TEMPLATE.to_string(),
        ),
        (format!("{prefix}/crds/widget.yaml"), CRD.to_string()),
        (
            format!("{prefix}/values-prod.yaml"),
            "replicas: 5\n".to_string(),
        ),
        (
            format!("{prefix}/greeting.txt"),
            "from a file\n".to_string(),
        ),
    ]
}

fn commit_owned(repo: &Repo, files: &[(String, String)], message: &str) -> String {
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    repo.commit(&refs, message)
}

#[tokio::test]
async fn helm_chart_from_git_with_every_option_and_multi_source_values() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "charts");
    let mut files = chart_files("charts/web");
    files.push((
        "charts/broken/Chart.yaml".into(),
        "apiVersion: v2\nname: broken\nversion: 0.1.0\n".into(),
    ));
    files.push((
        "charts/broken/templates/bad.yaml".into(),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Values.missing.deeper }}\n".into(),
    ));
    commit_owned(&repo, &files, "charts");
    let values_repo = Repo::create(root.path(), "values");
    values_repo.commit(
        &[("envs/prod.yaml", "greeting: from-ref\nimage: nginx:9\n")],
        "values",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();

    // Detected by Chart.yaml; defaults: release = app name, namespace = destination.
    let plain = svc
        .render(
            &request(vec![source(&repo.file_url(), "main", "charts/web")]),
            &cancel,
        )
        .await
        .expect("plain chart");
    assert_eq!(
        names(&plain),
        [
            "CustomResourceDefinition/widgets.example.com",
            "Deployment/demo-web"
        ]
    );
    let deploy = &plain.manifests[1];
    assert_eq!(deploy.file, "charts/web/templates/deploy.yaml");
    assert_eq!(deploy.object["metadata"]["namespace"], "demo-ns");

    let mut chart = source(&repo.file_url(), "main", "charts/web");
    chart.helm = Some(HelmSource {
        value_files: vec![
            "values-prod.yaml".into(),
            "$vals/envs/prod.yaml".into(),
            "missing.yaml".into(),
        ],
        ignore_missing_value_files: true,
        values_object: Some(json!({"extra": "inline"})),
        parameters: vec![HelmParameter {
            name: "image".into(),
            value: "-nginx:2".into(),
            force_string: true,
        }],
        file_parameters: vec![HelmFileParameter {
            name: "fileParam".into(),
            path: "greeting.txt".into(),
        }],
        release_name: "rel".into(),
        namespace: "helm-ns".into(),
        skip_crds: true,
        kube_version: "1.31.0".into(),
        api_versions: vec!["example.com/v1".into()],
        ..Default::default()
    });
    let mut values_source = ApplicationSource {
        repo_url: values_repo.file_url(),
        target_revision: "main".into(),
        reference: "vals".into(),
        ..Default::default()
    };
    let rendered = svc
        .render(
            &request(vec![chart.clone(), values_source.clone()]),
            &cancel,
        )
        .await
        .expect("options");
    assert_eq!(names(&rendered), ["Deployment/rel-web"]);
    let obj = &rendered.manifests[0].object;
    assert_eq!(obj["metadata"]["namespace"], "helm-ns");
    assert_eq!(obj["spec"]["replicas"], 5, "value file");
    assert_eq!(
        obj["metadata"]["annotations"]["greeting"], "from-ref",
        "$ref values"
    );
    assert_eq!(
        obj["metadata"]["annotations"]["extra"], "inline",
        "valuesObject"
    );
    assert_eq!(
        obj["metadata"]["annotations"]["file"], "from a file",
        "fileParameters"
    );
    assert_eq!(obj["metadata"]["annotations"]["kube"], "v1.31.0");
    assert_eq!(obj["metadata"]["annotations"]["api"], "true");
    assert_eq!(
        obj["spec"]["template"]["spec"]["containers"][0]["image"], "-nginx:2",
        "a parameter value starting with '-' is a value, not a flag"
    );
    assert_eq!(rendered.revisions.len(), 2);

    // A value file outside the repository, a missing one, an unknown ref.
    for (file, why) in [
        ("../../../etc/passwd", "leaves the repository"),
        ("/etc/passwd", "absolute"),
        ("nope.yaml", "does not exist"),
        ("$other/x.yaml", "no source of the application defines"),
    ] {
        let mut bad = chart.clone();
        if let Some(h) = bad.helm.as_mut() {
            h.value_files = vec![file.into()];
            h.ignore_missing_value_files = false;
        }
        let err = svc
            .render(&request(vec![bad, values_source.clone()]), &cancel)
            .await
            .expect_err(file);
        assert!(err.to_string().contains(why), "{file}: {err}");
    }
    // A symlinked value file pointing outside: the whole commit is refused.
    values_source.target_revision = {
        std::os::unix::fs::symlink("/etc/passwd", values_repo.work.join("envs/evil.yaml"))
            .expect("link");
        values_repo.commit(&[], "evil")
    };
    let mut bad = chart.clone();
    if let Some(h) = bad.helm.as_mut() {
        h.value_files = vec!["$vals/envs/evil.yaml".into()];
    }
    let err = svc
        .render(&request(vec![bad, values_source]), &cancel)
        .await
        .expect_err("symlink");
    assert!(
        err.to_string().contains("symlinks that point outside"),
        "{err}"
    );

    // A parameter trying to smuggle a flag.
    let mut bad = chart.clone();
    if let Some(h) = bad.helm.as_mut() {
        h.value_files.clear();
        h.parameters = vec![HelmParameter {
            name: "--post-renderer".into(),
            value: "/bin/sh".into(),
            force_string: false,
        }];
    }
    let err = svc
        .render(&request(vec![bad]), &cancel)
        .await
        .expect_err("flag");
    assert!(err.to_string().contains("must not start with '-'"), "{err}");

    // A chart with a template error: helm's message, nothing cached, others unaffected.
    let entries = svc.cache_stats().entries;
    let err = render_error(
        svc.render(
            &request(vec![source(&repo.file_url(), "main", "charts/broken")]),
            &cancel,
        )
        .await
        .expect_err("template error"),
    );
    let text = err.to_string();
    assert!(
        text.contains("helm failed") && text.contains("bad.yaml"),
        "{text}"
    );
    assert_eq!(svc.cache_stats().entries, entries);
    let again = svc
        .render(
            &request(vec![source(&repo.file_url(), "main", "charts/web")]),
            &cancel,
        )
        .await
        .expect("plain again");
    assert!(again.cache_hit);
}

/// Packages a chart named `name` (version 1.2.3 and 1.3.0) into `out`.
fn package_chart(work: &Path, out: &Path, name: &str) {
    for version in ["1.2.3", "1.3.0"] {
        servers::package_chart(
            work,
            out,
            name,
            version,
            &format!(
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-{name}\ndata:\n  version: \"{version}\"\n  color: {{{{ .Values.color | default \"blue\" }}}}\n"
            ),
        );
    }
}

#[tokio::test]
async fn helm_charts_from_an_http_repository_and_as_dependencies() {
    let server = HttpServer::start().expect("lighttpd with git http-backend");
    let work = tempfile::tempdir().expect("tmp");
    let charts = server.www().join("charts");
    std::fs::create_dir_all(&charts).expect("mkdir");
    package_chart(work.path(), &charts, "hello");
    let repo_url = format!("http://127.0.0.1:{}/charts", server.port);
    helm_repo_index(&charts, &repo_url, work.path());
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let chart = |version: &str| ApplicationSource {
        repo_url: repo_url.clone(),
        chart: "hello".into(),
        target_revision: version.into(),
        helm: Some(HelmSource {
            parameters: vec![HelmParameter {
                name: "color".into(),
                value: "green".into(),
                force_string: false,
            }],
            ..Default::default()
        }),
        ..Default::default()
    };
    let rendered = svc
        .render(&request(vec![chart("1.2.3")]), &cancel)
        .await
        .expect("exact");
    assert_eq!(names(&rendered), ["ConfigMap/demo-hello"]);
    assert_eq!(rendered.manifests[0].object["data"]["version"], "1.2.3");
    assert_eq!(rendered.manifests[0].object["data"]["color"], "green");
    assert!(
        svc.render(&request(vec![chart("1.2.3")]), &cancel)
            .await
            .expect("again")
            .cache_hit
    );
    let latest = svc
        .render(&request(vec![chart("1.*")]), &cancel)
        .await
        .expect("constraint");
    assert_eq!(latest.manifests[0].object["data"]["version"], "1.3.0");
    let err = svc
        .render(&request(vec![chart("9.9.9")]), &cancel)
        .await
        .expect_err("no such version");
    assert!(err.to_string().contains("9.9.9"), "{err}");

    // A Git chart depending on the HTTP repository: the dependency is built.
    let root = tempfile::tempdir().expect("tmp");
    let git = Repo::create(root.path(), "umbrella");
    git.commit(
        &[(
            "umbrella/Chart.yaml",
            &format!(
                "apiVersion: v2\nname: umbrella\nversion: 0.1.0\ndependencies:\n- name: hello\n  version: 1.2.3\n  repository: {repo_url}\n"
            ),
        )],
        "umbrella",
    );
    let rendered = svc
        .render(
            &request(vec![source(&git.file_url(), "main", "umbrella")]),
            &cancel,
        )
        .await
        .expect("dependency build");
    assert_eq!(names(&rendered), ["ConfigMap/demo-hello"]);
    assert_eq!(
        rendered.manifests[0].file,
        "umbrella/charts/hello/templates/cm.yaml"
    );
}

#[tokio::test]
async fn helm_chart_from_an_oci_registry() {
    let registry = Registry::start();
    let work = tempfile::tempdir().expect("tmp");
    let out = work.path().join("out");
    std::fs::create_dir_all(&out).expect("mkdir");
    package_chart(work.path(), &out, "ocichart");
    let oci = format!("oci://127.0.0.1:{}/charts", registry.port);
    helm(
        &[
            "push",
            out.join("ocichart-1.2.3.tgz").to_str().expect("utf8"),
            &oci,
            "--plain-http",
        ],
        work.path(),
        &work.path().join("home"),
    );
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let mut store = CredentialStore::new();
    let data: BTreeMap<String, String> = [
        ("url", oci.as_str()),
        ("type", "helm"),
        ("enableOCI", "true"),
        ("insecureOCIForceHttp", "true"),
    ]
    .iter()
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    store
        .insert(
            RepositorySecret::from_secret_data("oci", SecretType::Repository, &data)
                .expect("secret"),
        )
        .expect("insert");
    svc.set_credentials(store);
    let cancel = CancellationToken::new();
    let src = ApplicationSource {
        repo_url: oci.clone(),
        chart: "ocichart".into(),
        target_revision: "1.2.3".into(),
        ..Default::default()
    };
    let rendered = svc
        .render(&request(vec![src]), &cancel)
        .await
        .expect("oci chart");
    assert_eq!(names(&rendered), ["ConfigMap/demo-ocichart"]);
    assert_eq!(rendered.manifests[0].object["data"]["version"], "1.2.3");
}

#[tokio::test]
async fn runaway_tools_are_killed_and_reported() {
    // The runner itself, with real processes: a sleeper and a flood.
    let cancel = CancellationToken::new();
    let err = command::run(
        &CommandSpec::new("sleep")
            .arg("60")
            .timeout(Duration::from_millis(300)),
        &cancel,
    )
    .await
    .expect_err("timeout");
    assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");
    let err = command::run(&CommandSpec::new("yes").max_stdout(1024 * 1024), &cancel)
        .await
        .expect_err("flood");
    assert!(matches!(err, CommandError::OutputTooLarge { .. }), "{err}");
    // A child that forks a grandchild holding the pipe is killed with its group.
    let err = command::run(
        &CommandSpec::new("sh")
            .args(["-c", "sleep 60 & sleep 60"])
            .timeout(Duration::from_millis(300)),
        &cancel,
    )
    .await
    .expect_err("group");
    assert!(matches!(err, CommandError::TimedOut { .. }), "{err}");

    // A chart whose template loops for a very long time, and one that prints without end.
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "runaway");
    repo.commit(
        &[
            ("slow/Chart.yaml", "apiVersion: v2\nname: slow\nversion: 0.1.0\n"),
            ("slow/templates/loop.yaml", "{{- range $i := until 2000000000 }}{{- end }}\n"),
            ("loud/Chart.yaml", "apiVersion: v2\nname: loud\nversion: 0.1.0\n"),
            (
                "loud/templates/flood.yaml",
                "{{- range $i := until 10000000 }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cm-{{ $i }}\n{{- end }}\n",
            ),
            ("fine/cm.yaml", &crate::cm("fine")),
        ],
        "runaway",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |c| {
        c.render.tool_timeout = Duration::from_secs(3);
        c.render.max_tool_output = 2 * 1024 * 1024;
    });
    let err = svc
        .render(
            &request(vec![source(&repo.file_url(), "main", "slow")]),
            &cancel,
        )
        .await
        .expect_err("slow");
    assert!(err.to_string().contains("did not finish within"), "{err}");
    let err = svc
        .render(
            &request(vec![source(&repo.file_url(), "main", "loud")]),
            &cancel,
        )
        .await
        .expect_err("loud");
    assert!(
        err.to_string().contains("printed more than") || err.to_string().contains("did not finish"),
        "{err}"
    );
    assert_eq!(svc.cache_stats().entries, 0);
    svc.render(
        &request(vec![source(&repo.file_url(), "main", "fine")]),
        &cancel,
    )
    .await
    .expect("other apps unaffected");
}
