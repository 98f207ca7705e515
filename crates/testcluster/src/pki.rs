//! Certificates and keys for one disposable cluster: a CA, the API server's serving
//! certificate, an admin client certificate (group `system:masters`) and the key that signs
//! service-account tokens. Everything is generated fresh per cluster and lives in its temporary
//! directory.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};

use crate::Error;

/// Paths of the generated files (PEM).
#[derive(Debug, Clone)]
pub(crate) struct Pki {
    pub ca_cert: PathBuf,
    pub ca_key: PathBuf,
    pub serving_cert: PathBuf,
    pub serving_key: PathBuf,
    pub service_account_key: PathBuf,
    pub service_account_public_key: PathBuf,
    /// PEM contents for the kubeconfig (embedded, so the kubeconfig works on its own).
    pub ca_pem: String,
    pub admin_cert_pem: String,
    pub admin_key_pem: String,
}

fn pki_err(detail: impl ToString) -> Error {
    Error::Pki(detail.to_string())
}

fn write(path: &Path, contents: &str) -> Result<(), Error> {
    std::fs::write(path, contents).map_err(|source| Error::Io {
        what: format!("writing {}", path.display()),
        source,
    })
}

/// Generates the material into `dir`.
pub(crate) fn generate(dir: &Path) -> Result<Pki, Error> {
    let ca_key = KeyPair::generate().map_err(pki_err)?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "plumb-testcluster-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca_params.self_signed(&ca_key).map_err(pki_err)?;
    let ca_key_pem = ca_key.serialize_pem();
    let issuer = Issuer::new(ca_params, ca_key);

    // The names a client may use: loopback, and the in-cluster service names, so that the
    // same certificate serves `https://kubernetes.default.svc` style kubeconfigs too.
    let serving_key = KeyPair::generate().map_err(pki_err)?;
    let mut serving_params = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "localhost".to_string(),
        "10.0.0.1".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
        "kubernetes.default.svc.cluster.local".to_string(),
    ])
    .map_err(pki_err)?;
    serving_params
        .distinguished_name
        .push(DnType::CommonName, "kube-apiserver");
    serving_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving_params
        .signed_by(&serving_key, &issuer)
        .map_err(pki_err)?;

    let admin_key = KeyPair::generate().map_err(pki_err)?;
    let mut admin_params = CertificateParams::new(Vec::<String>::new()).map_err(pki_err)?;
    admin_params
        .distinguished_name
        .push(DnType::CommonName, "plumb-admin");
    admin_params
        .distinguished_name
        .push(DnType::OrganizationName, "system:masters");
    admin_params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin_params
        .signed_by(&admin_key, &issuer)
        .map_err(pki_err)?;

    let service_account_key = KeyPair::generate().map_err(pki_err)?;

    let pki = Pki {
        ca_cert: dir.join("ca.crt"),
        ca_key: dir.join("ca.key"),
        serving_cert: dir.join("apiserver.crt"),
        serving_key: dir.join("apiserver.key"),
        service_account_key: dir.join("service-account.key"),
        service_account_public_key: dir.join("service-account.pub"),
        ca_pem: ca_cert.pem(),
        admin_cert_pem: admin_cert.pem(),
        admin_key_pem: admin_key.serialize_pem(),
    };
    write(&pki.ca_cert, &pki.ca_pem)?;
    write(&pki.ca_key, &ca_key_pem)?;
    write(&pki.serving_cert, &serving_cert.pem())?;
    write(&pki.serving_key, &serving_key.serialize_pem())?;
    write(
        &pki.service_account_key,
        &service_account_key.serialize_pem(),
    )?;
    // kube-apiserver reads verification keys only as public keys (PKIX), not from PKCS#8.
    write(
        &pki.service_account_public_key,
        &service_account_key.public_key_pem(),
    )?;
    Ok(pki)
}

/// A kubeconfig with the admin credential and CA embedded.
pub(crate) fn kubeconfig(pki: &Pki, server_url: &str) -> String {
    use base64::Engine as _;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: plumb-testcluster
  cluster:
    server: {server_url}
    certificate-authority-data: {ca}
users:
- name: plumb-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: plumb-testcluster
  context:
    cluster: plumb-testcluster
    user: plumb-admin
    namespace: default
current-context: plumb-testcluster
",
        ca = b64(&pki.ca_pem),
        cert = b64(&pki.admin_cert_pem),
        key = b64(&pki.admin_key_pem),
    )
}
