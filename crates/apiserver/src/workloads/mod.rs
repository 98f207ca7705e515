//! Workload simulation: what kube-controller-manager, kube-scheduler and a kubelet do in a
//! healthy cluster that runs no containers. Deployments get ReplicaSets, ReplicaSets and
//! Jobs get Pods, Pods are scheduled to the one node (`plumb-node`) and go Running and
//! Ready after [`Workloads::pod_start_delay`]; statuses, conditions and events are written
//! as those components write them, so `kubectl rollout status` completes and health
//! checks see what they would see on a real cluster.
//!
//! The controllers are level-triggered: every change the store records is mapped to the
//! keys of the objects whose controller must look again (a Pod to itself and its owner, a
//! ReplicaSet to itself and its Deployment, …), those keys go into one deduplicating
//! queue, and a key is reconciled from the current state in the store, never from the
//! event. Writes go through the server's own request handling ([`client::Client`]), so
//! they get defaults, validation, managedFields, garbage collection and watch events like
//! anyone's. Pods carrying the label `testcluster.plumb.dev/failure` fail on purpose as
//! they do on the project's real test cluster (kwok stages): `image-pull`, `crash-loop`,
//! `fail`.

mod client;
mod cronjob;
mod daemonset;
mod deployment;
mod endpoints;
mod events;
mod job;
mod kubelet;
mod queue;
mod replicaset;
mod statefulset;
mod util;
mod volumes;

use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use crate::handlers::AppState;
use crate::store::{EventType, Obj};
use queue::{Key, Kind, Queue};

pub(crate) use cronjob::parse_schedule;

/// The label that makes a Pod fail on purpose (the same as the real test cluster's).
pub const FAILURE_LABEL: &str = "testcluster.plumb.dev/failure";
/// The simulated node every Pod is scheduled to.
pub const NODE_NAME: &str = "plumb-node";

/// How the simulated cluster behaves.
#[derive(Debug, Clone)]
pub struct Workloads {
    /// Whether the controllers run at all (`plumb local --workloads=false` turns them off).
    pub enabled: bool,
    /// How long a scheduled Pod stays ContainerCreating before it runs and is Ready.
    pub pod_start_delay: Duration,
    /// How long a Job's Pod runs before it succeeds.
    pub job_run_time: Duration,
    /// How many keys are reconciled at the same time.
    pub workers: usize,
}

impl Default for Workloads {
    fn default() -> Self {
        Workloads {
            enabled: true,
            pod_start_delay: Duration::from_millis(500),
            job_run_time: Duration::from_millis(500),
            workers: 4,
        }
    }
}

/// What every controller needs.
#[derive(Clone)]
pub(crate) struct Ctx {
    pub state: AppState,
    pub config: Arc<Workloads>,
    pub queue: Arc<Queue>,
    /// kube-controller-manager's writes.
    pub kcm: client::Client,
    /// kube-scheduler's writes.
    pub scheduler: client::Client,
    /// The kubelet's writes.
    pub kubelet: client::Client,
}

/// The resources whose changes wake controllers, as store keys.
const WATCHED: &[&str] = &[
    "/pods",
    "/nodes",
    "apps/deployments",
    "apps/replicasets",
    "apps/statefulsets",
    "apps/daemonsets",
    "batch/jobs",
    "batch/cronjobs",
    "/services",
    "discovery.k8s.io/endpointslices",
    "networking.k8s.io/ingresses",
    "/persistentvolumeclaims",
    "/persistentvolumes",
];

/// Starts the controllers; they run until the store ends its watches (shutdown).
pub(crate) fn spawn(state: AppState, config: Workloads) {
    if !config.enabled {
        return;
    }
    let workers = config.workers.max(1);
    let ctx = Ctx {
        kcm: client::Client::new(state.clone(), "kube-controller-manager/v1.37.2"),
        scheduler: client::Client::new(state.clone(), "kube-scheduler/v1.37.2"),
        kubelet: client::Client::new(state.clone(), "kubelet/v1.37.2"),
        state,
        config: Arc::new(config),
        queue: Arc::new(Queue::default()),
    };
    kubelet::continue_pod_ips(&ctx);
    tokio::spawn(kubelet::ensure_node(ctx.clone()));
    for resource in WATCHED {
        tokio::spawn(watch_resource(ctx.clone(), resource));
    }
    for _ in 0..workers {
        tokio::spawn(work(ctx.clone()));
    }
    tokio::spawn(cronjob::tick(ctx.clone()));
}

