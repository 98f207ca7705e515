//! Types of plumb's state, with Argo CD's field names: Applications, their sources,
//! destinations and sync policies, resource keys, and the sync/health vocabularies.
//!
//! This crate is types only (no I/O): every other crate speaks in these terms, and they
//! (de)serialise exactly as Argo CD's `argoproj.io/v1alpha1` manifests do, so users bring
//! their manifests unchanged. Fields plumb does not model are kept in `extra` maps rather
//! than dropped, so a read-modify-write never loses data. `crd` generates the Application
//! and AppProject CustomResourceDefinitions from these types.

pub mod application;
pub mod crd;
pub mod go_json;
pub mod merge_patch;
pub mod patch_meta;
pub mod project;
pub mod resource;
pub mod status;

pub use application::*;
pub use project::*;
pub use resource::*;
pub use status::*;
