//! `plumb render`: the manifests a source declares, printed as a YAML stream (the equivalent
//! of `argocd app manifests --source git`). Needs no server: it uses plumb-source directly,
//! with a local cache of mirrors.

use std::collections::BTreeMap;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use plumb_model::application::{
    ApplicationSource, DirectorySource, HelmParameter, HelmSource, JsonnetSource, JsonnetVar,
    KustomizeSource,
};
use plumb_source::creds::{CredentialStore, RepositorySecret, SecretType};
use plumb_source::{RenderRequest, SourceConfig, SourceService, UrlPolicy};
use tokio_util::sync::CancellationToken;

#[derive(Args, Debug)]
pub struct RenderArgs {
    /// Repository URL (https, http, ssh, user@host:path, or file://).
    #[arg(long)]
    repo: String,
    /// Branch, tag, commit SHA, HEAD or a semver constraint over tags (for --chart: the
    /// chart version).
    #[arg(long, default_value = "HEAD")]
    revision: String,
    /// Path inside the repository.
    #[arg(long, default_value = ".")]
    path: String,
    /// A Helm chart name: --repo is then a chart repository or an OCI registry.
    #[arg(long)]
    chart: Option<String>,
    /// Application name (the default Helm release name).
    #[arg(long, default_value = "app")]
    app_name: String,
    /// Destination namespace.
    #[arg(long, default_value = "default")]
    namespace: String,

    /// Helm: `--set name=value` (repeatable).
    #[arg(long = "helm-set", value_name = "NAME=VALUE")]
    helm_set: Vec<String>,
    /// Helm: `--set-string name=value` (repeatable).
    #[arg(long = "helm-set-string", value_name = "NAME=VALUE")]
    helm_set_string: Vec<String>,
    /// Helm: value file, relative to the chart (repeatable).
    #[arg(long = "values", value_name = "FILE")]
    values: Vec<String>,
    /// Helm release name.
    #[arg(long)]
    release_name: Option<String>,
    /// Helm: do not render CRDs.
    #[arg(long)]
    skip_crds: bool,
    /// Helm: Kubernetes version for Capabilities.
    #[arg(long)]
    kube_version: Option<String>,

    /// Kustomize: image override `name=newName:tag` (repeatable).
    #[arg(long = "kustomize-image", value_name = "IMAGE")]
    kustomize_image: Vec<String>,
    #[arg(long)]
    kustomize_name_prefix: Option<String>,
    #[arg(long)]
    kustomize_name_suffix: Option<String>,
    #[arg(long)]
    kustomize_namespace: Option<String>,

    /// Directory: recurse into subdirectories.
    #[arg(long)]
    directory_recurse: bool,
    /// Directory: glob of files to include.
    #[arg(long)]
    directory_include: Option<String>,
    /// Directory: glob of files to exclude.
    #[arg(long)]
    directory_exclude: Option<String>,
    /// Jsonnet: external variable `name=value` (repeatable).
    #[arg(long = "jsonnet-ext-str", value_name = "NAME=VALUE")]
    jsonnet_ext_str: Vec<String>,
    /// Jsonnet: top-level argument `name=value` (repeatable).
    #[arg(long = "jsonnet-tla-str", value_name = "NAME=VALUE")]
    jsonnet_tla_str: Vec<String>,
    /// Jsonnet: library directory, repository-relative (repeatable).
    #[arg(long = "jsonnet-libs", value_name = "DIR")]
    jsonnet_libs: Vec<String>,

    /// Username for the repository (the password comes from $PLUMB_REPO_PASSWORD).
    #[arg(long)]
    username: Option<String>,
    /// SSH private key file for the repository.
    #[arg(long)]
    ssh_private_key_path: Option<PathBuf>,
    /// known_hosts file for ssh repositories.
    #[arg(long)]
    known_hosts: Option<PathBuf>,
    /// Skip TLS verification / host-key checking.
    #[arg(long)]
    insecure: bool,
    /// Cache of mirrors (default: $XDG_CACHE_HOME/plumb/source or ~/.cache/plumb/source).
    #[arg(long, env = "PLUMB_SOURCE_CACHE")]
    cache_dir: Option<PathBuf>,
    /// Prefix each object with `# Source: file[:line]`.
    #[arg(long)]
    show_source: bool,
}

