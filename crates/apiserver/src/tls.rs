//! TLS material (CA, serving certificate) and the bearer token, created on first start and
//! kept in the data directory.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use crate::Error;

const CA_FILE: &str = "ca.crt";
const CERT_FILE: &str = "server.crt";
const KEY_FILE: &str = "server.key";
const TOKEN_FILE: &str = "token";

/// What the HTTPS listener and clients need.
pub(crate) struct Material {
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
    pub token: String,
}

fn tls_err(path: &Path, detail: impl ToString) -> Error {
    Error::Tls {
        path: path.to_path_buf(),
        detail: detail.to_string(),
    }
}

fn read(path: PathBuf) -> Result<String, Error> {
    std::fs::read_to_string(&path).map_err(|source| Error::Io { path, source })
}

/// Loads the material, or creates all of it when none exists. A partial set is an error
/// (something removed files by hand) rather than a silent regeneration that would break
/// every kubeconfig already handed out.
pub(crate) fn load_or_create(dir: &Path) -> Result<Material, Error> {
    let names = [CA_FILE, CERT_FILE, KEY_FILE, TOKEN_FILE];
    let present: Vec<bool> = names.iter().map(|n| dir.join(n).exists()).collect();
    if present.iter().all(|p| *p) {
        let material = Material {
            ca_pem: read(dir.join(CA_FILE))?,
            cert_pem: read(dir.join(CERT_FILE))?,
            key_pem: read(dir.join(KEY_FILE))?,
            token: read(dir.join(TOKEN_FILE))?.trim().to_string(),
        };
        if material.token.is_empty() {
            return Err(tls_err(&dir.join(TOKEN_FILE), "the token file is empty"));
        }
        return Ok(material);
    }
    if present.iter().any(|p| *p) {
        let missing: Vec<&str> = names
            .iter()
            .zip(&present)
            .filter(|(_, p)| !**p)
            .map(|(n, _)| *n)
            .collect();
        return Err(tls_err(
            dir,
            format!(
                "incomplete: {} missing (remove ca.crt, server.crt, server.key and token to generate new ones; existing kubeconfigs stop working)",
                missing.join(", ")
            ),
        ));
    }
    let material = generate().map_err(|e| tls_err(dir, e))?;
    std::fs::write(dir.join(CA_FILE), &material.ca_pem).map_err(|source| Error::Io {
        path: dir.join(CA_FILE),
        source,
    })?;
    std::fs::write(dir.join(CERT_FILE), &material.cert_pem).map_err(|source| Error::Io {
        path: dir.join(CERT_FILE),
        source,
    })?;
    write_private_file(&dir.join(KEY_FILE), material.key_pem.as_bytes())?;
    // The token goes last: its presence marks the set as complete.
    write_private_file(
        &dir.join(TOKEN_FILE),
        format!("{}\n", material.token).as_bytes(),
    )?;
    Ok(material)
}

fn generate() -> Result<Material, rcgen::Error> {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, KeyUsagePurpose};
    let ca_key = KeyPair::generate()?;
    let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "plumb-ca");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca_cert = ca_params.self_signed(&ca_key)?;
    let issuer = rcgen::Issuer::new(ca_params, ca_key);

    let server_key = KeyPair::generate()?;
    let mut params = CertificateParams::new(vec![
        "127.0.0.1".to_string(),
        "::1".to_string(),
        "localhost".to_string(),
        "kubernetes.default.svc".to_string(),
    ])?;
    params
        .distinguished_name
        .push(DnType::CommonName, "plumb-apiserver");
    params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::ServerAuth];
    let cert = params.signed_by(&server_key, &issuer)?;

    let mut token_bytes = [0u8; 32];
    rand::Rng::fill(&mut rand::rng(), &mut token_bytes[..]);
    let token = token_bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(Material {
        ca_pem: ca_cert.pem(),
        cert_pem: cert.pem(),
        key_pem: server_key.serialize_pem(),
        token,
    })
}

/// Writes a file readable only by its owner, atomically (temporary file + rename).
pub(crate) fn write_private_file(path: &Path, contents: &[u8]) -> Result<(), Error> {
    use std::os::unix::fs::OpenOptionsExt as _;
    let io = |source| Error::Io {
        path: path.to_path_buf(),
        source,
    };
    let tmp = path.with_extension("tmp");
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(io)?;
    file.write_all(contents).map_err(io)?;
    file.sync_all().map_err(io)?;
    std::fs::rename(&tmp, path).map_err(io)?;
    Ok(())
}

/// The rustls server configuration (HTTP/2 and HTTP/1.1 via ALPN).
pub(crate) fn server_config(material: &Material) -> Result<rustls::ServerConfig, Error> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let err = |d: String| Error::Tls {
        path: PathBuf::from(CERT_FILE),
        detail: d,
    };
    let certs = CertificateDer::pem_slice_iter(material.cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| err(format!("server.crt: {e}")))?;
    let key = PrivateKeyDer::from_pem_slice(material.key_pem.as_bytes())
        .map_err(|e| err(format!("server.key: {e}")))?;
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| err(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| err(e.to_string()))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(config)
}
