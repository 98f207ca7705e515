//! Destination clusters: `in-cluster` (the state cluster itself) and the clusters Argo CD
//! cluster Secrets describe (`argocd.argoproj.io/secret-type: cluster`), by server URL or
//! by name. One engine [`Cluster`] per destination, kept while its Secret is unchanged.

use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams};
use plumb_app::spec::{IN_CLUSTER_NAME, IN_CLUSTER_SERVER};
use plumb_engine::cluster::Cluster;
use plumb_model::ApplicationDestination;
use serde::Deserialize;
use std::collections::HashMap;
use std::sync::{Arc, Mutex};

pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// A resolved destination.
#[derive(Clone)]
pub struct Destination {
    /// The server URL metrics and conditions name.
    pub server: String,
    pub cluster: Arc<Cluster>,
}

#[derive(Debug, thiserror::Error)]
pub enum DestinationError {
    #[error("no cluster named {0:?} is registered (there is no cluster Secret with that name)")]
    UnknownName(String),
    #[error("cluster {0} is not registered (there is no cluster Secret with that server)")]
    UnknownServer(String),
    #[error("cluster Secret {secret}: {message}")]
    BadSecret { secret: String, message: String },
    #[error("reading cluster Secrets: {0}")]
    List(String),
}

/// The `config` key of a cluster Secret (Argo CD's `ClusterConfig`).
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ClusterConfig {
    #[serde(default)]
    bearer_token: Option<String>,
    #[serde(default)]
    username: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(default)]
    tls_client_config: TlsClientConfig,
    #[serde(default)]
    exec_provider_config: Option<serde_json::Value>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct TlsClientConfig {
    #[serde(default)]
    insecure: bool,
    #[serde(default)]
    server_name: Option<String>,
    /// Base64 PEM, as Argo CD stores them.
    #[serde(default)]
    ca_data: Option<String>,
    #[serde(default)]
    cert_data: Option<String>,
    #[serde(default)]
    key_data: Option<String>,
}

struct Known {
    resource_version: String,
    destination: Destination,
}

pub struct Destinations {
    state: kube::Client,
    namespace: String,
    in_cluster: Destination,
    known: Mutex<HashMap<String, Known>>,
}

fn secret_value(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()
        .and_then(|d| d.get(key))
        .map(|b| String::from_utf8_lossy(&b.0).to_string())
        .or_else(|| {
            secret
                .string_data
                .as_ref()
                .and_then(|d| d.get(key))
                .cloned()
        })
}

/// A kubeconfig for one cluster Secret (exec-free: tokens, basic auth, client certs).
fn kubeconfig_for(server: &str, config: &ClusterConfig) -> serde_json::Value {
    let tls = &config.tls_client_config;
    let mut cluster = serde_json::json!({"server": server});
    if tls.insecure {
        cluster["insecure-skip-tls-verify"] = true.into();
    }
    if let Some(ca) = &tls.ca_data {
        cluster["certificate-authority-data"] = ca.clone().into();
    }
    if let Some(name) = &tls.server_name {
        cluster["tls-server-name"] = name.clone().into();
    }
    let mut user = serde_json::json!({});
    if let Some(token) = &config.bearer_token {
        user["token"] = token.clone().into();
    }
    if let (Some(u), Some(p)) = (&config.username, &config.password) {
        user["username"] = u.clone().into();
        user["password"] = p.clone().into();
    }
    if let Some(cert) = &tls.cert_data {
        user["client-certificate-data"] = cert.clone().into();
    }
    if let Some(key) = &tls.key_data {
        user["client-key-data"] = key.clone().into();
    }
    serde_json::json!({
        "apiVersion": "v1", "kind": "Config", "current-context": "c",
        "clusters": [{"name": "c", "cluster": cluster}],
        "users": [{"name": "u", "user": user}],
        "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
    })
}

impl Destinations {
    pub fn new(state: kube::Client, state_cluster: Arc<Cluster>, namespace: &str) -> Self {
        Self {
            state,
            namespace: namespace.to_string(),
            in_cluster: Destination {
                server: IN_CLUSTER_SERVER.to_string(),
                cluster: state_cluster,
            },
            known: Mutex::new(HashMap::new()),
        }
    }

    pub fn in_cluster(&self) -> &Destination {
        &self.in_cluster
    }

    /// The destination an Application names.
    pub async fn resolve(
        &self,
        destination: &ApplicationDestination,
    ) -> Result<Destination, DestinationError> {
        let server = destination.server.trim_end_matches('/');
        if server == IN_CLUSTER_SERVER || (server.is_empty() && destination.name == IN_CLUSTER_NAME)
        {
            return Ok(self.in_cluster.clone());
        }
        let api: Api<Secret> = Api::namespaced(self.state.clone(), &self.namespace);
        let secrets = api
            .list(&ListParams::default().labels(&format!("{SECRET_TYPE_LABEL}=cluster")))
            .await
            .map_err(|e| DestinationError::List(e.to_string()))?;
        for secret in secrets.items {
            let secret_name = secret.metadata.name.clone().unwrap_or_default();
            let secret_server = secret_value(&secret, "server").unwrap_or_default();
            let name = secret_value(&secret, "name").unwrap_or_default();
            let matches = if server.is_empty() {
                name == destination.name
            } else {
                secret_server.trim_end_matches('/') == server
            };
            if !matches {
                continue;
            }
            let version = secret.metadata.resource_version.clone().unwrap_or_default();
            if let Some(known) = self
                .known
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(&secret_name)
                .filter(|k| k.resource_version == version)
            {
                return Ok(known.destination.clone());
            }
            let destination = self.connect(&secret_name, &secret_server, &secret).await?;
            self.known.lock().unwrap_or_else(|e| e.into_inner()).insert(
                secret_name,
                Known {
                    resource_version: version,
                    destination: destination.clone(),
                },
            );
            return Ok(destination);
        }
        if server.is_empty() {
            Err(DestinationError::UnknownName(destination.name.clone()))
        } else {
            Err(DestinationError::UnknownServer(server.to_string()))
        }
    }

    async fn connect(
        &self,
        secret_name: &str,
        server: &str,
        secret: &Secret,
    ) -> Result<Destination, DestinationError> {
        let bad = |message: String| DestinationError::BadSecret {
            secret: secret_name.to_string(),
            message,
        };
        if !(server.starts_with("https://") || server.starts_with("http://")) {
            return Err(bad(format!("server {server:?} is not an http(s) URL")));
        }
        let config: ClusterConfig = match secret_value(secret, "config") {
            Some(text) => serde_json::from_str(&text)
                .map_err(|e| bad(format!("config is not valid JSON: {e}")))?,
            None => ClusterConfig::default(),
        };
        if config.exec_provider_config.is_some() {
            return Err(bad(
                "execProviderConfig is not supported (plumb runs no credential plugins); use a bearer token or client certificate"
                    .to_string(),
            ));
        }
        let kubeconfig = kubeconfig_for(server, &config);
        let kubeconfig: kube::config::Kubeconfig =
            serde_json::from_value(kubeconfig).map_err(|e| bad(e.to_string()))?;
        let client_config = kube::Config::from_custom_kubeconfig(
            kubeconfig,
            &kube::config::KubeConfigOptions::default(),
        )
        .await
        .map_err(|e| bad(e.to_string()))?;
        let client = kube::Client::try_from(client_config).map_err(|e| bad(e.to_string()))?;
        Ok(Destination {
            server: server.to_string(),
            cluster: Arc::new(Cluster::new(client)),
        })
    }
}
