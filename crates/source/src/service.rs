//! The source service: what the controller and `plumb render` call. Resolves each source's
//! revision, looks the render up in the cache, and on a miss checks the commits out and
//! renders every source of the application (`spec.source` or `spec.sources`, with `ref`
//! sources providing `$ref/...` value files).

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

use plumb_model::application::ApplicationSource;
use tokio_util::sync::CancellationToken;

use crate::cache::{CacheStats, CachedRender, RenderCache, RenderKey};
use crate::command::check_argument;
use crate::creds::CredentialStore;
use crate::git::{GitCache, GitConfig, GitError, ResolvedRevision};
use crate::render::{self, Manifest, RenderContext, RenderError, RenderOptions, SourceType, Tools};
use crate::url::RepoUrl;

/// Settings of a [`SourceService`].
#[derive(Debug, Clone)]
pub struct SourceConfig {
    pub git: GitConfig,
    pub render: RenderOptions,
    /// Directories searched for helm/kustomize/kubectl after `$PLUMB_HELM`/`$PLUMB_KUSTOMIZE`
    /// and before `PATH` and the tools caches ([`crate::render::discover`]).
    pub tool_dirs: Vec<PathBuf>,
    pub render_cache_entries: usize,
    pub render_cache_bytes: usize,
}

impl SourceConfig {
    /// Defaults under one cache directory (mirrors, checkouts, scratch, helm home).
    pub fn new(cache_dir: impl Into<PathBuf>) -> SourceConfig {
        let cache_dir = cache_dir.into();
        SourceConfig {
            git: GitConfig::new(&cache_dir),
            render: RenderOptions::new(cache_dir.join("scratch")),
            tool_dirs: Vec::new(),
            render_cache_entries: 4096,
            render_cache_bytes: 512 * 1024 * 1024,
        }
    }
}

/// One application's sources to render.
#[derive(Debug, Clone, Default)]
pub struct RenderRequest {
    /// Default Helm release name, as in Argo CD.
    pub app_name: String,
    /// The destination namespace (Helm's `--namespace` unless the source sets one).
    pub namespace: String,
    pub sources: Vec<ApplicationSource>,
    pub kube_version: Option<String>,
    pub api_versions: Vec<String>,
    /// Bypass the render cache (Argo CD's hard refresh); the result is cached afresh.
    pub hard_refresh: bool,
    /// Key IDs (or fingerprints) of which every Git source's commit must carry a good
    /// signature (the AppProject's `signatureKeys`); empty: no check. A revision failing it
    /// is refused before anything is checked out, rendered or served from the cache.
    pub signature_keys: Vec<String>,
}

/// A rendered application.
#[derive(Debug, Clone)]
pub struct RenderedSource {
    /// The resolved revision of each source (commit SHA, or chart version), in order.
    pub revisions: Vec<String>,
    pub manifests: Arc<Vec<Manifest>>,
    /// How each rendered source was rendered (ref-only sources of a multi-source app are
    /// not rendered and have no entry).
    pub source_types: Vec<SourceType>,
    pub cache_hit: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    #[error("the application has no source")]
    NoSources,
    #[error("source {index} ({repo}): {source}")]
    Git {
        index: usize,
        repo: String,
        #[source]
        source: GitError,
    },
    #[error("source {index} ({repo}, path {path:?}): {source}")]
    Render {
        index: usize,
        repo: String,
        path: String,
        #[source]
        source: Box<RenderError>,
    },
    #[error("setting up the source service: {0}")]
    Setup(String),
}

enum Resolved {
    Git {
        url: RepoUrl,
        revision: ResolvedRevision,
    },
    Chart {
        version: String,
    },
}

pub struct SourceService {
    git: GitCache,
    renders: RenderCache,
    tools: Tools,
    options: RenderOptions,
    credentials: RwLock<Arc<CredentialStore>>,
}

/// Wraps a Git failure of the `index`th source with where it happened.
fn git_error(
    index: usize,
    source: &ApplicationSource,
) -> impl Fn(GitError) -> SourceError + Copy + '_ {
    move |source_err| SourceError::Git {
        index,
        repo: source.repo_url.clone(),
        source: source_err,
    }
}

impl SourceService {
    pub fn new(config: SourceConfig) -> Result<SourceService, SourceError> {
        let tools = Tools::discover(&config.tool_dirs, config.git.cache_dir.join("helm"));
        Self::with_tools(config, tools)
    }

    pub fn with_tools(config: SourceConfig, tools: Tools) -> Result<SourceService, SourceError> {
        std::fs::create_dir_all(&config.render.scratch_dir).map_err(|e| {
            SourceError::Setup(format!("{}: {e}", config.render.scratch_dir.display()))
        })?;
        std::fs::create_dir_all(&tools.helm_home)
            .map_err(|e| SourceError::Setup(format!("{}: {e}", tools.helm_home.display())))?;
        let git = GitCache::open(config.git).map_err(|e| SourceError::Setup(e.to_string()))?;
        Ok(SourceService {
            git,
            renders: RenderCache::new(config.render_cache_entries, config.render_cache_bytes),
            tools,
            options: config.render,
            credentials: RwLock::new(Arc::new(CredentialStore::new())),
        })
    }

