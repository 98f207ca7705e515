//! An Application's desired state: its sources resolved and rendered.
//!
//! Revisions are resolved here, not inside each render, so that a pass over many
//! Applications costs one `ls-remote` per repository and revision: the answer (or the
//! failure) is remembered for `revision_ttl`, and a refresh that must see Git now (a hard
//! refresh, the refresh annotation, a webhook) bypasses it.

use crate::AppError;
use crate::spec;
use plumb_model::{Application, ApplicationSource};
use plumb_source::{RenderRequest, SourceConfig, SourceService};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// What the Application declares, rendered.
#[derive(Debug, Clone, Default)]
pub struct Desired {
    pub objects: Vec<Value>,
    /// One resolved revision (commit SHA or chart version) per source, in order.
    pub revisions: Vec<String>,
    /// Argo CD's source type names, one per rendered source.
    pub source_types: Vec<String>,
    /// The sources rendered, with their target revisions as the spec (or the operation)
    /// gave them — what history records.
    pub sources: Vec<ApplicationSource>,
    pub cache_hit: bool,
}

impl Desired {
    /// The revision of a single-source app (the first source's).
    pub fn revision(&self) -> &str {
        self.revisions.first().map(String::as_str).unwrap_or("")
    }
}

/// What a render may do differently from the spec.
#[derive(Debug, Clone, Default)]
pub struct RenderOverrides {
    /// Render these sources instead of the spec's (a rollback to a history entry).
    pub sources: Vec<ApplicationSource>,
    /// Revision per source instead of `targetRevision` (a sync to a given revision).
    pub revisions: Vec<String>,
    /// Resolve revisions now and render afresh, bypassing both caches.
    pub hard_refresh: bool,
    /// Resolve revisions now (the render may still come from the cache).
    pub fresh_revisions: bool,
    /// The AppProject's signature keys: commits must carry a good signature by one.
    pub signature_keys: Vec<String>,
}

#[derive(Clone)]
struct Remembered {
    at: Instant,
    outcome: Result<String, String>,
}

/// One resolve in progress: its outcome (a commit SHA or the error) once known.
type Flight = tokio::sync::OnceCell<Result<String, String>>;

/// The source service plus the memo of resolved revisions.
pub struct AppSources {
    service: SourceService,
    revisions: Mutex<HashMap<(String, String), Remembered>>,
    revision_ttl: Duration,
    /// Bumped when the credentials change: an answer obtained under older credentials is
    /// not remembered (it may finish after the memo was cleared).
    credentials_generation: std::sync::atomic::AtomicU64,
    /// Resolves running now, shared by whoever asks the same meanwhile.
    in_flight: Mutex<HashMap<(String, String), Arc<Flight>>>,
    /// ls-remotes made, per repository (for `argocd_git_request_*`).
    git_requests: Mutex<HashMap<String, GitRequestStats>>,
}

/// ls-remote requests made for one repository.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct GitRequestStats {
    pub ok: u64,
    pub failed: u64,
    pub seconds: f64,
}

/// Bound of the revision memo: beyond it the oldest answers are dropped.
const MAX_REMEMBERED_REVISIONS: usize = 10_000;

impl AppSources {
    pub fn new(config: SourceConfig, revision_ttl: Duration) -> Result<Self, AppError> {
        Ok(Self::with_service(
            SourceService::new(config)?,
            revision_ttl,
        ))
    }

    pub fn with_service(service: SourceService, revision_ttl: Duration) -> Self {
        Self {
            service,
            revisions: Mutex::new(HashMap::new()),
            revision_ttl,
            credentials_generation: std::sync::atomic::AtomicU64::new(0),
            in_flight: Mutex::new(HashMap::new()),
            git_requests: Mutex::new(HashMap::new()),
        }
    }

    pub fn service(&self) -> &SourceService {
        &self.service
    }

