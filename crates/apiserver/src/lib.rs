//! The embedded Kubernetes-compatible API server.
//!
//! It serves Kubernetes' REST API over HTTPS with bearer-token authentication, stores
//! objects durably in a versioned [`redb`] file in a data directory, and is used either as
//! a standalone program (`plumb local`) or in-process (later `plumb serve`, benchmarks,
//! tests):
//!
//! ```no_run
//! # async fn demo() -> Result<(), plumb_apiserver::Error> {
//! use plumb_apiserver::{Config, start};
//! let server = start(Config::new("/tmp/plumb-data", "127.0.0.1:0".parse().unwrap())).await?;
//! println!("{} {}", server.url(), server.token());
//! server.write_kubeconfig(std::path::Path::new("/tmp/plumb-data/kubeconfig"))?;
//! server.shutdown().await; // stops serving and flushes the store
//! # Ok(()) }
//! ```
//!
//! # API boundary
//! [`Config`], [`start`], [`RunningServer`] and [`Error`] are the whole public surface. The
//! pure cores ([`selector`], [`patch`], [`managed`], [`prune`], [`protobuf`],
//! [`validation`], [`registry`]) are public too so that other crates and property tests
//! can use them; they do no I/O.
//!
//! # Files in the data directory
//! `store.redb` (objects + format version + resourceVersion counter), `ca.crt`,
//! `server.crt`, `server.key` (mode 0600), `token` (mode 0600). `plumb local` also writes
//! `kubeconfig` there.

mod api_error;
mod crd;
mod crd_schema;
mod discovery;
mod error;
mod handlers;
mod http;
pub mod managed;
mod negotiation;
mod objects;
mod openapi;
mod partial;
pub mod patch;
pub mod protobuf;
pub mod prune;
pub mod registry;
pub mod selector;
mod services;
mod store;
mod table;
mod tls;
mod unknown_fields;
pub mod validation;
mod watch;
mod workload_validation;
mod workloads;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

pub use error::Error;
pub use services::ServiceCidr;
pub use workloads::{FAILURE_LABEL, NODE_NAME, Workloads};

/// How to start a server.
#[derive(Debug, Clone)]
pub struct Config {
    /// Directory holding the store, TLS material and token; created if missing.
    pub data_dir: PathBuf,
    /// Address to listen on; port 0 picks a free port (see [`RunningServer::url`]).
    pub bind: SocketAddr,
    /// How many watch events are kept for resuming watches; older resourceVersions get
    /// `410 Gone`.
    pub watch_history: usize,
    /// How many undelivered events a single watcher may have queued before it is dropped.
    pub watcher_queue: usize,
    /// How often watches that allow bookmarks get one (Kubernetes: about a minute).
    pub bookmark_interval: std::time::Duration,
    /// Bytes of page cache redb may keep (the in-memory index serves reads anyway).
    pub store_cache_bytes: usize,
    /// Whether `/api` and `/apis` serve the aggregated discovery list
    /// (`apidiscovery.k8s.io/v2`) to clients that ask for it. `false` behaves as
    /// kube-apiserver before 1.26 (or with the `AggregatedDiscoveryEndpoint` feature gate
    /// off): the roots answer only the plain `APIVersions` / `APIGroupList`, so clients
    /// fall back to per-group discovery. Default `true`.
    pub aggregated_discovery: bool,
    /// The workload simulation (Deployments, ReplicaSets, Pods on a simulated node, Jobs,
    /// …); on by default, off with [`Workloads::enabled`] `false`.
    pub workloads: Workloads,
    /// The range Service cluster IPs are allocated from (default 10.96.0.0/12).
    pub service_cidr: ServiceCidr,
    /// How long an Event is kept after it was last seen (kube-apiserver's `--event-ttl`,
    /// default one hour).
    pub event_ttl: std::time::Duration,
}