    /// Replaces the repository credentials (rebuilt by the caller from the Secrets).
    pub fn set_credentials(&self, store: CredentialStore) {
        let mut slot = self.credentials.write().unwrap_or_else(|e| e.into_inner());
        *slot = Arc::new(store);
    }

    fn credentials(&self) -> Arc<CredentialStore> {
        self.credentials
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    pub fn git(&self) -> &GitCache {
        &self.git
    }

    pub fn tools(&self) -> &Tools {
        &self.tools
    }

    pub fn cache_stats(&self) -> CacheStats {
        self.renders.stats()
    }

    /// Resolves one Git source's revision (one ls-remote; none for a full SHA).
    pub async fn resolve(
        &self,
        source: &ApplicationSource,
        cancel: &CancellationToken,
    ) -> Result<ResolvedRevision, GitError> {
        let url = self.git.parse_url(&source.repo_url)?;
        let store = self.credentials();
        self.git
            .resolve(&url, &source.target_revision, store.lookup(&url), cancel)
            .await
    }

    /// Renders an application's sources, from the cache when nothing changed.
    pub async fn render(
        &self,
        request: &RenderRequest,
        cancel: &CancellationToken,
    ) -> Result<RenderedSource, SourceError> {
        if request.sources.is_empty() {
            return Err(SourceError::NoSources);
        }
        let store = self.credentials();
        let mut resolved: Vec<Resolved> = Vec::with_capacity(request.sources.len());
        let mut seen: HashMap<(String, String), ResolvedRevision> = HashMap::new();
        for (index, source) in request.sources.iter().enumerate() {
            let git_err = git_error(index, source);
            if !source.chart.is_empty() {
                check_argument("targetRevision", &source.target_revision)
                    .map_err(|e| git_err(e.into()))?;
                resolved.push(Resolved::Chart {
                    version: source.target_revision.clone(),
                });
                continue;
            }
            if !source.path.is_empty() {
                crate::paths::check_relative(&source.path).map_err(|e| SourceError::Render {
                    index,
                    repo: source.repo_url.clone(),
                    path: source.path.clone(),
                    source: Box::new(e.into()),
                })?;
            }
            let url = self.git.parse_url(&source.repo_url).map_err(git_err)?;
            let key = (url.normalized().to_string(), source.target_revision.clone());
            let revision = match seen.get(&key) {
                Some(r) => r.clone(),
                None => {
                    let r = self
                        .git
                        .resolve(&url, &source.target_revision, store.lookup(&url), cancel)
                        .await
                        .map_err(git_err)?;
                    seen.insert(key, r.clone());
                    r
                }
            };
            resolved.push(Resolved::Git { url, revision });
        }

        if !request.signature_keys.is_empty() {
            for (index, (source, r)) in request.sources.iter().zip(&resolved).enumerate() {
                if let Resolved::Git { url, revision } = r {
                    self.git
                        .require_signature(
                            url,
                            revision,
                            &request.signature_keys,
                            store.lookup(url),
                            cancel,
                        )
                        .await
                        .map_err(git_error(index, source))?;
                }
            }
        }

        let tool_versions = self.tools.versions().await;
        let cacheable = resolved.iter().all(|r| match r {
            Resolved::Git { .. } => true,
            // A chart version constraint may pick a newer chart tomorrow: not cacheable.
            Resolved::Chart { version } => {
                semver::Version::parse(version.trim_start_matches('v')).is_ok()
            }
        });
        let key = self.key(request, &resolved, &tool_versions);
        let revisions: Vec<String> = resolved
            .iter()
            .map(|r| match r {
                Resolved::Git { revision, .. } => revision.sha.clone(),
                Resolved::Chart { version } => version.clone(),
            })
            .collect();
        if cacheable
            && !request.hard_refresh
            && let Some(cached) = self.renders.get(&key)
        {
            return Ok(RenderedSource {
                revisions,
                manifests: cached.manifests,
                source_types: cached.source_types,
                cache_hit: true,
            });
        }

        // Check out every Git source (ref sources included) once per commit.
        let mut checkouts = Vec::with_capacity(resolved.len());
        let mut refs: HashMap<String, PathBuf> = HashMap::new();
        for (index, (source, r)) in request.sources.iter().zip(&resolved).enumerate() {
            match r {
                Resolved::Git { url, revision } => {
                    // A ref source is read wherever its `$ref/...` paths point: every file.
                    let path = if source.reference.is_empty() {
                        source.path.as_str()
                    } else {
                        ""
                    };
                    let checkout = self
                        .git
                        .checkout_path(url, &revision.sha, path, &store, cancel)
                        .await
                        .map_err(git_error(index, source))?;
                    if !checkout.escaping_symlinks.is_empty() {
                        return Err(SourceError::Render {
                            index,
                            repo: source.repo_url.clone(),
                            path: source.path.clone(),
                            source: Box::new(RenderError::EscapingSymlinks {
                                paths: checkout.escaping_symlinks.clone(),
                            }),
                        });
                    }
                    if !source.reference.is_empty() {
                        refs.insert(source.reference.clone(), checkout.root().to_path_buf());
                    }
                    checkouts.push(Some(checkout));
                }
                Resolved::Chart { .. } => checkouts.push(None),
            }
        }

        let mut manifests = Vec::new();
        let mut source_types = Vec::new();
        let mut approx_bytes = 0;
        for (index, source) in request.sources.iter().enumerate() {
            let ref_only =
                !source.reference.is_empty() && source.path.is_empty() && source.chart.is_empty();
            if ref_only && request.sources.len() > 1 {
                continue;
            }
            let render_err = |e: RenderError| SourceError::Render {
                index,
                repo: source.repo_url.clone(),
                path: if source.chart.is_empty() {
                    source.path.clone()
                } else {
                    source.chart.clone()
                },
                source: Box::new(e),
            };
            let pulled;
            let (root, effective) = match &checkouts[index] {
                Some(checkout) => (checkout.root().to_path_buf(), source.clone()),
                None => {
                    pulled = tempfile::Builder::new()
                        .prefix("chart-")
                        .tempdir_in(&self.options.scratch_dir)
                        .map_err(|e| {
                            render_err(RenderError::io("creating a chart directory")(e))
                        })?;
                    let ctx = self.context(request, pulled.path(), &refs, &store, cancel);
                    let dir = render::helm::pull_chart(
                        &source.repo_url,
                        &source.chart,
                        &source.target_revision,
                        &ctx,
                        pulled.path(),
                    )
                    .await
                    .map_err(render_err)?;
                    let mut effective = source.clone();
                    effective.path = render::relative(pulled.path(), &dir);
                    if effective.helm.is_none() {
                        effective.helm = Some(Default::default());
                    }
                    (pulled.path().to_path_buf(), effective)
                }
            };
            let ctx = self.context(request, &root, &refs, &store, cancel);
            let rendered = render::render_source(&effective, &ctx)
                .await
                .map_err(render_err)?;
            approx_bytes += rendered.approx_bytes;
            manifests.extend(rendered.manifests);
            source_types.push(rendered.source_type);
        }
        let manifests = Arc::new(manifests);
        if cacheable {
            let cached = CachedRender {
                manifests: manifests.clone(),
                source_types: source_types.clone(),
            };
            self.renders.insert(key, cached, approx_bytes);
        }
        Ok(RenderedSource {
            revisions,
            manifests,
            source_types,
            cache_hit: false,
        })
    }

    fn context<'a>(
        &'a self,
        request: &'a RenderRequest,
        root: &'a std::path::Path,
        refs: &'a HashMap<String, PathBuf>,
        store: &'a CredentialStore,
        cancel: &'a CancellationToken,
    ) -> RenderContext<'a> {
        RenderContext {
            repo_root: root,
            app_name: &request.app_name,
            namespace: &request.namespace,
            kube_version: request.kube_version.as_deref(),
            api_versions: &request.api_versions,
            refs,
            credentials: store,
            options: &self.options,
            tools: &self.tools,
            cancel,
        }
    }

    fn key(
        &self,
        request: &RenderRequest,
        resolved: &[Resolved],
        tool_versions: &str,
    ) -> RenderKey {
        let mut owned: Vec<(String, String)> = vec![
            ("tools".into(), tool_versions.to_string()),
            ("app".into(), request.app_name.clone()),
            ("namespace".into(), request.namespace.clone()),
            (
                "kubeVersion".into(),
                request.kube_version.clone().unwrap_or_default(),
            ),
            ("apiVersions".into(), request.api_versions.join(",")),
            (
                "kustomizeBuildOptions".into(),
                self.options.kustomize_build_options.join("\0"),
            ),
            (
                "maxDirectoryBytes".into(),
                self.options.max_directory_bytes.to_string(),
            ),
        ];
        for (source, r) in request.sources.iter().zip(resolved) {
            let mut options = source.clone();
            // The commit, not the name that led to it, is what the render depends on.
            options.target_revision.clear();
            options.repo_url.clear();
            let (repo, revision) = match r {
                Resolved::Git { url, revision } => {
                    (url.normalized().to_string(), revision.sha.clone())
                }
                Resolved::Chart { version } => (source.repo_url.clone(), version.clone()),
            };
            owned.push(("repo".into(), repo));
            owned.push(("revision".into(), revision));
            owned.push((
                "options".into(),
                serde_json::to_string(&options).unwrap_or_default(),
            ));
        }
        RenderKey::from_parts(owned.iter().map(|(k, v)| (k.as_str(), v.as_str())))
    }
}