fn pairs(what: &str, items: &[String]) -> anyhow::Result<Vec<(String, String)>> {
    items
        .iter()
        .map(|item| {
            item.split_once('=')
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .with_context(|| format!("{what} {item:?} is not NAME=VALUE"))
        })
        .collect()
}

fn default_cache_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("XDG_CACHE_HOME") {
        return PathBuf::from(dir).join("plumb/source");
    }
    match std::env::var_os("HOME") {
        Some(home) => PathBuf::from(home).join(".cache/plumb/source"),
        None => std::env::temp_dir().join("plumb-source"),
    }
}

/// The Argo CD source these flags describe.
fn build_source(args: &RenderArgs) -> anyhow::Result<ApplicationSource> {
    let mut source = ApplicationSource {
        repo_url: args.repo.clone(),
        target_revision: args.revision.clone(),
        path: if args.chart.is_some() {
            String::new()
        } else {
            args.path.clone()
        },
        chart: args.chart.clone().unwrap_or_default(),
        ..Default::default()
    };
    let mut parameters = Vec::new();
    for (name, value) in pairs("--helm-set", &args.helm_set)? {
        parameters.push(HelmParameter {
            name,
            value,
            force_string: false,
        });
    }
    for (name, value) in pairs("--helm-set-string", &args.helm_set_string)? {
        parameters.push(HelmParameter {
            name,
            value,
            force_string: true,
        });
    }
    if !parameters.is_empty()
        || !args.values.is_empty()
        || args.release_name.is_some()
        || args.skip_crds
        || args.kube_version.is_some()
    {
        source.helm = Some(HelmSource {
            parameters,
            value_files: args.values.clone(),
            release_name: args.release_name.clone().unwrap_or_default(),
            skip_crds: args.skip_crds,
            kube_version: args.kube_version.clone().unwrap_or_default(),
            ..Default::default()
        });
    }
    if !args.kustomize_image.is_empty()
        || args.kustomize_name_prefix.is_some()
        || args.kustomize_name_suffix.is_some()
        || args.kustomize_namespace.is_some()
    {
        source.kustomize = Some(KustomizeSource {
            images: args.kustomize_image.clone(),
            name_prefix: args.kustomize_name_prefix.clone().unwrap_or_default(),
            name_suffix: args.kustomize_name_suffix.clone().unwrap_or_default(),
            namespace: args.kustomize_namespace.clone().unwrap_or_default(),
            ..Default::default()
        });
    }
    let jsonnet_set = !args.jsonnet_ext_str.is_empty()
        || !args.jsonnet_tla_str.is_empty()
        || !args.jsonnet_libs.is_empty();
    if args.directory_recurse
        || args.directory_include.is_some()
        || args.directory_exclude.is_some()
        || jsonnet_set
    {
        let var = |(name, value): (String, String)| JsonnetVar {
            name,
            value,
            code: false,
        };
        source.directory = Some(DirectorySource {
            recurse: args.directory_recurse,
            include: args.directory_include.clone().unwrap_or_default(),
            exclude: args.directory_exclude.clone().unwrap_or_default(),
            jsonnet: jsonnet_set
                .then(|| -> anyhow::Result<JsonnetSource> {
                    Ok(JsonnetSource {
                        ext_vars: pairs("--jsonnet-ext-str", &args.jsonnet_ext_str)?
                            .into_iter()
                            .map(var)
                            .collect(),
                        tlas: pairs("--jsonnet-tla-str", &args.jsonnet_tla_str)?
                            .into_iter()
                            .map(var)
                            .collect(),
                        libs: args.jsonnet_libs.clone(),
                    })
                })
                .transpose()?,
            disable_extension_filter: false,
        });
    }
    let explicit = [
        source.helm.is_some(),
        source.kustomize.is_some(),
        source.directory.is_some(),
    ];
    if explicit.iter().filter(|set| **set).count() > 1 {
        bail!("helm, kustomize and directory options cannot be combined in one source");
    }
    Ok(source)
}

