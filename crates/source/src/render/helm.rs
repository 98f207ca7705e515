//! Helm: `helm template` with every option of Argo CD's `spec.source.helm`, charts from a Git
//! path, an HTTP chart repository (index.yaml) or an OCI registry, and chart dependencies
//! built from their repositories.
//!
//! Every option is passed as one `--flag=value` argument and the positionals follow `--`,
//! so no user value can become a flag. Repository passwords go through `--password-stdin`
//! into a private Helm configuration, never on the command line.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};

use plumb_model::application::ApplicationSource;
use serde_json::Value;
use sha2::{Digest, Sha256};

use super::{Manifest, RenderContext, RenderError, Rendered, yaml};
use crate::command::{self, CommandSpec, check_argument};
use crate::creds::{CredentialStore, Credentials};

fn helm_binary(ctx: &RenderContext<'_>, path: &str) -> Result<PathBuf, RenderError> {
    ctx.tools
        .helm
        .clone()
        .ok_or_else(|| ctx.tools.helm_missing(path))
}

/// A private Helm configuration (repositories, registry logins) for one render; the shared
/// download cache stays under the tools' helm home.
struct HelmEnv {
    dir: tempfile::TempDir,
    cache: PathBuf,
    data: PathBuf,
    /// Registry host → base64 `user:password`, written to the registry configuration.
    registry_logins: BTreeMap<String, String>,
}

impl HelmEnv {
    fn new(ctx: &RenderContext<'_>) -> Result<HelmEnv, RenderError> {
        let dir = tempfile::Builder::new()
            .prefix("helm-")
            .tempdir_in(&ctx.options.scratch_dir)
            .map_err(RenderError::io("creating a helm scratch directory"))?;
        Ok(HelmEnv {
            dir,
            cache: ctx.tools.helm_home.join("cache"),
            data: ctx.tools.helm_home.join("data"),
            registry_logins: BTreeMap::new(),
        })
    }

    fn spec(&self, helm: &Path, ctx: &RenderContext<'_>) -> CommandSpec {
        let config = self.dir.path().join("config");
        CommandSpec::new(helm)
            .env("HELM_CONFIG_HOME", &config)
            .env("HELM_CACHE_HOME", &self.cache)
            .env("HELM_DATA_HOME", &self.data)
            .env("HELM_REPOSITORY_CONFIG", config.join("repositories.yaml"))
            .env("HELM_REPOSITORY_CACHE", self.cache.join("repository"))
            .env("HELM_REGISTRY_CONFIG", config.join("registry.json"))
            .env("HELM_PLUGINS", self.dir.path().join("plugins"))
            .timeout(ctx.options.tool_timeout)
            .max_stdout(ctx.options.max_tool_output)
    }

    fn scratch(&self) -> &Path {
        self.dir.path()
    }

    /// Adds a registry login to this render's private registry configuration (docker
    /// `config.json` format, what `HELM_REGISTRY_CONFIG` points at): `auths.<host>.auth` is
    /// base64 of `user:password`. The file is 0600 inside the 0700 scratch directory and goes
    /// with it; no password reaches a command line, and no network round trip is spent on a
    /// `helm registry login`.
    fn add_registry_login(&mut self, host: &str, creds: &Credentials) -> Result<(), RenderError> {
        use base64::Engine;
        use std::io::Write;
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let token = format!(
            "{}:{}",
            creds.username.as_deref().unwrap_or_default(),
            creds.password.as_deref().unwrap_or_default()
        );
        self.registry_logins.insert(
            host.to_string(),
            base64::engine::general_purpose::STANDARD.encode(token),
        );
        let auths: serde_json::Map<String, Value> = self
            .registry_logins
            .iter()
            .map(|(host, auth)| (host.clone(), serde_json::json!({ "auth": auth })))
            .collect();
        let config = self.dir.path().join("config");
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&config)
            .map_err(RenderError::io("creating the helm registry configuration"))?;
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(config.join("registry.json"))
            .map_err(RenderError::io("writing the helm registry configuration"))?;
        file.write_all(serde_json::json!({ "auths": auths }).to_string().as_bytes())
            .map_err(RenderError::io("writing the helm registry configuration"))
    }
}

