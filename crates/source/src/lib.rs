//! Git repositories and manifest rendering (directory, Kustomize, Helm, Jsonnet).
//!
//! The flow: [`url`] parses and normalises a repository URL; [`creds`] finds its credentials
//! among Argo CD-style repository Secrets; [`git`] resolves the revision with one ls-remote,
//! fetches into a bare mirror only what is missing, and exposes a read-only checkout of the
//! commit; [`render`] turns a path of that checkout into Kubernetes objects; [`cache`] keeps
//! rendered results; [`service`] ties them together for the controller and the CLI.

pub mod cache;
pub mod command;
pub mod creds;
pub mod git;
pub mod jsonnet_worker;
pub mod paths;
pub mod render;
pub mod service;
pub mod url;

pub use cache::{RenderCache, RenderKey};
pub use creds::{CredentialStore, Credentials, RepositorySecret, SecretType};
pub use git::{
    Checkout, CommitMetadata, GitCache, GitConfig, GitError, GpgError, PublicKey, ResolvedRevision,
    SignatureInfo, SignatureRejection,
};
pub use render::{Manifest, RenderError, RenderOptions, SourceType, Tools};
pub use service::{RenderRequest, RenderedSource, SourceConfig, SourceError, SourceService};
pub use url::{RepoUrl, Transport, UrlError, UrlPolicy};