fn credentials(args: &RenderArgs) -> anyhow::Result<CredentialStore> {
    let mut data = BTreeMap::new();
    data.insert("url".to_string(), args.repo.clone());
    if let Some(user) = &args.username {
        data.insert("username".to_string(), user.clone());
    }
    if let Ok(password) = std::env::var("PLUMB_REPO_PASSWORD") {
        data.insert("password".to_string(), password);
    }
    if let Some(path) = &args.ssh_private_key_path {
        let key = std::fs::read_to_string(path)
            .with_context(|| format!("reading the ssh key {}", path.display()))?;
        data.insert("sshPrivateKey".to_string(), key);
    }
    if args.insecure {
        data.insert("insecure".to_string(), "true".to_string());
    }
    if args.chart.is_some() {
        data.insert("type".to_string(), "helm".to_string());
        if args.repo.starts_with("oci://") && args.insecure {
            data.insert("insecureOCIForceHttp".to_string(), "true".to_string());
        }
    }
    let mut store = CredentialStore::new();
    if data.len() > 1 {
        let secret =
            RepositorySecret::from_secret_data("command line", SecretType::Repository, &data)?;
        store.insert(secret)?;
    }
    Ok(store)
}

pub fn run(args: RenderArgs) -> anyhow::Result<()> {
    let (yaml, summary) = render(args)?;
    print!("{yaml}");
    eprintln!("{summary}");
    Ok(())
}

