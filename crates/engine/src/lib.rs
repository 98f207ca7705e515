//! Compare, health and sync with Argo CD semantics.
//!
//! The pure cores — [`health`], [`lua`], [`sync`] planning, [`diff`] and [`tracking`] — work
//! on manifests as `serde_json::Value` and do no I/O; they are tested with golden data and
//! property tests. [`settings`] reads Argo CD's `argocd-cm` and customization directories.

pub mod actions;
pub mod client_apply;
pub mod cluster;
pub mod diff;
pub mod health;
pub mod json;
pub mod lua;
pub mod settings;
pub mod sync;
pub mod tracking;
