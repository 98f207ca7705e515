//! plumb-engine's integration tests: golden data for the pure cores, and (in `cluster`)
//! end-to-end runs against the real test cluster and (in `embedded`) plumb's embedded API server;
//! `argo_crds` installs plumb's Argo CD CRDs on both and applies Argo CD manifests to them.

mod argo_crds;
mod client_apply;
mod cluster;
mod diff_golden;
mod embedded;
mod health_golden;
mod lua_checks;
mod plan_golden;

use std::path::PathBuf;

pub fn fixture_path(relative: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(relative)
}

pub fn fixture_yaml(relative: &str) -> serde_json::Value {
    let path = fixture_path(relative);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path:?}: {e}"));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{path:?}: {e}"))
}
