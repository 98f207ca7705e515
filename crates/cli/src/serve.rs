//! `plumb serve`: the GitOps controller with its state store — the embedded API server by
//! default, or a real cluster (`--kubeconfig`/`--context`) — and an HTTP listener for
//! `/metrics` and `/healthz`. `--quickstart` adds a local Git repository with a sample app.

use anyhow::{Context as _, bail};
use http_body_util::Full;
use hyper::body::Bytes;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams, PostParams};
use plumb_controller::{Controller, ControllerConfig, DEFAULT_NAMESPACE};
use plumb_engine::cluster::Cluster;
use serde_json::{Value, json};
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio_util::sync::CancellationToken;

/// Arguments of `plumb serve`.
#[derive(clap::Args, Debug)]
pub struct ServeArgs {
    /// Directory for the embedded server's store and kubeconfig, plumb's Git and render
    /// caches, and the quickstart repository (created if missing).
    #[arg(long, env = "PLUMB_DATA_DIR", default_value = "./plumb-data")]
    pub data_dir: PathBuf,
    /// Use this cluster as state store and `in-cluster` destination instead of the
    /// embedded API server.
    #[arg(long)]
    pub kubeconfig: Option<PathBuf>,
    /// The kubeconfig context (with `--kubeconfig`).
    #[arg(long)]
    pub context: Option<String>,
    /// Namespace of Applications, AppProjects, settings and Secrets.
    #[arg(long, default_value = DEFAULT_NAMESPACE)]
    pub namespace: String,
    /// Port of the embedded API server (0 picks a free port).
    #[arg(long, default_value_t = 6443)]
    pub port: u16,
    /// Address the embedded API server and the metrics listener bind to.
    #[arg(long, default_value = "127.0.0.1")]
    pub bind: IpAddr,
    /// Port of `/metrics` and `/healthz` (0 picks a free port; Argo CD's controller uses 8082).
    #[arg(long, default_value_t = 8082)]
    pub metrics_port: u16,
    /// Run workloads on the embedded server (Deployments get Pods that become Ready).
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    pub workloads: bool,
    /// How long a Pod takes to start on the embedded server's simulated node, in ms.
    #[arg(long, default_value_t = 500)]
    pub pod_start_delay_ms: u64,
    /// Allow `file://` repository URLs (off by default: a server should not read its own
    /// disk on an Application author's behalf). `--quickstart` turns it on.
    #[arg(long)]
    pub allow_file_repos: bool,
    /// Create a local Git repository with a sample app and an Application that deploys it
    /// with automated sync, prune and self-heal.
    #[arg(long)]
    pub quickstart: bool,
}

/// Where a running `plumb serve` can be reached; written to `<data-dir>/serve.json`.
fn write_endpoints(data_dir: &Path, kubeconfig: &Path, metrics: SocketAddr) -> anyhow::Result<()> {
    let path = data_dir.join("serve.json");
    let text = json!({
        "kubeconfig": kubeconfig.display().to_string(),
        "metrics": format!("http://{metrics}/metrics"),
    });
    // Written whole then renamed: a reader never sees half a file.
    let partial = data_dir.join("serve.json.partial");
    std::fs::write(&partial, serde_json::to_vec_pretty(&text)?)
        .with_context(|| format!("writing {}", partial.display()))?;
    std::fs::rename(&partial, &path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

pub fn run(args: ServeArgs) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("creating the data directory {}", args.data_dir.display()))?;
    let data_dir = std::fs::canonicalize(&args.data_dir).unwrap_or(args.data_dir.clone());

    // The state store: the embedded API server, or the cluster the kubeconfig names.
    let mut embedded = None;
    let (kubeconfig, context) = match &args.kubeconfig {
        Some(path) => (path.clone(), args.context.clone()),
        None => {
            let mut config = plumb_apiserver::Config::new(
                data_dir.join("apiserver"),
                SocketAddr::new(args.bind, args.port),
            );
            config.workloads.enabled = args.workloads;
            config.workloads.pod_start_delay = Duration::from_millis(args.pod_start_delay_ms);
            config.workloads.job_run_time = Duration::from_millis(args.pod_start_delay_ms);
            let server = plumb_apiserver::start(config).await.with_context(|| {
                format!(
                    "starting the embedded API server (data directory {})",
                    data_dir.display()
                )
            })?;
            let path = data_dir.join("kubeconfig");
            server
                .write_kubeconfig(&path)
                .with_context(|| format!("writing {}", path.display()))?;
            println!("embedded API server listening on {}", server.url());
            embedded = Some(server);
            (path, None)
        }
    };
    let cluster = Cluster::connect(Some(&kubeconfig), context.as_deref())
        .await
        .with_context(|| format!("connecting with {}", kubeconfig.display()))?;
    let client = cluster.client().clone();
    bootstrap(&client, &args.namespace)
        .await
        .with_context(|| format!("preparing the state cluster ({})", kubeconfig.display()))?;

    let mut source = plumb_source::SourceConfig::new(data_dir.join("cache"));
    source.git.url_policy.allow_file = args.allow_file_repos || args.quickstart;
    let controller = Controller::new(
        client.clone(),
        ControllerConfig {
            namespace: args.namespace.clone(),
            source,
            tuning: plumb_app::sync::SyncTuning::default(),
            initial_settings: initial_settings(&client, &args.namespace).await,
        },
    )?;

    let listener = tokio::net::TcpListener::bind(SocketAddr::new(args.bind, args.metrics_port))
        .await
        .with_context(|| format!("listening on {}:{}", args.bind, args.metrics_port))?;
    let metrics_addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let http = tokio::spawn(serve_http(listener, controller.clone(), cancel.clone()));
    let running = tokio::spawn(controller.clone().run(cancel.clone()));

    if args.quickstart {
        let repo = quickstart(&client, &args.namespace, &data_dir)
            .await
            .context("setting up the quickstart")?;
        println!(
            "quickstart: Application \"quickstart\" deploys {}",
            repo.display()
        );
        println!(
            "  edit {}/guestbook/*.yaml and commit: plumb follows",
            repo.display()
        );
    }
    write_endpoints(&data_dir, &kubeconfig, metrics_addr)?;
    println!("controller running; metrics on http://{metrics_addr}/metrics");
    println!("kubeconfig: {}", kubeconfig.display());
    println!();
    println!("  export KUBECONFIG={}", kubeconfig.display());
    println!("  kubectl get applications -n {}", args.namespace);
    println!();
    println!("Press Ctrl-C to stop.");
    crate::local::wait_for_signal().await?;
    eprintln!("stopping: ending operations and flushing the store");
    cancel.cancel();
    let _ = running.await;
    let _ = http.await;
    if let Some(server) = embedded {
        server.shutdown().await;
    }
    Ok(())
}

