//! Helm chart dependencies and charts behind credentials: Debian's docker-registry with
//! htpasswd (bcrypt) basic auth for `oci://` dependencies and OCI charts, and lighttpd with
//! basic auth for an HTTP (index.yaml) dependency repository. Credentials come from Argo
//! CD-style `repository` / `repo-creds` Secrets matched by URL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Child;

use plumb_model::application::ApplicationSource;
use plumb_source::creds::{CredentialStore, RepositorySecret, SecretType};
use plumb_source::{RenderRequest, SourceService};
use tokio_util::sync::CancellationToken;

use crate::servers::{self, Registry, Repo, helm, helm_repo_index};
use crate::{names, request, service, source};

const USER: &str = "chart-robot";
const PASSWORD: &str = "s3cret-registry-pass";

/// lighttpd serving `www/` with basic auth on `/private/`.
struct AuthWeb {
    child: Child,
    port: u16,
    dir: tempfile::TempDir,
}

impl AuthWeb {
    fn start() -> AuthWeb {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::create_dir_all(root.join("www/private")).expect("mkdir");
        std::fs::write(root.join("users"), format!("{USER}:{PASSWORD}\n")).expect("users");
        let (child, port) = servers::start_on_free_port(
            "lighttpd",
            &root.join("error.log"),
            |port| {
                let config = format!(
                    r#"server.document-root = "{root}/www"
server.port = {port}
server.bind = "127.0.0.1"
server.modules = ("mod_auth", "mod_authn_file")
server.errorlog = "{root}/error.log"
mimetype.assign = (".yaml" => "text/yaml", ".tgz" => "application/gzip")
auth.backend = "plain"
auth.backend.plain.userfile = "{root}/users"
auth.require = ( "/private/" => ( "method" => "basic", "realm" => "charts", "require" => "valid-user" ) )
"#,
                    root = root.display()
                );
                std::fs::write(root.join("lighttpd.conf"), config).expect("config");
                servers::spawn_lighttpd(&root.join("lighttpd.conf"))
            },
        );
        AuthWeb { child, port, dir }
    }
}

impl Drop for AuthWeb {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Packages chart `name` 1.2.3 (one ConfigMap) into `out`; returns the archive.
fn package(work: &Path, out: &Path, name: &str) -> PathBuf {
    servers::package_chart(
        work,
        out,
        name,
        "1.2.3",
        &format!(
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{{{ .Release.Name }}}}-{name}\n"
        ),
    )
}

/// A repository `name` whose chart `parent/` depends on `dependency` 1.2.3 from
/// `repository`.
fn umbrella_repo(root: &Path, name: &str, dependency: &str, repository: &str) -> Repo {
    let git = Repo::create(root, name);
    git.commit(
        &[(
            "parent/Chart.yaml",
            &format!(
                "apiVersion: v2\nname: parent\nversion: 0.1.0\ndependencies:\n- name: {dependency}\n  version: 1.2.3\n  repository: {repository}\n"
            ),
        )],
        "parent",
    );
    git
}

fn secret(
    secret_type: SecretType,
    url: &str,
    password: &str,
    extra: &[(&str, &str)],
) -> RepositorySecret {
    let mut data: BTreeMap<String, String> = [
        ("url", url),
        ("type", "helm"),
        ("username", USER),
        ("password", password),
    ]
    .iter()
    .chain(extra)
    .map(|(k, v)| (k.to_string(), v.to_string()))
    .collect();
    data.retain(|_, v| !v.is_empty());
    RepositorySecret::from_secret_data("helm-creds", secret_type, &data).expect("secret")
}

fn use_secret(svc: &SourceService, secret: RepositorySecret) {
    let mut store = CredentialStore::new();
    store.insert(secret).expect("insert");
    svc.set_credentials(store);
}

