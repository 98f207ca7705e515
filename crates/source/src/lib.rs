//! Git repositories and manifest rendering (directory, Kustomize, Helm, Jsonnet).
