//! Compare, health and sync with Argo CD semantics.
