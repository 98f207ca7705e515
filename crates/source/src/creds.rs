//! Repository credentials as Argo CD stores them: Secrets labelled
//! `argocd.argoproj.io/secret-type: repository` (one repository) or `repo-creds` (a template
//! matched by URL prefix).
//!
//! Values here are secret. `Debug` prints field names only; nothing in this module formats a
//! password, token or key into a message.

use std::collections::BTreeMap;
use std::fmt;

use crate::url::{RepoUrl, UrlError, UrlPolicy};

/// The label that marks a Secret as repository configuration.
pub const SECRET_TYPE_LABEL: &str = "argocd.argoproj.io/secret-type";

/// Which kind of Argo CD repository Secret a credential came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SecretType {
    /// `repository`: one repository, matched by its exact (normalised) URL.
    Repository,
    /// `repo-creds`: a credential template, matched by URL prefix.
    RepoCreds,
}

impl SecretType {
    /// From the value of the `argocd.argoproj.io/secret-type` label.
    pub fn from_label(value: &str) -> Option<SecretType> {
        match value {
            "repository" => Some(SecretType::Repository),
            "repo-creds" => Some(SecretType::RepoCreds),
            _ => None,
        }
    }
}

/// The credential part of a repository Secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Credentials {
    pub username: Option<String>,
    pub password: Option<String>,
    /// PEM private key for ssh.
    pub ssh_private_key: Option<String>,
    /// Skip TLS verification (https) or host-key checking (ssh).
    pub insecure: bool,
    pub tls_client_cert_data: Option<String>,
    pub tls_client_cert_key: Option<String>,
    /// PEM bundle of CAs to trust for this repository (Argo CD keeps these in
    /// `argocd-tls-certs-cm`; a repository may carry its own here).
    pub tls_ca_data: Option<String>,
    pub force_http_basic_auth: bool,
    pub enable_oci: bool,
    /// Talk plain HTTP to an OCI registry (Argo CD's `insecureOCIForceHttp`).
    pub insecure_oci_force_http: bool,
    pub enable_lfs: bool,
    pub proxy: Option<String>,
}

impl Credentials {
    pub fn is_empty(&self) -> bool {
        self.username.is_none()
            && self.password.is_none()
            && self.ssh_private_key.is_none()
            && self.tls_client_cert_data.is_none()
    }
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username.as_ref().map(|_| "<set>"))
            .field("password", &self.password.as_ref().map(|_| "<redacted>"))
            .field(
                "ssh_private_key",
                &self.ssh_private_key.as_ref().map(|_| "<redacted>"),
            )
            .field("insecure", &self.insecure)
            .field(
                "tls_client_cert",
                &self.tls_client_cert_data.as_ref().map(|_| "<set>"),
            )
            .finish_non_exhaustive()
    }
}

/// One repository Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepositorySecret {
    pub secret_type: SecretType,
    /// The URL (or, for `repo-creds`, URL prefix) as written.
    pub url: String,
    /// `git` (default) or `helm`.
    pub repo_type: String,
    pub name: Option<String>,
    pub project: Option<String>,
    pub credentials: Credentials,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CredentialsError {
    #[error("repository Secret {secret:?} has no `url`")]
    MissingUrl { secret: String },
    #[error("repository Secret {secret:?}: field `{field}` must be \"true\" or \"false\"")]
    BadBool { secret: String, field: &'static str },
    #[error("repository Secret {secret:?}: {source}")]
    BadUrl {
        secret: String,
        #[source]
        source: UrlError,
    },
}

impl RepositorySecret {
    /// Builds one from a Secret's decoded `data` (or `stringData`) map. `secret` names the
    /// Secret in errors.
    pub fn from_secret_data(
        secret: &str,
        secret_type: SecretType,
        data: &BTreeMap<String, String>,
    ) -> Result<RepositorySecret, CredentialsError> {
        let text = |key: &str| {
            data.get(key)
                .map(|v| v.to_string())
                .filter(|v| !v.is_empty())
        };
        let flag = |key: &'static str| -> Result<bool, CredentialsError> {
            match data.get(key).map(|v| v.trim()) {
                None | Some("") | Some("false") => Ok(false),
                Some("true") => Ok(true),
                Some(_) => Err(CredentialsError::BadBool {
                    secret: secret.to_string(),
                    field: key,
                }),
            }
        };
        let url = text("url").ok_or_else(|| CredentialsError::MissingUrl {
            secret: secret.to_string(),
        })?;
        Ok(RepositorySecret {
            secret_type,
            url: url.trim().to_string(),
            repo_type: text("type").unwrap_or_else(|| "git".to_string()),
            name: text("name"),
            project: text("project"),
            credentials: Credentials {
                username: text("username"),
                password: text("password"),
                ssh_private_key: text("sshPrivateKey"),
                insecure: flag("insecure")?,
                tls_client_cert_data: text("tlsClientCertData"),
                tls_client_cert_key: text("tlsClientCertKey"),
                tls_ca_data: text("tlsCACertData"),
                force_http_basic_auth: flag("forceHttpBasicAuth")?,
                enable_oci: flag("enableOCI")?,
                insecure_oci_force_http: flag("insecureOCIForceHttp")?,
                enable_lfs: flag("enableLfs")?,
                proxy: text("proxy"),
            },
        })
    }
}