fn crd_resource() -> ApiResource {
    ApiResource {
        group: "apiextensions.k8s.io".to_string(),
        version: "v1".to_string(),
        api_version: "apiextensions.k8s.io/v1".to_string(),
        kind: "CustomResourceDefinition".to_string(),
        plural: "customresourcedefinitions".to_string(),
    }
}

/// Installs the Application and AppProject CRDs, the control-plane namespace and the
/// `default` AppProject (left alone when it exists: users edit it).
async fn bootstrap(client: &kube::Client, namespace: &str) -> anyhow::Result<()> {
    let apply = PatchParams::apply("plumb").force();
    let crds: Api<DynamicObject> = Api::all_with(client.clone(), &crd_resource());
    for crd in [
        plumb_model::crd::application_crd(),
        plumb_model::crd::app_project_crd(),
    ] {
        let name = crd
            .pointer("/metadata/name")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string();
        crds.patch(&name, &apply, &Patch::Apply(&crd))
            .await
            .with_context(|| format!("installing the CRD {name}"))?;
    }
    let namespaces: Api<k8s_openapi::api::core::v1::Namespace> = Api::all(client.clone());
    let ns = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
    namespaces
        .patch(namespace, &apply, &Patch::Apply(&ns))
        .await
        .with_context(|| format!("creating the namespace {namespace}"))?;
    // The CRDs serve once established; wait for the project kind to answer.
    let projects: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &plumb_controller::app_project_resource(),
    );
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        match projects.list(&Default::default()).await {
            Ok(_) => break,
            Err(error) if Instant::now() > deadline => {
                bail!("the AppProject CRD does not serve after 30 s: {error}")
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
        }
    }
    let project = serde_json::to_value(plumb_model::AppProject::default_project(namespace))?;
    let project: DynamicObject = serde_json::from_value(project)?;
    match projects.create(&PostParams::default(), &project).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => return Err(error).context("creating the default AppProject"),
    }
    Ok(())
}

const QUICKSTART_DEPLOYMENT: &str = "apiVersion: apps/v1
kind: Deployment
metadata:
  name: guestbook-ui
spec:
  replicas: 1
  selector:
    matchLabels: {app: guestbook-ui}
  template:
    metadata:
      labels: {app: guestbook-ui}
    spec:
      containers:
        - name: guestbook-ui
          image: gcr.io/heptio-images/ks-guestbook-demo:0.2
          ports:
            - containerPort: 80
";

const QUICKSTART_SERVICE: &str = "apiVersion: v1
kind: Service
metadata:
  name: guestbook-ui
spec:
  selector: {app: guestbook-ui}
  ports:
    - port: 80
      targetPort: 80
