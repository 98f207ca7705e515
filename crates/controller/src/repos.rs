//! Repository credentials from Argo CD's labelled Secrets in the control-plane namespace
//! (`argocd.argoproj.io/secret-type: repository` or `repo-creds`), turned into the source
//! layer's [`CredentialStore`]. Pure: the watch in `lib.rs` feeds it the Secrets' data.

use plumb_source::creds::{CredentialStore, RepositorySecret, SecretType};
use std::collections::BTreeMap;

/// The label selector of the Secrets read here.
pub const REPO_SECRET_SELECTOR: &str = "argocd.argoproj.io/secret-type in (repository,repo-creds)";

/// One repository Secret as the watch saw it: its type and its decoded data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RepoSecretData {
    pub secret_type: SecretType,
    pub data: BTreeMap<String, String>,
}

/// The store built from every readable Secret, and one message per Secret left out (it
/// names the Secret and what is wrong; it never holds a credential).
pub fn credential_store(
    secrets: &BTreeMap<String, RepoSecretData>,
) -> (CredentialStore, Vec<String>) {
    let mut store = CredentialStore::new();
    let mut problems = Vec::new();
    for (name, secret) in secrets {
        let parsed = RepositorySecret::from_secret_data(name, secret.secret_type, &secret.data)
            .and_then(|parsed| store.insert(parsed));
        if let Err(error) = parsed {
            problems.push(format!("Secret {name} is left out: {error}"));
        }
    }
    (store, problems)
}

/// A Secret's name and what it holds, when it is labelled as a repository Secret.
pub fn parse_secret(
    secret: k8s_openapi::api::core::v1::Secret,
) -> Option<(String, RepoSecretData)> {
    let name = secret.metadata.name.clone()?;
    let secret_type = secret
        .metadata
        .labels
        .as_ref()?
        .get(plumb_source::creds::SECRET_TYPE_LABEL)
        .and_then(|v| SecretType::from_label(v))?;
    let data = decode_secret_data(&secret.data.unwrap_or_default());
    Some((name, RepoSecretData { secret_type, data }))
}

/// A Secret's `data` decoded as text; values that are not UTF-8 are left out (no field
/// Argo CD reads from a repository Secret is binary).
pub fn decode_secret_data(
    data: &BTreeMap<String, k8s_openapi::ByteString>,
) -> BTreeMap<String, String> {
    data.iter()
        .filter_map(|(key, value)| {
            String::from_utf8(value.0.clone())
                .ok()
                .map(|text| (key.clone(), text))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use plumb_source::url::{RepoUrl, UrlPolicy};

    fn secret(kind: SecretType, pairs: &[(&str, &str)]) -> RepoSecretData {
        RepoSecretData {
            secret_type: kind,
            data: pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn repositories_and_templates_match_and_bad_secrets_are_named() {
        let mut secrets = BTreeMap::new();
        secrets.insert(
            "private-repo".to_string(),
            secret(
                SecretType::Repository,
                &[
                    ("url", "https://git.example/team/app.git"),
                    ("username", "ci"),
                    ("password", "s3cret"),
                ],
            ),
        );
        secrets.insert(
            "org-creds".to_string(),
            secret(
                SecretType::RepoCreds,
                &[("url", "https://git.example/org"), ("password", "t0ken")],
            ),
        );
        secrets.insert(
            "no-url".to_string(),
            secret(SecretType::Repository, &[("password", "x")]),
        );
        secrets.insert(
            "bad-flag".to_string(),
            secret(
                SecretType::Repository,
                &[("url", "https://git.example/x.git"), ("insecure", "yes")],
            ),
        );
        let (store, problems) = credential_store(&secrets);
        let url = |u: &str| RepoUrl::parse(u, UrlPolicy::default()).expect("url");
        let own = store
            .lookup(&url("https://git.example/team/app"))
            .expect("repository credentials");
        assert_eq!(own.password.as_deref(), Some("s3cret"));
        let templated = store
            .lookup(&url("https://git.example/org/service.git"))
            .expect("template credentials");
        assert_eq!(templated.password.as_deref(), Some("t0ken"));
        assert!(store.lookup(&url("https://other.example/x.git")).is_none());
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems.iter().any(|p| p.contains("no-url")));
        assert!(problems.iter().any(|p| p.contains("bad-flag")));
        for problem in &problems {
            assert!(!problem.contains("s3cret") && !problem.contains("t0ken"));
        }
    }

    #[test]
    fn a_repository_secret_without_credentials_leaves_the_template_in_force() {
        let mut secrets = BTreeMap::new();
        secrets.insert(
            "repo".to_string(),
            secret(
                SecretType::Repository,
                &[
                    ("url", "http://127.0.0.1:36135/private/private.git"),
                    ("username", ""),
                    ("password", ""),
                ],
            ),
        );
        secrets.insert(
            "creds".to_string(),
            secret(
                SecretType::RepoCreds,
                &[
                    ("url", "http://127.0.0.1:36135/private/"),
                    ("username", "alice"),
                    ("password", "pw"),
                ],
            ),
        );
        let (store, problems) = credential_store(&secrets);
        assert!(problems.is_empty(), "{problems:?}");
        let url = RepoUrl::parse(
            "http://127.0.0.1:36135/private/private.git",
            UrlPolicy::default(),
        )
        .expect("url");
        let found = store.lookup(&url).expect("the template's credentials");
        assert_eq!(found.username.as_deref(), Some("alice"));
    }

    #[test]
    fn non_text_values_are_left_out() {
        let mut data = BTreeMap::new();
        data.insert(
            "url".to_string(),
            k8s_openapi::ByteString(b"https://a/b".to_vec()),
        );
        data.insert(
            "blob".to_string(),
            k8s_openapi::ByteString(vec![0xff, 0xfe]),
        );
        let decoded = decode_secret_data(&data);
        assert_eq!(decoded.len(), 1);
        assert_eq!(decoded["url"], "https://a/b");
    }
}