/// Follows one resource's changes and queues the keys they concern. A watcher the store
/// dropped (its queue was full) subscribes again from the current state, which queues
/// every object once more: level-triggered controllers lose nothing by it.
async fn watch_resource(ctx: Ctx, resource: &'static str) {
    loop {
        let Ok(mut subscription) = ctx.state.store().subscribe(resource, None, None, 100_000)
        else {
            tokio::time::sleep(Duration::from_millis(200)).await;
            continue;
        };
        for event in std::mem::take(&mut subscription.backlog) {
            queue_for(&ctx, resource, event.type_, &event.object);
        }
        while let Some(event) = subscription.rx.recv().await {
            queue_for(&ctx, resource, event.type_, &event.object);
            if let (EventType::Modified, Some(previous)) = (event.type_, &event.previous) {
                // A changed owner reference (adoption, orphaning) concerns the old owner too.
                if previous.owners != event.object.owners {
                    queue_for(&ctx, resource, event.type_, previous);
                } else if resource == "/pods"
                    && let Ok(old) = previous.value()
                {
                    // A Pod whose labels changed may have left a Service.
                    queue_services_selecting(
                        &ctx,
                        &previous.namespace,
                        old.pointer("/metadata/labels"),
                    );
                }
            }
        }
        if ctx.state.is_closing() {
            return;
        }
    }
}

/// The keys one change concerns.
fn queue_for(ctx: &Ctx, resource: &str, event: EventType, object: &Obj) {
    let Ok(value) = object.value() else { return };
    let ns = object.namespace.clone();
    let key = |kind: Kind, name: &str| Key {
        kind,
        namespace: ns.clone(),
        name: name.to_string(),
    };
    let own = match resource {
        "/pods" => Some(Kind::Pod),
        "/nodes" => Some(Kind::Node),
        "apps/deployments" => Some(Kind::Deployment),
        "apps/replicasets" => Some(Kind::ReplicaSet),
        "apps/statefulsets" => Some(Kind::StatefulSet),
        "apps/daemonsets" => Some(Kind::DaemonSet),
        "batch/jobs" => Some(Kind::Job),
        "batch/cronjobs" => Some(Kind::CronJob),
        "/services" => Some(Kind::Service),
        "networking.k8s.io/ingresses" => Some(Kind::Ingress),
        "/persistentvolumeclaims" => Some(Kind::Claim),
        "/persistentvolumes" => Some(Kind::Volume),
        _ => None,
    };
    if let Some(kind) = own
        && (event != EventType::Deleted || kind != Kind::Pod)
    {
        ctx.queue.add(key(kind, &object.name));
    }
    if let Some((owner_kind, owner, _)) = util::controller_of(&value) {
        let owner_kind = match owner_kind {
            "ReplicaSet" => Some(Kind::ReplicaSet),
            "Deployment" => Some(Kind::Deployment),
            "StatefulSet" => Some(Kind::StatefulSet),
            "DaemonSet" => Some(Kind::DaemonSet),
            "Job" => Some(Kind::Job),
            "CronJob" => Some(Kind::CronJob),
            "Service" => Some(Kind::Service),
            _ => None,
        };
        if let Some(k) = owner_kind {
            ctx.queue.add(key(k, owner));
        }
    }
    if resource == "/pods" {
        queue_services_selecting(ctx, &ns, value.pointer("/metadata/labels"));
    }
    if resource == "/persistentvolumeclaims" && event == EventType::Deleted {
        // Its provisioned volume is released.
        ctx.queue.add(key(
            Kind::Volume,
            &format!("pvc-{}", util::meta(&value, "uid")),
        ));
    }
    if resource == "/nodes" && event == EventType::Added {
        // A new node wants a Pod of every DaemonSet.
        let (daemonsets, _) = ctx.state.store().list("apps/daemonsets", None, None);
        for ds in daemonsets {
            ctx.queue.add(Key {
                kind: Kind::DaemonSet,
                namespace: ds.namespace.clone(),
                name: ds.name.clone(),
            });
        }
    }
}