impl Config {
    /// A configuration with the default limits.
    pub fn new(data_dir: impl Into<PathBuf>, bind: SocketAddr) -> Self {
        Config {
            data_dir: data_dir.into(),
            bind,
            watch_history: 10_000,
            watcher_queue: 1_000,
            bookmark_interval: std::time::Duration::from_secs(60),
            store_cache_bytes: 16 * 1024 * 1024,
            aggregated_discovery: true,
            workloads: Workloads::default(),
            service_cidr: ServiceCidr::DEFAULT,
            event_ttl: std::time::Duration::from_secs(3600),
        }
    }
}

/// A server that is listening; dropping it without [`RunningServer::shutdown`] stops the
/// listener but does not wait for the store to flush (acknowledged writes are durable
/// anyway: every acknowledgement follows an fsync).
pub struct RunningServer {
    addr: SocketAddr,
    token: String,
    ca_pem: String,
    http: http::ServerHandle,
}

impl RunningServer {
    /// `https://127.0.0.1:PORT` (the bound address; `localhost` for unspecified binds).
    pub fn url(&self) -> String {
        let host = match self.addr.ip() {
            ip if ip.is_unspecified() => "127.0.0.1".to_string(),
            std::net::IpAddr::V6(ip) => format!("[{ip}]"),
            ip => ip.to_string(),
        };
        format!("https://{host}:{}", self.addr.port())
    }

    /// The address the server listens on (with the real port when port 0 was asked).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// The bearer token clients must send.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// The PEM of the CA that signed the serving certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    /// A kubeconfig (context `plumb`) that kubectl and kube-rs use unchanged.
    pub fn kubeconfig_yaml(&self) -> String {
        use base64::Engine as _;
        let ca = base64::engine::general_purpose::STANDARD.encode(self.ca_pem.as_bytes());
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: plumb\n  cluster:\n    server: {url}\n    certificate-authority-data: {ca}\nusers:\n- name: plumb\n  user:\n    token: {token}\ncontexts:\n- name: plumb\n  context:\n    cluster: plumb\n    user: plumb\n    namespace: default\ncurrent-context: plumb\n",
            url = self.url(),
            token = self.token,
        )
    }

    /// Writes [`RunningServer::kubeconfig_yaml`] to `path` (mode 0600, atomically).
    pub fn write_kubeconfig(&self, path: &Path) -> Result<(), Error> {
        tls::write_private_file(path, self.kubeconfig_yaml().as_bytes())
    }

    /// Stops accepting connections, ends watches and open requests, and waits for the
    /// store's writer to finish its last batch.
    pub async fn shutdown(self) {
        self.http.shutdown().await;
    }
}

/// Opens (or creates) the data directory and starts serving.
///
/// Fails with a clear [`Error`] when the store is from a newer format, is corrupt, or is
/// already in use, and never modifies such a store.
pub async fn start(config: Config) -> Result<RunningServer, Error> {
    std::fs::create_dir_all(&config.data_dir).map_err(|source| Error::Io {
        path: config.data_dir.clone(),
        source,
    })?;
    let store_path = config.data_dir.join("store.redb");
    let cache = config.store_cache_bytes;
    let history = config.watch_history;
    let store =
        tokio::task::spawn_blocking(move || store::Store::open(&store_path, cache, history))
            .await
            .map_err(|e| Error::Storage(format!("store opening task failed: {e}")))??;
    let material = tls::load_or_create(&config.data_dir)?;
    let limits = watch::WatchLimits {
        queue: config.watcher_queue,
        bookmark_every: config.bookmark_interval,
    };
    let state = handlers::AppState::new(
        store,
        limits,
        material.ca_pem.clone(),
        config.aggregated_discovery,
        config.service_cidr,
    )
    .await?;
    state.set_graceful_pods(config.workloads.enabled);
    // Checked ten times per TTL, at most once a minute.
    let every = (config.event_ttl / 10).clamp(
        std::time::Duration::from_millis(100),
        std::time::Duration::from_secs(60),
    );
    state.spawn_event_expiry(config.event_ttl, every);
    workloads::spawn(state.clone(), config.workloads.clone());
    let (addr, http) = http::serve(config.bind, &material, state).await?;
    Ok(RunningServer {
        addr,
        token: material.token,
        ca_pem: material.ca_pem,
        http,
    })
}
