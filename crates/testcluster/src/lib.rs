//! Test support: start a real Kubernetes control plane built from Go modules.
