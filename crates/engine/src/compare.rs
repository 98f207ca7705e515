//! Compare: an app's desired objects against the cluster. Validates and prepares them, reads
//! the live state, dry-runs through the server what the compare cache cannot answer, then
//! compares ([`diff::compare_app`]). Read-only; `plumb diff`, an app's status and each sync
//! attempt use it.

use crate::cluster::{ApplyMode, Cluster, ClusterError, crd_scopes};
use crate::diff::ignore::IgnoreRules;
use crate::diff::{self, AppComparison, CompareSettings, Scope};
use crate::settings::Settings;
use crate::sync::SyncOptions;
use futures::StreamExt;
use plumb_model::{ResourceIgnoreDifferences, ResourceKey};
use serde_json::{Value, json};
use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};

/// Validates, prepares and compares the desired objects (dry-running each through the
/// server); shared by `plumb diff` and each sync attempt.
pub struct Compared {
    pub prepared: diff::PreparedDesired,
    pub live: BTreeMap<ResourceKey, Value>,
    pub comparison: AppComparison,
    /// Objects the server refused in the dry-run, with its message.
    pub dry_run_errors: BTreeMap<ResourceKey, String>,
    /// Objects this compare dry-ran as server-side applies under `fieldValidation=Strict`
    /// and the server accepted: writing the same body again needs no second validation.
    pub strictly_dry_run: HashSet<ResourceKey>,
    pub ignore: IgnoreRules,
}

/// What to compare: an app's desired objects and how to read them.
#[derive(Debug, Clone, Copy)]
pub struct CompareRequest<'a> {
    pub app: &'a str,
    pub destination_namespace: &'a str,
    pub desired: &'a [Value],
    pub settings: &'a Settings,
    /// The Application's own `ignoreDifferences`.
    pub app_ignore: &'a [ResourceIgnoreDifferences],
    pub options: &'a SyncOptions,
    /// Concurrent dry-run requests.
    pub concurrency: usize,
    /// Where the live state is read from instead of listing the cluster, when it can say.
    pub live_reader: Option<&'a dyn LiveReader>,
}

/// Live state held outside the cluster (a controller's watch cache), read instead of the
/// discovery and the cluster-wide lists a compare otherwise makes: with many apps on one
/// cluster, those lists cost each app time in proportion to all apps' objects.
pub trait LiveReader: Send + Sync + std::fmt::Debug {
    /// The live objects at `desired`'s keys and every object tracked by `app`, or `None`
    /// when the reader does not hold every kind involved (the compare then lists the
    /// cluster). Objects the reader knows exist but does not hold go into
    /// [`CachedLive::unread`] and are read from the cluster one by one.
    fn read(&self, app: &str, desired: &BTreeMap<ResourceKey, Value>) -> Option<CachedLive>;
}

/// What a [`LiveReader`] holds of an app's live state.
#[derive(Debug, Default)]
pub struct CachedLive {
    pub objects: BTreeMap<ResourceKey, Value>,
    /// Identifying stubs (`apiVersion`, `kind`, `metadata.name`/`namespace`) of live
    /// objects to read whole.
    pub unread: Vec<Value>,
}

/// Why desired objects are dry-run, which decides what a dry-run "not found" means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum DryRunPurpose {
    /// A read-only compare (app status, `plumb diff`): an object whose namespace does not
    /// exist yet is simply missing, as Argo CD shows it (OutOfSync, would be created).
    Compare,
    /// The dry-run step of a sync operation: an object that cannot be written fails the
    /// operation before anything is written.
    Sync,
}

/// Compares an app against the cluster (read-only: objects whose namespace does not exist
/// yet compare structurally, as new objects).
pub async fn compare(
    cluster: &Cluster,
    request: CompareRequest<'_>,
) -> Result<Compared, CompareFailure> {
    compare_for(cluster, request, DryRunPurpose::Compare).await
}