/// The registry host (`host[:port]`) of an OCI reference (`oci://host/path` or `host/path`).
fn registry_host(repo_url: &str) -> &str {
    repo_url
        .trim_start_matches("oci://")
        .split('/')
        .next()
        .unwrap_or_default()
}

/// The credentials for a chart repository or registry, matched as Argo CD matches them: the
/// `repository` Secret with that URL, else the longest `repo-creds` prefix; OCI URLs are
/// tried with and without `oci://` (Argo CD stores registries either way).
fn chart_credentials<'a>(ctx: &RenderContext<'a>, repo_url: &str) -> Option<&'a Credentials> {
    let store: &'a CredentialStore = ctx.credentials;
    store.lookup_key(repo_url).or_else(|| {
        repo_url
            .strip_prefix("oci://")
            .and_then(|bare| store.lookup_key(bare))
    })
}

async fn run_helm(
    spec: CommandSpec,
    ctx: &RenderContext<'_>,
    path: &str,
    creds: Option<&Credentials>,
) -> Result<Vec<u8>, RenderError> {
    let out = command::run(&spec, ctx.cancel)
        .await
        .map_err(|source| RenderError::Command {
            tool: "helm",
            path: path.to_string(),
            source,
        })?;
    if out.success {
        return Ok(out.stdout);
    }
    let mut message = out.stderr.trim().to_string();
    if let Some(password) = creds.and_then(|c| c.password.as_deref()) {
        message = message.replace(password, "*****");
    }
    message = message.replace(&format!("{}/", ctx.repo_root.display()), "");
    Err(RenderError::Tool {
        tool: "helm",
        path: path.to_string(),
        message,
    })
}

/// Whether a chart repository URL is an OCI registry (`oci://`, or a bare `host/path` that
/// its credentials mark with `enableOCI`, as Argo CD stores them).
pub fn is_oci(repo_url: &str, creds: Option<&Credentials>) -> bool {
    repo_url.starts_with("oci://")
        || (!repo_url.contains("://") && creds.is_some_and(|c| c.enable_oci))
}

/// Logs in to a registry (in the private registry configuration) or adds a chart repository
/// (`helm repo add --password-stdin` into the private configuration), when the repository
/// has credentials. Returns the name to pull through for HTTP repositories.
async fn authenticate(
    env: &mut HelmEnv,
    helm: &Path,
    repo_url: &str,
    name: &str,
    creds: Option<&Credentials>,
    ctx: &RenderContext<'_>,
    path: &str,
) -> Result<Option<String>, RenderError> {
    let Some(creds) = creds.filter(|c| c.username.is_some() || c.password.is_some()) else {
        return Ok(None);
    };
    let username = creds.username.clone().unwrap_or_default();
    check_argument("repository username", &username)?;
    if is_oci(repo_url, Some(creds)) {
        let host = registry_host(repo_url);
        check_argument("registry host", host)?;
        env.add_registry_login(host, creds)?;
        return Ok(None);
    }
    let password = creds.password.clone().unwrap_or_default();
    let mut spec = env
        .spec(helm, ctx)
        .args(["repo", "add", "--force-update"])
        .arg(format!("--username={username}"))
        .arg("--password-stdin");
    if creds.insecure {
        spec = spec.arg("--insecure-skip-tls-verify");
    }
    if creds.force_http_basic_auth {
        spec = spec.arg("--pass-credentials");
    }
    let spec = spec
        .arg("--")
        .arg(name)
        .arg(repo_url)
        .stdin(password.into_bytes());
    run_helm(spec, ctx, path, Some(creds))
        .await
        .map_err(|e| explain_auth_failure(e, &[repo_url]))?;
    Ok(Some(name.to_string()))
}

