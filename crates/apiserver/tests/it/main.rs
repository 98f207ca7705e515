//! Integration tests of the embedded API server: real servers on temp dirs and free
//! ports, driven by the test cluster's kubectl and by kube-rs.

mod bad_input;
mod core_kinds;
mod crds;
mod discovery;
mod kubectl;
mod metadata;
mod persistence;
mod protobuf;
mod semantics;
mod support;
mod unknown_fields;
mod watch;
mod workloads;