/// [`compare`], for a read-only compare or for the dry-run step of a sync.
pub(crate) async fn compare_for(
    cluster: &Cluster,
    request: CompareRequest<'_>,
    purpose: DryRunPurpose,
) -> Result<Compared, CompareFailure> {
    let CompareRequest {
        app,
        destination_namespace,
        desired,
        settings,
        app_ignore,
        options,
        concurrency,
        live_reader,
    } = request;
    // Without a reader, one discovery answers both the kinds' scopes (resolved from what it
    // found, with no request of their own) and which kinds to list.
    let discovery = match live_reader {
        None => Some(
            cluster
                .discover_all()
                .await
                .map_err(CompareFailure::Cluster)?,
        ),
        Some(_) => None,
    };
    let scopes = cluster
        .scopes(desired)
        .await
        .map_err(CompareFailure::Cluster)?;
    let scope = |group: &str, kind: &str| {
        scopes
            .get(&(group.to_string(), kind.to_string()))
            .copied()
            .unwrap_or(Scope::Unknown)
    };
    let prepared = diff::prepare_desired(
        desired.to_vec(),
        app,
        destination_namespace,
        settings.tracking_method,
        &scope,
    );
    let ignore = IgnoreRules::new(
        settings
            .ignore_differences
            .iter()
            .cloned()
            .chain(app_ignore.iter().cloned()),
    )
    .map_err(|e| CompareFailure::Invalid(e.to_string()))?;
    if let Some(cached) = live_reader.and_then(|reader| reader.read(app, &prepared.objects)) {
        let mut live = cached.objects;
        live.extend(
            cluster
                .read_each(cached.unread.iter().collect())
                .await
                .map_err(CompareFailure::Cluster)?,
        );
        let request = LiveCompare {
            app,
            destination_namespace,
            desired,
            prepared: &prepared,
            live: &live,
            ignore: &ignore,
            settings,
            options,
            concurrency,
        };
        let dry_run = compare_live_for(cluster, request, purpose).await?;
        return Ok(Compared {
            prepared,
            live,
            comparison: dry_run.comparison,
            dry_run_errors: dry_run.errors,
            strictly_dry_run: dry_run.strictly_dry_run,
            ignore,
        });
    }
    let discovery = match discovery {
        Some(discovery) => discovery,
        None => cluster
            .discover_all()
            .await
            .map_err(CompareFailure::Cluster)?,
    };
    let namespaces = if destination_namespace.is_empty() {
        Vec::new()
    } else {
        vec![destination_namespace.to_string()]
    };
    // The desired keys' live objects first: the dry-runs need them. The app's objects
    // elsewhere (prune candidates, found through metadata lists) are read meanwhile.
    let plan = cluster.plan_live_state(
        &discovery,
        app,
        settings.tracking_method,
        &prepared.objects,
        &namespaces,
    );
    let declared = cluster
        .declared_live(&plan, &prepared.objects)
        .await
        .map_err(CompareFailure::Cluster)?;
    let on_declared = LiveCompare {
        app,
        destination_namespace,
        desired,
        prepared: &prepared,
        live: &declared,
        ignore: &ignore,
        settings,
        options,
        concurrency,
    };
    let (dry_runs, tracked) = futures::join!(
        dry_run_desired(cluster, on_declared, purpose),
        cluster.tracked_live(&plan, &prepared.objects)
    );
    let dry_runs = dry_runs?;
    let live = crate::cluster::merge_live(declared, tracked.map_err(CompareFailure::Cluster)?);
    // The same request as `on_declared`, on the whole live state.
    let on_everything = LiveCompare {
        app,
        destination_namespace,
        desired,
        prepared: &prepared,
        live: &live,
        ignore: &ignore,
        settings,
        options,
        concurrency,
    };
    let dry_run = finish_compare(cluster, on_everything, dry_runs);
    Ok(Compared {
        prepared,
        live,
        comparison: dry_run.comparison,
        dry_run_errors: dry_run.errors,
        strictly_dry_run: dry_run.strictly_dry_run,
        ignore,
    })
}

/// The inputs of [`compare_live`].
#[derive(Clone, Copy)]
pub struct LiveCompare<'a> {
    pub app: &'a str,
    pub destination_namespace: &'a str,
    /// The rendered objects (CRDs among them tell which kinds this sync creates).
    pub desired: &'a [Value],
    pub prepared: &'a diff::PreparedDesired,
    pub live: &'a BTreeMap<ResourceKey, Value>,
    pub ignore: &'a IgnoreRules,
    pub settings: &'a Settings,
    pub options: &'a SyncOptions,
    pub concurrency: usize,
}