    /// Puts new repository credentials in force. Remembered revisions are forgotten: an
    /// answer (or a refusal) given under the old credentials says nothing about the new.
    pub fn set_credentials(&self, store: plumb_source::CredentialStore) {
        self.service.set_credentials(store);
        self.credentials_generation
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.revisions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
    }

    /// ls-remotes made so far, by repository URL (one entry per repository ever resolved).
    pub fn git_requests(&self) -> Vec<(String, GitRequestStats)> {
        let stats = self.git_requests.lock().unwrap_or_else(|e| e.into_inner());
        let mut list: Vec<_> = stats.iter().map(|(k, v)| (k.clone(), *v)).collect();
        list.sort_by(|a, b| a.0.cmp(&b.0));
        list
    }

    /// One ls-remote for everyone asking about the same repository and revision at the
    /// same time: a pass that queues many apps of one repository at once shares one answer,
    /// a failure included (one failing request per pass, not one per app).
    async fn ask_git_once(
        &self,
        source: &ApplicationSource,
        key: (String, String),
        cancel: &CancellationToken,
    ) -> Result<String, String> {
        let flight = {
            let mut flights = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        let outcome = flight
            .get_or_init(|| self.ask_git(source, key.clone(), cancel))
            .await
            .clone();
        let mut flights = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
            flights.remove(&key);
        }
        outcome
    }