";

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let output = std::process::Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_AUTHOR_NAME", "plumb quickstart")
        .env("GIT_AUTHOR_EMAIL", "quickstart@plumb.invalid")
        .env("GIT_COMMITTER_NAME", "plumb quickstart")
        .env("GIT_COMMITTER_EMAIL", "quickstart@plumb.invalid")
        .output()
        .context("running git (the quickstart needs git on PATH)")?;
    if !output.status.success() {
        bail!(
            "git {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

/// The quickstart: `<data-dir>/quickstart-repo` (created once, kept: it is the user's to
/// edit) and the Application `quickstart` that deploys its `guestbook` directory.
async fn quickstart(
    client: &kube::Client,
    namespace: &str,
    data_dir: &Path,
) -> anyhow::Result<PathBuf> {
    let repo = data_dir.join("quickstart-repo");
    if !repo.join(".git").exists() {
        std::fs::create_dir_all(repo.join("guestbook"))?;
        std::fs::write(
            repo.join("guestbook/deployment.yaml"),
            QUICKSTART_DEPLOYMENT,
        )?;
        std::fs::write(repo.join("guestbook/service.yaml"), QUICKSTART_SERVICE)?;
        git(&repo, &["init", "-q", "-b", "main"])?;
        git(&repo, &["add", "."])?;
        git(
            &repo,
            &["commit", "-q", "-m", "guestbook: the quickstart sample"],
        )?;
    }
    let apps: Api<DynamicObject> = Api::namespaced_with(
        client.clone(),
        namespace,
        &plumb_controller::application_resource(),
    );
    let app = json!({
        "apiVersion": "argoproj.io/v1alpha1",
        "kind": "Application",
        "metadata": {"name": "quickstart", "namespace": namespace,
                     "finalizers": [plumb_controller::RESOURCES_FINALIZER]},
        "spec": {
            "project": "default",
            "source": {"repoURL": format!("file://{}", repo.display()),
                       "targetRevision": "main", "path": "guestbook"},
            "destination": {"server": plumb_app::spec::IN_CLUSTER_SERVER, "namespace": "guestbook"},
            "syncPolicy": {"automated": {"prune": true, "selfHeal": true},
                           "syncOptions": ["CreateNamespace=true"]},
        },
    });
    let app: DynamicObject = serde_json::from_value(app)?;
    match apps.create(&PostParams::default(), &app).await {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 409 => {}
        Err(error) => return Err(error).context("creating the quickstart Application"),
    }
    Ok(repo)
}

fn response(status: u16, content_type: &str, body: String) -> hyper::Response<Full<Bytes>> {
    let mut response = hyper::Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = hyper::StatusCode::from_u16(status).unwrap_or_default();
    if let Ok(value) = hyper::header::HeaderValue::from_str(content_type) {
        response
            .headers_mut()
            .insert(hyper::header::CONTENT_TYPE, value);
    }
    response
}

/// `/metrics` (Prometheus text format) and `/healthz`.
async fn serve_http(
    listener: tokio::net::TcpListener,
    controller: Arc<Controller>,
    cancel: CancellationToken,
) {
    loop {
        let accepted = tokio::select! {
            _ = cancel.cancelled() => return,
            accepted = listener.accept() => accepted,
        };
        let Ok((stream, _)) = accepted else { continue };
        let controller = controller.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |request: hyper::Request<_>| {
                let controller = controller.clone();
                async move {
                    let reply = match request.uri().path() {
                        "/metrics" => response(
                            200,
                            "text/plain; version=0.0.4; charset=utf-8",
                            controller.render_metrics(),
                        ),
                        "/healthz" => response(200, "text/plain", "ok\n".to_string()),
                        path => response(404, "text/plain", format!("{path}: not found\n")),
                    };
                    Ok::<_, std::convert::Infallible>(reply)
                }
            });
            let io = hyper_util::rt::TokioIo::new(stream);
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(io, service)
                .await;
        });
    }
}

/// The settings in the ConfigMaps when plumb starts: what is read only at start (the
/// processor counts, as Argo CD reads its command parameters) comes from here; the rest is
/// reloaded live by the controller. Unreadable or invalid maps leave the defaults, and say so.
async fn initial_settings(
    client: &kube::Client,
    namespace: &str,
) -> plumb_controller::settings::ControllerSettings {
    use plumb_controller::settings::{ARGOCD_CM, ARGOCD_CMD_PARAMS_CM, ControllerSettings};
    let api: kube::Api<k8s_openapi::api::core::v1::ConfigMap> =
        kube::Api::namespaced(client.clone(), namespace);
    let mut data = Vec::new();
    for name in [ARGOCD_CM, ARGOCD_CMD_PARAMS_CM] {
        let map = match api.get_opt(name).await {
            Ok(map) => map.and_then(|m| m.data).unwrap_or_default(),
            Err(error) => {
                eprintln!("warning: reading ConfigMap {namespace}/{name}: {error}; using defaults");
                Default::default()
            }
        };
        data.push(map);
    }
    match ControllerSettings::from_config_maps(&data[0], &data[1]) {
        Ok(settings) => settings,
        Err(error) => {
            eprintln!(
                "warning: {namespace}/{ARGOCD_CM} or {ARGOCD_CMD_PARAMS_CM} is not valid ({error}); using defaults"
            );
            ControllerSettings::default()
        }
    }
}