/// Compares prepared desired objects with a given live state: dry-runs what the compare
/// cache cannot answer, then compares. With an unchanged app and live state it sends no
/// request at all. Read-only, like [`compare`].
pub async fn compare_live(
    cluster: &Cluster,
    request: LiveCompare<'_>,
) -> Result<(AppComparison, BTreeMap<ResourceKey, String>), CompareFailure> {
    compare_live_for(cluster, request, DryRunPurpose::Compare)
        .await
        .map(|dry_run| (dry_run.comparison, dry_run.errors))
}

/// What the dry-runs of a compare found.
struct DryRunOutcome {
    comparison: AppComparison,
    /// Objects the server refused, with its message.
    errors: BTreeMap<ResourceKey, String>,
    /// Objects accepted by a server-side-apply dry-run under `fieldValidation=Strict`.
    strictly_dry_run: HashSet<ResourceKey>,
}

async fn compare_live_for(
    cluster: &Cluster,
    request: LiveCompare<'_>,
    purpose: DryRunPurpose,
) -> Result<DryRunOutcome, CompareFailure> {
    let dry_runs = dry_run_desired(cluster, request, purpose).await?;
    Ok(finish_compare(cluster, request, dry_runs))
}

/// The server's answers to the dry-runs of an app's desired objects.
struct DryRuns {
    predicted: HashMap<ResourceKey, Value>,
    errors: BTreeMap<ResourceKey, String>,
    strictly_dry_run: HashSet<ResourceKey>,
}

/// What a compare holds its results to: the app, tracking, ignore rules and apply mode.
fn compare_settings(request: &LiveCompare<'_>) -> CompareSettings {
    CompareSettings {
        app: request.app.to_string(),
        tracking_method: request.settings.tracking_method,
        compare_options: request.settings.compare_options,
        ignore: request.ignore.clone(),
        server_side_apply: request.options.server_side_apply,
        validate: request.options.validate,
    }
}

/// Compares the app with `request.live`, given the dry-runs' answers.
fn finish_compare(cluster: &Cluster, request: LiveCompare<'_>, dry_runs: DryRuns) -> DryRunOutcome {
    let comparison = diff::compare_app(
        request.prepared,
        request.live,
        &dry_runs.predicted,
        &compare_settings(&request),
        Some(cluster.compare_results()),
    );
    DryRunOutcome {
        comparison,
        errors: dry_runs.errors,
        strictly_dry_run: dry_runs.strictly_dry_run,
    }
}