    /// Asks Git (one ls-remote), counts the request and remembers the answer.
    async fn ask_git(
        &self,
        source: &ApplicationSource,
        key: (String, String),
        cancel: &CancellationToken,
    ) -> Result<String, String> {
        let generation = self
            .credentials_generation
            .load(std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let outcome = self
            .service
            .resolve(source, cancel)
            .await
            .map(|resolved| resolved.sha)
            .map_err(|error| error.to_string());
        if !plumb_source::git::revision::is_full_sha(source.target_revision.trim()) {
            let mut stats = self.git_requests.lock().unwrap_or_else(|e| e.into_inner());
            let entry = stats.entry(source.repo_url.clone()).or_default();
            if outcome.is_ok() {
                entry.ok += 1;
            } else {
                entry.failed += 1;
            }
            entry.seconds += started.elapsed().as_secs_f64();
        }
        let mut memo = self.revisions.lock().unwrap_or_else(|e| e.into_inner());
        let current = self
            .credentials_generation
            .load(std::sync::atomic::Ordering::SeqCst);
        if current == generation {
            if memo.len() >= MAX_REMEMBERED_REVISIONS {
                let ttl = self.revision_ttl;
                memo.retain(|_, r| r.at.elapsed() < ttl);
                if memo.len() >= MAX_REMEMBERED_REVISIONS {
                    memo.clear();
                }
            }
            memo.insert(
                key,
                Remembered {
                    at: Instant::now(),
                    outcome: outcome.clone(),
                },
            );
        }
        outcome
    }

    /// Resolves every Git source's revision to a commit (chart versions pass through).
    async fn resolve(
        &self,
        sources: &mut [ApplicationSource],
        fresh: bool,
        cancel: &CancellationToken,
    ) -> Result<bool, AppError> {
        let mut remembered_any = false;
        for (index, source) in sources.iter_mut().enumerate() {
            if !source.chart.is_empty() {
                continue;
            }
            let key = (source.repo_url.clone(), source.target_revision.clone());
            let remembered = if fresh {
                None
            } else {
                self.revisions
                    .lock()
                    .unwrap_or_else(|e| e.into_inner())
                    .get(&key)
                    .filter(|r| r.at.elapsed() < self.revision_ttl)
                    .cloned()
            };
            let outcome = match remembered {
                Some(remembered) => {
                    remembered_any = true;
                    remembered.outcome
                }
                None => self.ask_git_once(source, key, cancel).await,
            };
            match outcome {
                Ok(sha) => source.target_revision = sha,
                Err(message) => {
                    return Err(AppError::Revision {
                        index,
                        repo: source.repo_url.clone(),
                        message,
                    });
                }
            }
        }
        Ok(remembered_any)
    }

    /// Renders the app's sources (or the overrides') at their resolved revisions.
    pub async fn render(
        &self,
        app: &Application,
        overrides: &RenderOverrides,
        cancel: &CancellationToken,
    ) -> Result<Desired, AppError> {
        let sources = spec::sources_for(app, &overrides.sources, &overrides.revisions);
        if sources.is_empty() {
            return Err(AppError::InvalidSpec(
                "spec.source or spec.sources is required".to_string(),
            ));
        }
        let fresh = overrides.hard_refresh || overrides.fresh_revisions;
        let mut resolved = sources.clone();
        let remembered = self.resolve(&mut resolved, fresh, cancel).await?;
        let mut request = RenderRequest {
            app_name: app_name(app).to_string(),
            namespace: app.spec.destination.namespace.clone(),
            sources: resolved,
            hard_refresh: overrides.hard_refresh,
            signature_keys: overrides.signature_keys.clone(),
            ..Default::default()
        };
        let rendered = match self.service.render(&request, cancel).await {
            Ok(rendered) => rendered,
            // A remembered revision may predate the commit the app was written for (an app
            // created right after the commit that adds its path): ask Git again, and render
            // once more when the answer moved.
            Err(error) if remembered => {
                let mut again = sources.clone();
                self.resolve(&mut again, true, cancel).await?;
                if again == request.sources {
                    return Err(error.into());
                }
                request.sources = again;
                self.service.render(&request, cancel).await?
            }
            Err(error) => return Err(error.into()),
        };
        Ok(Desired {
            objects: rendered
                .manifests
                .iter()
                .map(|m| m.object.clone())
                .collect(),
            revisions: rendered.revisions,
            source_types: rendered
                .source_types
                .iter()
                .map(|t| t.as_str().to_string())
                .collect(),
            sources,
            cache_hit: rendered.cache_hit,
        })
    }
}

/// The Application's name (Helm's default release name, the tracking id's app part).
pub fn app_name(app: &Application) -> &str {
    app.metadata.name.as_deref().unwrap_or("")
}

/// Renders the app's (single) source from a local directory instead of its repository
/// (`plumb diff --local`): no Git, no cache; the revision is `local`.
pub async fn render_local(
    app: &Application,
    dir: &Path,
    cancel: &CancellationToken,
) -> Result<Desired, AppError> {
    if !dir.is_dir() {
        return Err(AppError::InvalidSpec(format!(
            "--local {}: not a directory",
            dir.display()
        )));
    }
    let mut source = app
        .spec
        .effective_sources()
        .first()
        .map(|s| (*s).clone())
        .unwrap_or_default();
    source.path = ".".to_string();
    let scratch = tempfile::tempdir()
        .map_err(|e| AppError::Setup(format!("creating a scratch directory: {e}")))?;
    let options = plumb_source::RenderOptions::new(scratch.path());
    let tools = plumb_source::Tools::discover(&[], scratch.path().join("helm"));
    let refs = HashMap::new();
    let credentials = plumb_source::CredentialStore::new();
    let context = plumb_source::render::RenderContext {
        repo_root: dir,
        app_name: app_name(app),
        namespace: &app.spec.destination.namespace,
        kube_version: None,
        api_versions: &[],
        refs: &refs,
        credentials: &credentials,
        options: &options,
        tools: &tools,
        cancel,
    };
    let rendered = plumb_source::render::render_source(&source, &context)
        .await
        .map_err(|source| AppError::Local {
            dir: dir.display().to_string(),
            source: Box::new(source),
        })?;
    Ok(Desired {
        objects: rendered.manifests.into_iter().map(|m| m.object).collect(),
        revisions: vec!["local".to_string()],
        source_types: vec![rendered.source_type.as_str().to_string()],
        sources: vec![source],
        cache_hit: false,
    })
}