/// The YAML stream and a one-line summary.
fn render(args: RenderArgs) -> anyhow::Result<(String, String)> {
    let source = build_source(&args)?;
    let store = credentials(&args)?;
    let cache_dir = args.cache_dir.clone().unwrap_or_else(default_cache_dir);
    let mut config = SourceConfig::new(&cache_dir);
    // The command line is the user's own machine: local repositories are fine here.
    config.git.url_policy = UrlPolicy { allow_file: true };
    if let Some(path) = &args.known_hosts {
        config.git.ssh_known_hosts = Some(
            std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?,
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let service = SourceService::new(config)
            .with_context(|| format!("opening the source cache in {}", cache_dir.display()))?;
        service.set_credentials(store);
        let cancel = CancellationToken::new();
        let on_signal = cancel.clone();
        tokio::spawn(async move {
            if tokio::signal::ctrl_c().await.is_ok() {
                on_signal.cancel();
            }
        });
        let request = RenderRequest {
            app_name: args.app_name.clone(),
            namespace: args.namespace.clone(),
            sources: vec![source],
            kube_version: args.kube_version.clone(),
            ..Default::default()
        };
        let rendered = service.render(&request, &cancel).await?;
        let mut out = String::new();
        for manifest in rendered.manifests.iter() {
            out.push_str("---\n");
            if args.show_source {
                match manifest.line {
                    Some(line) => out.push_str(&format!("# Source: {}:{line}\n", manifest.file)),
                    None => out.push_str(&format!("# Source: {}\n", manifest.file)),
                }
            }
            out.push_str(&serde_saphyr::to_string(&manifest.object).context("writing YAML")?);
        }
        let summary = format!(
            "rendered {} objects at revision {}",
            rendered.manifests.len(),
            rendered.revisions.join(", ")
        );
        Ok((out, summary))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Wrapper {
        #[command(flatten)]
        args: RenderArgs,
    }

    fn parse(extra: &[&str]) -> RenderArgs {
        let mut argv = vec!["plumb", "--repo", "https://git.example/org/app.git"];
        argv.extend_from_slice(extra);
        Wrapper::parse_from(argv).args
    }

    #[test]
    fn flags_become_argo_cd_source_fields() {
        let source = build_source(&parse(&[
            "--path",
            "chart",
            "--helm-set",
            "image.tag=v2",
            "--values",
            "prod.yaml",
        ]))
        .expect("helm");
        let helm = source.helm.expect("helm block");
        assert_eq!(helm.parameters[0].name, "image.tag");
        assert_eq!(helm.parameters[0].value, "v2");
        assert_eq!(helm.value_files, ["prod.yaml"]);

        let source =
            build_source(&parse(&["--kustomize-image", "app=reg/app:1"])).expect("kustomize");
        assert_eq!(source.kustomize.expect("block").images, ["app=reg/app:1"]);

        let source = build_source(&parse(&["--directory-recurse", "--jsonnet-tla-str", "a=b"]))
            .expect("dir");
        let directory = source.directory.expect("block");
        assert!(directory.recurse);
        assert_eq!(directory.jsonnet.expect("jsonnet").tlas[0].value, "b");

        assert!(build_source(&parse(&["--helm-set", "novalue"])).is_err());
        assert!(build_source(&parse(&["--helm-set", "a=b", "--directory-recurse"])).is_err());
    }

    fn git(dir: &std::path::Path, args: &[&str]) {
        let status = std::process::Command::new("git")
            .args(args)
            .current_dir(dir)
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
            .env("GIT_AUTHOR_NAME", "t")
            .env("GIT_AUTHOR_EMAIL", "t@example.com")
            .env("GIT_COMMITTER_NAME", "t")
            .env("GIT_COMMITTER_EMAIL", "t@example.com")
            .status()
            .expect("git");
        assert!(status.success(), "git {args:?}");
    }

    /// The whole command against a real repository (file://), as a user runs it.
    #[test]
    fn renders_a_repository_path_as_yaml() {
        let dir = tempfile::tempdir().expect("tmp");
        let repo = dir.path().join("repo");
        std::fs::create_dir_all(repo.join("app/sub")).expect("mkdir");
        std::fs::write(
            repo.join("app/cm.yaml"),
            "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: top\n",
        )
        .expect("write");
        std::fs::write(
            repo.join("app/sub/deep.yaml"),
            "apiVersion: v1\nkind: Secret\nmetadata:\n  name: deep\n",
        )
        .expect("write");
        git(&repo, &["init", "-q", "-b", "main"]);
        git(&repo, &["add", "-A"]);
        git(&repo, &["commit", "-q", "-m", "c"]);
        let url = format!("file://{}", repo.display());
        let cache = dir.path().join("cache");
        let args = |extra: &[&str]| {
            let mut argv = vec![
                "plumb",
                "--repo",
                url.as_str(),
                "--cache-dir",
                cache.to_str().expect("utf8"),
            ];
            argv.extend_from_slice(extra);
            Wrapper::parse_from(argv).args
        };
        let (yaml, summary) = render(args(&[
            "--revision",
            "main",
            "--path",
            "app",
            "--show-source",
        ]))
        .expect("render");
        assert_eq!(
            yaml,
            "---\n# Source: app/cm.yaml:1\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: top\n"
        );
        assert!(
            summary.starts_with("rendered 1 objects at revision "),
            "{summary}"
        );
        let (yaml, _) = render(args(&[
            "--revision",
            "main",
            "--path",
            "app",
            "--directory-recurse",
        ]))
        .expect("recurse");
        assert!(yaml.contains("name: deep"), "{yaml}");
        let err = render(args(&["--revision", "nope", "--path", "app"])).expect_err("bad revision");
        assert!(
            format!("{err:#}").contains("revision 'nope' not found"),
            "{err:#}"
        );
        let err = render(args(&["--revision", "main", "--path", "../.."])).expect_err("escape");
        assert!(
            format!("{err:#}").contains("leaves the repository"),
            "{err:#}"
        );
    }
}