/// Dry-runs the desired objects the compare cache cannot answer. `request.live` needs to
/// hold only the desired keys' live objects.
async fn dry_run_desired(
    cluster: &Cluster,
    request: LiveCompare<'_>,
    purpose: DryRunPurpose,
) -> Result<DryRuns, CompareFailure> {
    let compare_settings = compare_settings(&request);
    let LiveCompare {
        destination_namespace,
        desired,
        prepared,
        live,
        options,
        concurrency,
        ..
    } = request;
    // Kinds and namespaces this sync creates: their objects cannot be dry-run yet.
    let crd_kinds: HashSet<(String, String)> = crd_scopes(desired).into_keys().collect();
    let mut new_namespaces: HashSet<String> = prepared
        .objects
        .iter()
        .filter(|(k, _)| k.group.is_empty() && k.kind == "Namespace")
        .map(|(k, _)| k.name.clone())
        .collect();
    if options.create_namespace && !destination_namespace.is_empty() {
        new_namespaces.insert(destination_namespace.to_string());
    }
    let fingerprint = diff::settings_fingerprint(&compare_settings);
    let results = cluster.compare_results();
    // The futures are built first and streamed as a Vec: a stream that maps through a
    // borrowing closure makes the whole future not provably Send for spawned callers
    // (rustc's higher-ranked lifetime limitation), and the controller spawns compares.
    let pending: Vec<_> = prepared
        .objects
        .iter()
        .filter(|(key, object)| {
            // Hooks are not dry-run; neither is what an unchanged compare already answered.
            !crate::hooks::is_hook(object)
                && !results.is_fresh(key, object, live.get(*key), &fingerprint)
        })
        .map(|(key, object)| {
            let live_object = live.get(key);
            let (object_options, _) = options.for_object(object);
            let mode = ApplyMode {
                server_side: object_options.server_side_apply,
                validate: object_options.validate,
            };
            async move {
                if purpose == DryRunPurpose::Sync
                    && live_object.is_none()
                    && mode.server_side
                    && mode.validate
                    && !cluster.is_cached(key, object, None, mode)
                {
                    // A new object in a sync: the server must accept it before anything is
                    // written, but its prediction is not needed (the object is missing either
                    // way, and a cached prediction for "absent" is never asked again once it is
                    // written), so only the verdict is read.
                    let outcome = cluster
                        .check_create(object, object_options.validate)
                        .await
                        .map(|()| None);
                    return (key.clone(), object_options, mode, outcome);
                }
                let outcome = cluster
                    .predict(key, object, live_object, mode)
                    .await
                    .map(Some);
                (key.clone(), object_options, mode, outcome)
            }
        })
        .collect();
    let dry_runs = futures::stream::iter(pending)
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
    let absent_namespaces = match purpose {
        DryRunPurpose::Compare => {
            // Namespaces of objects the server did not find: a read-only compare asks once
            // per namespace whether it exists (only on this error path, so an unchanged app
            // still sends nothing).
            let candidates: BTreeSet<&str> = dry_runs
                .iter()
                .filter(|(key, _, _, outcome)| {
                    outcome.as_ref().is_err_and(ClusterError::is_not_found)
                        && !key.namespace.is_empty()
                        && !new_namespaces.contains(&key.namespace)
                })
                .map(|(key, _, _, _)| key.namespace.as_str())
                .collect();
            absent_namespaces(cluster, candidates).await?
        }
        DryRunPurpose::Sync => HashSet::new(),
    };
    let mut predicted = HashMap::new();
    let mut dry_run_errors = BTreeMap::new();
    let mut strictly_dry_run = HashSet::new();
    for (key, object_options, mode, outcome) in dry_runs {
        if outcome.is_ok() && mode.server_side && mode.validate {
            strictly_dry_run.insert(key.clone());
        }
        match outcome {
            Ok(Some(value)) => {
                predicted.insert(key, value);
            }
            Ok(None) => {}
            Err(error) if error.is_transport() => return Err(CompareFailure::Cluster(error)),
            Err(error) => {
                let kind_created_here = crd_kinds.contains(&(key.group.clone(), key.kind.clone()));
                let namespace_created_here = new_namespaces.contains(&key.namespace);
                let namespace_absent = absent_namespaces.contains(&key.namespace);
                let missing =
                    matches!(error, ClusterError::UnknownKind { .. }) || error.is_not_found();
                if missing
                    && (kind_created_here
                        || namespace_created_here
                        || namespace_absent
                        || object_options.skip_dry_run_on_missing_resource)
                {
                    // Structural fallback: compare without the server's prediction.
                    continue;
                }
                if object_options.force && error.is_invalid() && live.contains_key(&key) {
                    // Force: the object will be deleted and created again, so a change the
                    // server refuses in place (an immutable field) is not an error.
                    continue;
                }
                dry_run_errors.insert(key, error.to_string());
            }
        }
    }
    Ok(DryRuns {
        predicted,
        errors: dry_run_errors,
        strictly_dry_run,
    })
}

/// Which of `namespaces` do not exist on the cluster. A namespace that cannot be read for
/// another reason (e.g. forbidden) counts as existing, so the object's own dry-run error is
/// reported rather than hidden.
async fn absent_namespaces(
    cluster: &Cluster,
    namespaces: BTreeSet<&str>,
) -> Result<HashSet<String>, CompareFailure> {
    let mut absent = HashSet::new();
    for name in namespaces {
        let namespace =
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name}});
        match cluster.get(&namespace).await {
            Ok(None) => {
                absent.insert(name.to_string());
            }
            Ok(Some(_)) => {}
            Err(error) if error.is_transport() => return Err(CompareFailure::Cluster(error)),
            Err(_) => {}
        }
    }
    Ok(absent)
}

#[derive(Debug, thiserror::Error)]
pub enum CompareFailure {
    #[error(transparent)]
    Cluster(ClusterError),
    #[error("{0}")]
    Invalid(String),
}