/// A helm failure that is a registry or repository refusing the credentials (or asking for
/// some), reworded so the cause is plain; other failures unchanged.
fn explain_auth_failure(err: RenderError, repositories: &[&str]) -> RenderError {
    let RenderError::Tool {
        tool,
        path,
        message,
    } = err
    else {
        return err;
    };
    let lower = message.to_ascii_lowercase();
    // Status codes only as numbers of their own: a registry at 127.0.0.1:40123 is no 401.
    let refused = ["unauthorized", "forbidden", "authentication required"]
        .iter()
        .any(|needle| lower.contains(needle))
        || crate::git::says_http_status(&lower, "401")
        || crate::git::says_http_status(&lower, "403");
    if !refused {
        return RenderError::Tool {
            tool,
            path,
            message,
        };
    }
    // Name the repository helm complained about, else every candidate.
    let named: Vec<&str> = repositories
        .iter()
        .copied()
        .filter(|r| message.contains(registry_host(r)))
        .collect();
    let which = if named.is_empty() {
        repositories.join(", ")
    } else {
        named.join(", ")
    };
    RenderError::Tool {
        tool,
        path,
        message: format!(
            "authentication failed for {which} (check the credentials of its repository or \
             repo-creds Secret): {message}"
        ),
    }
}

/// Downloads `chart` at `version` (a version or a semver constraint; empty for the latest)
/// from a chart repository or OCI registry into `into`; returns the chart's directory.
pub async fn pull_chart(
    repo_url: &str,
    chart: &str,
    version: &str,
    ctx: &RenderContext<'_>,
    into: &Path,
) -> Result<PathBuf, RenderError> {
    let display = format!("{repo_url} {chart}");
    check_argument("chart repository URL", repo_url)?;
    check_argument("chart", chart)?;
    check_argument("chart version", version)?;
    if chart.contains("..") || chart.starts_with('/') {
        return Err(RenderError::BadOption {
            what: format!("chart {chart:?}"),
            message: "must be a chart name".to_string(),
        });
    }
    let helm = helm_binary(ctx, &display)?;
    let mut env = HelmEnv::new(ctx)?;
    let creds = chart_credentials(ctx, repo_url);
    let oci = is_oci(repo_url, creds);
    let repo_name = authenticate(
        &mut env,
        &helm,
        repo_url,
        "plumb-chart-repo",
        creds,
        ctx,
        &display,
    )
    .await?;
    let mut spec = env.spec(&helm, ctx).arg("pull");
    let reference: OsString = if oci {
        let base = repo_url.trim_start_matches("oci://").trim_end_matches('/');
        format!("oci://{base}/{chart}").into()
    } else if let Some(name) = &repo_name {
        format!("{name}/{chart}").into()
    } else {
        spec = spec.arg(format!("--repo={repo_url}"));
        chart.into()
    };
    if !version.is_empty() {
        spec = spec.arg(format!("--version={version}"));
    }
    if creds.is_some_and(|c| c.insecure_oci_force_http) && oci {
        spec = spec.arg("--plain-http");
    }
    if creds.is_some_and(|c| c.insecure) {
        spec = spec.arg("--insecure-skip-tls-verify");
    }
    let spec = spec
        .arg("--untar")
        .arg(format!("--untardir={}", into.display()))
        .arg("--")
        .arg(reference);
    run_helm(spec, ctx, &display, creds)
        .await
        .map_err(|e| explain_auth_failure(e, &[repo_url]))?;
    let name = chart.rsplit('/').next().unwrap_or(chart);
    let dir = into.join(name);
    if !dir.join("Chart.yaml").is_file() {
        return Err(RenderError::Tool {
            tool: "helm",
            path: display,
            message: format!("the pulled archive has no {name}/Chart.yaml"),
        });
    }
    Ok(dir)
}