/// All repository Secrets, answering "which credentials for this URL?".
#[derive(Debug, Clone, Default)]
pub struct CredentialStore {
    repositories: Vec<(String, RepositorySecret)>,
    templates: Vec<(String, RepositorySecret)>,
}

impl CredentialStore {
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds a Secret. Its URL is normalised the way fetched URLs are, so both spellings of a
    /// repository match (`repo-creds` prefixes are compared on the normal form too).
    pub fn insert(&mut self, secret: RepositorySecret) -> Result<(), CredentialsError> {
        let policy = UrlPolicy { allow_file: true };
        let key = match secret.secret_type {
            // An OCI registry written without a scheme (`registry.example/charts`, as Argo
            // CD's own examples do) is not a scp-like git URL.
            SecretType::Repository if secret.repo_type == "helm" && !secret.url.contains("://") => {
                secret.url.trim_end_matches('/').to_string()
            }
            SecretType::Repository => match RepoUrl::parse(&secret.url, policy) {
                Ok(url) => url.normalized().to_string(),
                // Helm repositories and OCI registries are not git URLs; match them as written.
                Err(_) if secret.repo_type == "helm" => {
                    secret.url.trim_end_matches('/').to_string()
                }
                Err(source) => {
                    return Err(CredentialsError::BadUrl {
                        secret: secret.url.clone(),
                        source,
                    });
                }
            },
            SecretType::RepoCreds => normalize_prefix(&secret.url),
        };
        match secret.secret_type {
            SecretType::Repository => self.repositories.push((key, secret)),
            SecretType::RepoCreds => self.templates.push((key, secret)),
        }
        Ok(())
    }

    /// The credentials for `url`: its own `repository` Secret when that carries credentials,
    /// else the `repo-creds` template with the longest matching prefix (Argo CD's rule).
    pub fn lookup(&self, url: &RepoUrl) -> Option<&Credentials> {
        self.lookup_key(url.normalized())
    }

    /// Same as [`lookup`](Self::lookup) for a URL that is not a git URL (Helm repositories).
    pub fn lookup_key(&self, key: &str) -> Option<&Credentials> {
        let key = key.trim_end_matches('/');
        if let Some((_, secret)) = self
            .repositories
            .iter()
            .find(|(k, s)| k == key && !s.credentials.is_empty())
        {
            return Some(&secret.credentials);
        }
        self.templates
            .iter()
            .filter(|(prefix, _)| key.starts_with(prefix.as_str()))
            .max_by_key(|(prefix, _)| prefix.len())
            .map(|(_, secret)| &secret.credentials)
    }

    /// The `repository` Secret registered for `url`, if any (for its non-credential fields).
    pub fn repository(&self, url: &RepoUrl) -> Option<&RepositorySecret> {
        self.repositories
            .iter()
            .find(|(k, _)| k == url.normalized())
            .map(|(_, s)| s)
    }
}