/// Every regular file under `dir` (to check what the shared helm cache holds).
fn files_under(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return out;
    };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Rendering `req` fails for want of valid credentials for `repository` (without showing
/// the password), and nothing is cached.
async fn assert_auth_refused(
    svc: &SourceService,
    req: &RenderRequest,
    repository: &str,
    cancel: &CancellationToken,
) {
    let text = svc
        .render(req, cancel)
        .await
        .expect_err("rendered without valid credentials")
        .to_string();
    assert!(
        text.contains(&format!("authentication failed for {repository}")),
        "{text}"
    );
    assert!(!text.contains(PASSWORD), "the password leaked: {text}");
    assert_eq!(svc.cache_stats().entries, 0);
}

#[tokio::test]
async fn oci_dependencies_and_charts_behind_registry_credentials() {
    let registry = Registry::start_with_basic_auth(USER, PASSWORD);
    let work = tempfile::tempdir().expect("tmp");
    let home = work.path().join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    // The test's own login for the push (helm reads docker's config.json format).
    std::fs::write(
        home.join("registry.json"),
        serde_json::json!({"auths": {format!("127.0.0.1:{}", registry.port): {
            "auth": base64_encode(&format!("{USER}:{PASSWORD}"))
        }}})
        .to_string(),
    )
    .expect("registry config");
    let archive = package(work.path(), &work.path().join("out"), "private-dep");
    let oci = format!("oci://127.0.0.1:{}/charts", registry.port);
    helm(
        &[
            "push",
            archive.to_str().expect("utf8"),
            &oci,
            "--plain-http",
        ],
        &home,
        &home,
    );

    let root = tempfile::tempdir().expect("tmp");
    let git = umbrella_repo(root.path(), "umbrella-oci", "private-dep", &oci);
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let parent = request(vec![source(&git.file_url(), "main", "parent")]);
    let force_http = [("enableOCI", "true"), ("insecureOCIForceHttp", "true")];

    // No credentials, then wrong ones: a plain authentication error, nothing cached.
    assert_auth_refused(&svc, &parent, &oci, &cancel).await;
    use_secret(
        &svc,
        secret(SecretType::Repository, &oci, "wrong-password", &force_http),
    );
    assert_auth_refused(&svc, &parent, &oci, &cancel).await;
    let helm_cache = dir.path().join("cache/helm");
    let cached: Vec<PathBuf> = files_under(&helm_cache)
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("private-dep"))
        .collect();
    assert!(cached.is_empty(), "cached after a failure: {cached:?}");
    // Nothing of the private registry configuration is left in the scratch directory.
    assert!(
        files_under(&dir.path().join("cache/scratch")).is_empty(),
        "{:?}",
        files_under(&dir.path().join("cache/scratch"))
    );

    // The right password in the `repository` Secret of the registry: the dependency builds.
    use_secret(
        &svc,
        secret(SecretType::Repository, &oci, PASSWORD, &force_http),
    );
    let rendered = svc
        .render(&parent, &cancel)
        .await
        .expect("with credentials");
    assert_eq!(names(&rendered), ["ConfigMap/demo-private-dep"]);
    assert_eq!(
        rendered.manifests[0].file,
        "parent/charts/private-dep/templates/cm.yaml"
    );

    // A `repo-creds` template written without `oci://` (Argo CD's usual form) matches by
    // prefix, on a fresh service.
    let dir2 = tempfile::tempdir().expect("tmp");
    let svc2 = service(dir2.path());
    use_secret(
        &svc2,
        secret(
            SecretType::RepoCreds,
            &format!("127.0.0.1:{}", registry.port),
            PASSWORD,
            &force_http,
        ),
    );
    let rendered = svc2
        .render(&parent, &cancel)
        .await
        .expect("template credentials");
    assert_eq!(names(&rendered), ["ConfigMap/demo-private-dep"]);

    // The chart itself from the registry (spec.source.chart), with and without credentials.
    let chart = ApplicationSource {
        repo_url: oci.clone(),
        chart: "private-dep".into(),
        target_revision: "1.2.3".into(),
        ..Default::default()
    };
    let rendered = svc
        .render(&request(vec![chart.clone()]), &cancel)
        .await
        .expect("oci chart with credentials");
    assert_eq!(names(&rendered), ["ConfigMap/demo-private-dep"]);
    let dir3 = tempfile::tempdir().expect("tmp");
    let svc3 = service(dir3.path());
    use_secret(
        &svc3,
        secret(SecretType::Repository, &oci, "wrong-password", &force_http),
    );
    assert_auth_refused(&svc3, &request(vec![chart]), &oci, &cancel).await;
}

#[tokio::test]
async fn http_dependency_repositories_behind_basic_auth() {
    let web = AuthWeb::start();
    let work = tempfile::tempdir().expect("tmp");
    let charts = web.dir.path().join("www/private/charts");
    package(work.path(), &charts, "http-dep");
    let repo_url = format!("http://127.0.0.1:{}/private/charts", web.port);
    helm_repo_index(&charts, &repo_url, work.path());
    let root = tempfile::tempdir().expect("tmp");
    let git = umbrella_repo(root.path(), "umbrella-http", "http-dep", &repo_url);
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let parent = request(vec![source(&git.file_url(), "main", "parent")]);

    use_secret(
        &svc,
        secret(SecretType::Repository, &repo_url, "wrong-password", &[]),
    );
    assert_auth_refused(&svc, &parent, &repo_url, &cancel).await;

    use_secret(
        &svc,
        secret(SecretType::Repository, &repo_url, PASSWORD, &[]),
    );
    let rendered = svc
        .render(&parent, &cancel)
        .await
        .expect("with credentials");
    assert_eq!(names(&rendered), ["ConfigMap/demo-http-dep"]);
}

fn base64_encode(text: &str) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(text)
}