/// Queues the Services of `namespace` whose selector picks Pods with these labels.
fn queue_services_selecting(ctx: &Ctx, namespace: &str, labels: Option<&Value>) {
    let (services, _) = ctx.state.store().list("/services", Some(namespace), None);
    for service in services {
        if let Ok(value) = service.value()
            && endpoints::selects(&value, labels)
        {
            ctx.queue.add(Key {
                kind: Kind::Service,
                namespace: service.namespace.clone(),
                name: service.name.clone(),
            });
        }
    }
}

/// One worker: takes keys off the queue and reconciles them, one key at a time.
async fn work(ctx: Ctx) {
    loop {
        let Some(key) = ctx.queue.next().await else {
            return;
        };
        if ctx.state.is_closing() {
            return;
        }
        let outcome = match key.kind {
            Kind::Pod => kubelet::reconcile(&ctx, &key).await,
            Kind::Node => kubelet::reconcile_node(&ctx, &key).await,
            Kind::ReplicaSet => replicaset::reconcile(&ctx, &key).await,
            Kind::Deployment => deployment::reconcile(&ctx, &key).await,
            Kind::StatefulSet => statefulset::reconcile(&ctx, &key).await,
            Kind::DaemonSet => daemonset::reconcile(&ctx, &key).await,
            Kind::Job => job::reconcile(&ctx, &key).await,
            Kind::CronJob => cronjob::reconcile(&ctx, &key).await,
            Kind::Service => endpoints::reconcile(&ctx, &key).await,
            Kind::Ingress => endpoints::reconcile_ingress(&ctx, &key).await,
            Kind::Claim => volumes::reconcile_claim(&ctx, &key).await,
            Kind::Volume => volumes::reconcile_volume(&ctx, &key).await,
        };
        ctx.queue.done(&key);
        match outcome {
            Ok(Some(after)) => ctx.queue.add_after(key, after),
            Ok(None) => {}
            Err(message) => {
                // A conflict or a refused write: look again shortly, from fresh state.
                tracing::debug!(?key, %message, "workload reconcile failed; retrying");
                ctx.queue.add_after(key, Duration::from_millis(100));
            }
        }
    }
}

/// What a reconcile answers: `Ok(Some(d))` to look again after `d` (a timer: a Pod to
/// start, a deadline to check), `Err` when a write failed.
pub(crate) type Outcome = Result<Option<Duration>, String>;

impl Ctx {
    /// The current object at `resource`/`namespace`/`name`, parsed.
    pub fn get(&self, resource: &str, namespace: &str, name: &str) -> Option<Value> {
        let key = crate::store::ObjKey {
            resource: resource.to_string(),
            namespace: namespace.to_string(),
            name: name.to_string(),
        };
        self.state.store().get(&key)?.value().ok()
    }

    /// The objects of `resource` whose owner references name `uid`.
    pub fn owned(&self, resource: &str, uid: &str) -> Vec<Value> {
        self.state
            .store()
            .dependents_of(uid)
            .into_iter()
            .filter(|(r, _)| r == resource)
            .filter_map(|(_, o)| o.value().ok())
            .collect()
    }
}

/// Fails a reconcile with the answer's message unless the write succeeded.
pub(crate) fn check(answer: &client::Answer, what: &str) -> Result<(), String> {
    if answer.ok() {
        Ok(())
    } else {
        Err(format!("{what}: {} {}", answer.code, answer.message()))
    }
}

/// Whether an answer says the object is gone (nothing left to reconcile).
pub(crate) fn gone(answer: &client::Answer) -> bool {
    answer.code == 404
}