/// A `repo-creds` prefix in the same normal form as full URLs, without the `.git` stripping
/// (a prefix is not a repository).
fn normalize_prefix(prefix: &str) -> String {
    let prefix = prefix.trim();
    if let Some(rest) = prefix.strip_prefix("git@")
        && let Some((host, path)) = rest.split_once(':')
    {
        return format!("ssh://git@{}/{}", host.to_ascii_lowercase(), path);
    }
    match prefix.split_once("://") {
        Some((scheme, rest)) => {
            let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
            let host = host.rsplit_once('@').map_or(host, |(_, h)| h);
            let scheme = scheme.to_ascii_lowercase();
            let keep_user = scheme == "ssh";
            let user = if keep_user {
                rest.split_once('/')
                    .map_or(rest, |(a, _)| a)
                    .rsplit_once('@')
                    .map(|(u, _)| format!("{u}@"))
                    .unwrap_or_default()
            } else {
                String::new()
            };
            format!("{scheme}://{user}{}/{}", host.to_ascii_lowercase(), path)
        }
        None => prefix.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn builds_from_argo_cd_secret_fields() {
        let secret = RepositorySecret::from_secret_data(
            "repo-1",
            SecretType::Repository,
            &data(&[
                ("url", "https://git.example/org/app.git"),
                ("username", "alice"),
                ("password", "hunter2"),
                ("insecure", "true"),
                ("type", "git"),
            ]),
        )
        .expect("valid");
        assert_eq!(secret.credentials.username.as_deref(), Some("alice"));
        assert!(secret.credentials.insecure);
        let debug = format!("{secret:?}");
        assert!(
            !debug.contains("hunter2") && !debug.contains("alice"),
            "{debug}"
        );

        let err = RepositorySecret::from_secret_data(
            "bad",
            SecretType::Repository,
            &data(&[("url", "https://x/y"), ("insecure", "yes")]),
        )
        .expect_err("bad bool");
        assert!(err.to_string().contains("insecure"));
        let err = RepositorySecret::from_secret_data("nourl", SecretType::RepoCreds, &data(&[]))
            .expect_err("no url");
        assert!(err.to_string().contains("url"));
    }

    #[test]
    fn exact_repository_beats_longest_template_prefix() {
        let mut store = CredentialStore::new();
        let add = |store: &mut CredentialStore, ty, url: &str, user: &str| {
            store
                .insert(
                    RepositorySecret::from_secret_data(
                        "s",
                        ty,
                        &data(&[("url", url), ("username", user), ("password", "p")]),
                    )
                    .expect("secret"),
                )
                .expect("insert");
        };
        add(
            &mut store,
            SecretType::RepoCreds,
            "https://git.example/",
            "org-wide",
        );
        add(
            &mut store,
            SecretType::RepoCreds,
            "https://git.example/team",
            "team",
        );
        add(
            &mut store,
            SecretType::Repository,
            "https://git.example/team/special.git",
            "own",
        );
        let user = |url: &str| {
            let url = RepoUrl::parse(url, UrlPolicy::default()).expect("url");
            store
                .lookup(&url)
                .and_then(|c| c.username.clone())
                .unwrap_or_default()
        };
        assert_eq!(user("https://GIT.example/team/special"), "own");
        assert_eq!(user("https://git.example/team/other.git"), "team");
        assert_eq!(user("https://git.example/else/x"), "org-wide");
        assert_eq!(user("https://elsewhere.example/x/y"), "");
    }

    #[test]
    fn helm_registries_without_a_scheme_match_as_written() {
        let mut store = CredentialStore::new();
        store
            .insert(
                RepositorySecret::from_secret_data(
                    "oci",
                    SecretType::Repository,
                    &data(&[
                        ("url", "registry.example:5000/charts"),
                        ("type", "helm"),
                        ("enableOCI", "true"),
                        ("username", "u"),
                    ]),
                )
                .expect("secret"),
            )
            .expect("insert");
        let creds = store
            .lookup_key("registry.example:5000/charts")
            .expect("found");
        assert!(creds.enable_oci);
        assert!(
            store
                .lookup_key("ssh://registry.example/5000/charts")
                .is_none()
        );
    }

    #[test]
    fn repository_without_credentials_inherits_template() {
        let mut store = CredentialStore::new();
        store
            .insert(
                RepositorySecret::from_secret_data(
                    "t",
                    SecretType::RepoCreds,
                    &data(&[("url", "git@git.example:org"), ("sshPrivateKey", "KEY")]),
                )
                .expect("secret"),
            )
            .expect("insert");
        store
            .insert(
                RepositorySecret::from_secret_data(
                    "r",
                    SecretType::Repository,
                    &data(&[("url", "git@git.example:org/app.git")]),
                )
                .expect("secret"),
            )
            .expect("insert");
        let url =
            RepoUrl::parse("ssh://git@git.example/org/app", UrlPolicy::default()).expect("url");
        assert_eq!(
            store
                .lookup(&url)
                .and_then(|c| c.ssh_private_key.as_deref()),
            Some("KEY")
        );
    }
}