/// Where a value file is: `$ref/path` in another source, a URL, or a path relative to the
/// chart. `None` when it is missing and missing files are to be ignored.
fn value_file(
    spec: &str,
    chart_dir: &Path,
    ctx: &RenderContext<'_>,
    ignore_missing: bool,
) -> Result<Option<OsString>, RenderError> {
    if spec.starts_with("https://") || spec.starts_with("http://") {
        check_argument("value file URL", spec)?;
        return Ok(Some(spec.into()));
    }
    let resolved = if let Some(rest) = spec.strip_prefix('$') {
        let (name, path) = rest.split_once('/').unwrap_or((rest, ""));
        let Some(root) = ctx.refs.get(name) else {
            return Err(RenderError::UnknownRef(spec.to_string(), name.to_string()));
        };
        crate::paths::resolve_inside(root, root, path, "value file")
    } else {
        crate::paths::resolve_inside(ctx.repo_root, chart_dir, spec, "value file")
    };
    match resolved {
        Ok(path) => Ok(Some(path.into())),
        Err(crate::paths::PathError::Missing { .. }) if ignore_missing => Ok(None),
        Err(e) => Err(e.into()),
    }
}

/// Chart dependencies not yet present in `charts/`.
fn missing_dependencies(chart_dir: &Path) -> Vec<(String, String)> {
    let Ok(text) = std::fs::read_to_string(chart_dir.join("Chart.yaml")) else {
        return Vec::new();
    };
    let Ok(chart) = serde_saphyr::from_str::<Value>(&text) else {
        return Vec::new();
    };
    let deps: Vec<(String, String)> = chart["dependencies"]
        .as_array()
        .map(|deps| {
            deps.iter()
                .map(|d| {
                    (
                        d["name"].as_str().unwrap_or_default().to_string(),
                        d["repository"].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    let present: Vec<String> = std::fs::read_dir(chart_dir.join("charts"))
        .map(|entries| {
            entries
                .flatten()
                .map(|e| e.file_name().to_string_lossy().into_owned())
                .collect()
        })
        .unwrap_or_default();
    deps.into_iter()
        .filter(|(name, _)| {
            !present
                .iter()
                .any(|p| p == name || p.starts_with(&format!("{name}-")))
        })
        .collect()
}

pub(super) async fn render(
    source: &ApplicationSource,
    app_dir: &Path,
    rel_path: &str,
    ctx: &RenderContext<'_>,
) -> Result<Rendered, RenderError> {
    let helm = helm_binary(ctx, rel_path)?;
    let options = source.helm.clone().unwrap_or_default();
    let mut env = HelmEnv::new(ctx)?;

    // Dependencies are built in a private copy: the checkout is shared and read-only.
    let mut chart_dir = app_dir.to_path_buf();
    let missing = missing_dependencies(app_dir);
    if !missing.is_empty() {
        let copy_root = env.scratch().join("repo");
        crate::git::copy_tree(ctx.repo_root, &copy_root)
            .map_err(RenderError::io("copying the chart for a dependency build"))?;
        chart_dir = copy_root.join(app_dir.strip_prefix(ctx.repo_root).unwrap_or(Path::new("")));
        let mut build_flags: Vec<&str> = Vec::new();
        let mut remote: Vec<&str> = Vec::new();
        for (_, repository) in &missing {
            if repository.starts_with("http://") || repository.starts_with("https://") {
                remote.push(repository);
                check_argument("dependency repository", repository)?;
                let creds = chart_credentials(ctx, repository);
                // Named after the URL: the repository index cache is shared between renders.
                let name = format!("dep-{}", &hex::encode(Sha256::digest(repository))[..16]);
                if authenticate(&mut env, &helm, repository, &name, creds, ctx, rel_path)
                    .await?
                    .is_none()
                {
                    let spec = env
                        .spec(&helm, ctx)
                        .args(["repo", "add", "--force-update", "--"])
                        .arg(&name)
                        .arg(repository);
                    run_helm(spec, ctx, rel_path, None).await?;
                }
                if creds.is_some_and(|c| c.insecure) {
                    build_flags.push("--insecure-skip-tls-verify");
                }
            } else if repository.starts_with("oci://") {
                remote.push(repository);
                check_argument("dependency repository", repository)?;
                let creds = chart_credentials(ctx, repository);
                authenticate(&mut env, &helm, repository, "", creds, ctx, rel_path).await?;
                if creds.is_some_and(|c| c.insecure_oci_force_http) {
                    build_flags.push("--plain-http");
                }
                if creds.is_some_and(|c| c.insecure) {
                    build_flags.push("--insecure-skip-tls-verify");
                }
            } else if let Some(local) = repository.strip_prefix("file://") {
                crate::paths::resolve_inside(ctx.repo_root, app_dir, local, "chart dependency")?;
            }
        }
        build_flags.sort_unstable();
        build_flags.dedup();
        // The indexes of HTTP repositories just added must be read fresh; without any,
        // nothing needs refreshing.
        if !missing.iter().any(|(_, r)| r.starts_with("http")) {
            build_flags.push("--skip-refresh");
        }
        let spec = env
            .spec(&helm, ctx)
            .args(["dependency", "build"])
            .args(build_flags)
            .arg("--")
            .arg(&chart_dir);
        run_helm(spec, ctx, rel_path, None)
            .await
            .map_err(|e| explain_auth_failure(e, &remote))?;
    }

    let release = if options.release_name.is_empty() {
        ctx.app_name.to_string()
    } else {
        options.release_name.clone()
    };
    check_argument("helm release name", &release)?;
    let namespace = if options.namespace.is_empty() {
        ctx.namespace
    } else {
        options.namespace.as_str()
    };
    let mut spec = env.spec(&helm, ctx).arg("template");
    if !namespace.is_empty() {
        check_argument("namespace", namespace)?;
        spec = spec.arg(format!("--namespace={namespace}"));
    }
    spec = spec.arg(if options.skip_crds {
        "--skip-crds"
    } else {
        "--include-crds"
    });
    for file in &options.value_files {
        if let Some(path) = value_file(file, &chart_dir, ctx, options.ignore_missing_value_files)? {
            let mut arg = OsString::from("--values=");
            arg.push(path);
            spec = spec.arg(arg);
        }
    }
    // Inline values come after the files, so they win (Argo CD's order).
    let inline =
        match &options.values_object {
            Some(object) if !object.is_null() => Some(serde_json::to_string(object).map_err(
                |e| RenderError::BadOption {
                    what: "helm.valuesObject".to_string(),
                    message: e.to_string(),
                },
            )?),
            _ if !options.values.trim().is_empty() => Some(options.values.clone()),
            _ => None,
        };
    if let Some(values) = inline {
        let path = env.scratch().join("inline-values.yaml");
        std::fs::write(&path, values).map_err(RenderError::io("writing inline helm values"))?;
        let mut arg = OsString::from("--values=");
        arg.push(&path);
        spec = spec.arg(arg);
    }
    for p in &options.parameters {
        check_parameter(&p.name, &p.value)?;
        let flag = if p.force_string {
            "--set-string"
        } else {
            "--set"
        };
        spec = spec.arg(format!("{flag}={}={}", p.name, p.value));
    }
    for p in &options.file_parameters {
        check_parameter(&p.name, &p.path)?;
        let path = crate::paths::resolve_inside(
            ctx.repo_root,
            &chart_dir,
            &p.path,
            "helm file parameter",
        )?;
        let mut arg = OsString::from(format!("--set-file={}=", p.name));
        arg.push(path);
        spec = spec.arg(arg);
    }
    let kube_version = if options.kube_version.is_empty() {
        ctx.kube_version.unwrap_or_default()
    } else {
        options.kube_version.as_str()
    };
    if !kube_version.is_empty() {
        check_argument("kubeVersion", kube_version)?;
        spec = spec.arg(format!("--kube-version={kube_version}"));
    }
    let api_versions = if options.api_versions.is_empty() {
        ctx.api_versions
    } else {
        options.api_versions.as_slice()
    };
    for api in api_versions {
        check_argument("apiVersions", api)?;
        spec = spec.arg(format!("--api-versions={api}"));
    }
    if options.pass_credentials {
        spec = spec.arg("--pass-credentials");
    }
    let spec = spec.arg("--").arg(&release).arg(&chart_dir);
    let stdout = run_helm(spec, ctx, rel_path, None).await?;
    let text = String::from_utf8_lossy(&stdout);
    let chart_name = chart_name(&chart_dir);
    let manifests = parse_helm_output(&text, &chart_name, rel_path)?;
    Ok(Rendered {
        manifests,
        approx_bytes: stdout.len(),
        source_type: super::SourceType::Helm,
    })
}

fn check_parameter(name: &str, value: &str) -> Result<(), RenderError> {
    if name.is_empty() || name.starts_with('-') || name.contains(['\0', '\n', '\r', '=']) {
        return Err(RenderError::BadOption {
            what: format!("helm parameter {name:?}"),
            message:
                "names must be non-empty, must not start with '-' or contain '=' or line breaks"
                    .to_string(),
        });
    }
    if value.contains(['\0', '\n', '\r']) {
        return Err(RenderError::BadOption {
            what: format!("helm parameter {name:?}"),
            message: "values must not contain NUL or line breaks".to_string(),
        });
    }
    Ok(())
}

fn chart_name(chart_dir: &Path) -> String {
    std::fs::read_to_string(chart_dir.join("Chart.yaml"))
        .ok()
        .and_then(|t| serde_saphyr::from_str::<Value>(&t).ok())
        .and_then(|v| v["name"].as_str().map(str::to_string))
        .unwrap_or_default()
}

/// Splits `helm template` output, attributing each object to its template: helm writes
/// `# Source: <chart>/templates/x.yaml` above each document; `<chart>` is the chart's
/// directory (`rel_path`) in the repository.
pub fn parse_helm_output(
    text: &str,
    chart: &str,
    rel_path: &str,
) -> Result<Vec<Manifest>, RenderError> {
    let mut manifests = Vec::new();
    for (_, doc) in yaml::split_documents(text) {
        let source = doc
            .lines()
            .find_map(|l| l.strip_prefix("# Source: "))
            .map(str::trim);
        let file = match source {
            Some(src) => {
                let within = src
                    .strip_prefix(chart)
                    .and_then(|s| s.strip_prefix('/'))
                    .unwrap_or(src);
                if rel_path == "." || rel_path.is_empty() {
                    within.to_string()
                } else {
                    format!("{}/{within}", rel_path.trim_end_matches('/'))
                }
            }
            None => rel_path.to_string(),
        };
        let before = manifests.len();
        yaml::parse_stream(doc, &file, &mut manifests)?;
        for m in &mut manifests[before..] {
            m.line = None;
        }
    }
    Ok(manifests)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn objects_are_attributed_to_templates() {
        let out = "---\n# Source: web/templates/svc.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: a\n---\n# Source: web/charts/db/templates/cm.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n";
        let manifests = parse_helm_output(out, "web", "charts/web").expect("parse");
        let files: Vec<_> = manifests.iter().map(|m| m.file.as_str()).collect();
        assert_eq!(
            files,
            [
                "charts/web/templates/svc.yaml",
                "charts/web/charts/db/templates/cm.yaml"
            ]
        );
    }

    #[test]
    fn parameters_cannot_smuggle_flags() {
        assert!(check_parameter("image.tag", "-v1").is_ok());
        assert!(check_parameter("--post-renderer", "x").is_err());
        assert!(check_parameter("a", "b\nc").is_err());
        assert!(check_parameter("a=b", "c").is_err());
        assert!(check_parameter("", "c").is_err());
    }
}
