//! plumb-source against real servers and tools: lighttpd + git http-backend, sshd, file://,
//! docker-registry, helm, kustomize and kubectl. One binary for link time.

mod discovery;
mod fast_yaml;
mod git;
mod helm_auth;
mod jsonnet_worker;
mod partial;
mod render;
mod servers;
mod signatures;
mod tools;

use std::path::Path;

use plumb_model::application::ApplicationSource;
use plumb_source::jsonnet_worker::WorkerCommand;
use plumb_source::render::{KustomizeTool, Tools, find_executable};
use plumb_source::{RenderRequest, SourceConfig, SourceService, UrlPolicy};

/// The Jsonnet worker binary of this crate.
pub fn jsonnet_worker() -> WorkerCommand {
    WorkerCommand::new(env!("CARGO_BIN_EXE_plumb-jsonnet-worker"))
}

/// A service with its cache in `dir`, file:// allowed, Jsonnet in worker processes, helm and
/// kustomize from the test cluster's bin directory. `adjust` changes the configuration first.
pub fn service_with(dir: &Path, adjust: impl FnOnce(&mut SourceConfig)) -> SourceService {
    let mut config = SourceConfig::new(dir.join("cache"));
    config.git.url_policy = UrlPolicy { allow_file: true };
    config.render.jsonnet_worker = Some(jsonnet_worker());
    adjust(&mut config);
    let bin = servers::tool_bin_dir();
    let tools = Tools::discover(&[bin], dir.join("cache/helm"));
    SourceService::with_tools(config, tools).expect("service")
}

pub fn service(dir: &Path) -> SourceService {
    service_with(dir, |_| {})
}

/// The same, with Kustomize run as `kubectl kustomize`.
pub fn service_kubectl(dir: &Path) -> SourceService {
    let bin = servers::tool_bin_dir();
    let mut config = SourceConfig::new(dir.join("cache"));
    config.git.url_policy = UrlPolicy { allow_file: true };
    // The test cluster's kubectl, never one on `PATH`.
    let kubectl = bin.join("kubectl");
    assert!(kubectl.is_file(), "{} is missing", kubectl.display());
    let tools = Tools::new(
        find_executable("helm", &[bin]),
        Some(KustomizeTool::Kubectl(kubectl)),
        dir.join("cache/helm"),
    );
    SourceService::with_tools(config, tools).expect("service")
}

pub fn source(url: &str, revision: &str, path: &str) -> ApplicationSource {
    ApplicationSource {
        repo_url: url.to_string(),
        target_revision: revision.to_string(),
        path: path.to_string(),
        ..Default::default()
    }
}

pub fn request(sources: Vec<ApplicationSource>) -> RenderRequest {
    RenderRequest {
        app_name: "demo".to_string(),
        namespace: "demo-ns".to_string(),
        sources,
        ..Default::default()
    }
}

pub fn names(rendered: &plumb_source::RenderedSource) -> Vec<String> {
    rendered
        .manifests
        .iter()
        .map(|m| {
            format!(
                "{}/{}",
                m.object["kind"].as_str().unwrap_or(""),
                m.object["metadata"]["name"].as_str().unwrap_or("")
            )
        })
        .collect()
}

pub fn cm(name: &str) -> String {
    format!("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\ndata:\n  k: v\n")
}
