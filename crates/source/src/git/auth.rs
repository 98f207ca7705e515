//! How credentials reach git: environment variables read by an askpass helper, and files
//! (ssh key, client certificate, CA) in a private temporary directory. Never arguments.

use std::ffi::OsString;
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::creds::Credentials;
use crate::url::{RepoUrl, Transport};

/// The environment and `-c` options one git invocation needs, plus the temporary files they
/// point at (removed when this is dropped).
pub(crate) struct GitAuth {
    pub env: Vec<(OsString, OsString)>,
    /// `-c key=value` options; only file paths and switches, never secrets.
    pub config: Vec<String>,
    _files: Option<tempfile::TempDir>,
}

/// The askpass helper: answers git's username/password prompts from the environment of the
/// git process it is started by, so secrets never touch a command line or a file.
pub(crate) const ASKPASS_SCRIPT: &str = "#!/bin/sh\n\
case \"$1\" in\n\
  Username*|username*) printf '%s\\n' \"$PLUMB_GIT_USERNAME\" ;;\n\
  *) printf '%s\\n' \"$PLUMB_GIT_PASSWORD\" ;;\n\
esac\n";

pub(crate) fn write_askpass(dir: &Path) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;
    let path = dir.join("askpass.sh");
    let tmp = dir.join(format!("askpass.sh.{}", std::process::id()));
    std::fs::write(&tmp, ASKPASS_SCRIPT)?;
    std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o700))?;
    std::fs::rename(&tmp, &path)?;
    Ok(path)
}

fn private_file(dir: &Path, name: &str, contents: &str) -> std::io::Result<PathBuf> {
    use std::os::unix::fs::OpenOptionsExt;
    let path = dir.join(name);
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&path)?;
    file.write_all(contents.as_bytes())?;
    if !contents.ends_with('\n') {
        file.write_all(b"\n")?;
    }
    Ok(path)
}

/// Single-quotes a path for `GIT_SSH_COMMAND`, which git runs through a shell.
fn shell_quote(path: &Path) -> String {
    format!("'{}'", path.display().to_string().replace('\'', "'\\''"))
}

pub(crate) struct AuthContext<'a> {
    pub askpass: &'a Path,
    pub scratch: &'a Path,
    pub known_hosts: Option<&'a Path>,
    pub allow_file: bool,
}

pub(crate) fn git_auth(
    url: &RepoUrl,
    creds: Option<&Credentials>,
    ctx: &AuthContext<'_>,
) -> std::io::Result<GitAuth> {
    let mut env: Vec<(OsString, OsString)> = vec![
        ("GIT_TERMINAL_PROMPT".into(), "0".into()),
        ("GIT_ASKPASS".into(), ctx.askpass.into()),
        ("SSH_ASKPASS".into(), ctx.askpass.into()),
        // The user's and the system's git configuration do not apply to plumb's mirrors.
        ("GIT_CONFIG_NOSYSTEM".into(), "1".into()),
        ("GIT_CONFIG_GLOBAL".into(), "/dev/null".into()),
        // Messages are classified (auth failed, not found), so they must be in English.
        ("LC_ALL".into(), "C".into()),
        ("LANGUAGE".into(), "C".into()),
        (
            "GIT_ALLOW_PROTOCOL".into(),
            if ctx.allow_file {
                "https:http:ssh:file".into()
            } else {
                "https:http:ssh".into()
            },
        ),
        ("PLUMB_GIT_USERNAME".into(), "".into()),
        ("PLUMB_GIT_PASSWORD".into(), "".into()),
    ];
    let mut config = vec!["credential.helper=".to_string()];
    let Some(creds) = creds else {
        if url.transport() == Transport::Ssh {
            env.push((
                "GIT_SSH_COMMAND".into(),
                ssh_command(None, ctx, false).into(),
            ));
        }
        return Ok(GitAuth {
            env,
            config,
            _files: None,
        });
    };
    let files = tempfile::Builder::new()
        .prefix("auth-")
        .tempdir_in(ctx.scratch)?;
    match url.transport() {
        Transport::Https | Transport::Http => {
            if let Some(password) = &creds.password {
                let username = creds
                    .username
                    .clone()
                    .or_else(|| url.user().map(str::to_string))
                    .unwrap_or_else(|| "git".to_string());
                env.retain(|(k, _)| k != "PLUMB_GIT_USERNAME" && k != "PLUMB_GIT_PASSWORD");
                env.push(("PLUMB_GIT_USERNAME".into(), username.into()));
                env.push(("PLUMB_GIT_PASSWORD".into(), password.into()));
            }
            if creds.insecure {
                env.push(("GIT_SSL_NO_VERIFY".into(), "true".into()));
            }
            if let (Some(cert), Some(key)) =
                (&creds.tls_client_cert_data, &creds.tls_client_cert_key)
            {
                let cert = private_file(files.path(), "client.crt", cert)?;
                let key = private_file(files.path(), "client.key", key)?;
                config.push(format!("http.sslCert={}", cert.display()));
                config.push(format!("http.sslKey={}", key.display()));
            }
            if let Some(ca) = &creds.tls_ca_data {
                let ca = private_file(files.path(), "ca.crt", ca)?;
                config.push(format!("http.sslCAInfo={}", ca.display()));
            }
            if let Some(proxy) = &creds.proxy {
                env.push(("https_proxy".into(), proxy.into()));
                env.push(("http_proxy".into(), proxy.into()));
            }
        }
        Transport::Ssh => {
            let key = match &creds.ssh_private_key {
                Some(key) => Some(private_file(files.path(), "id", key)?),
                None => None,
            };
            env.push((
                "GIT_SSH_COMMAND".into(),
                ssh_command(key.as_deref(), ctx, creds.insecure).into(),
            ));
        }
        Transport::File => {}
    }
    Ok(GitAuth {
        env,
        config,
        _files: Some(files),
    })
}

fn ssh_command(key: Option<&Path>, ctx: &AuthContext<'_>, insecure: bool) -> String {
    let mut cmd = "ssh -F /dev/null -o BatchMode=yes -o IdentitiesOnly=yes -o IdentityAgent=none \
                   -o ConnectTimeout=30"
        .to_string();
    if insecure {
        cmd.push_str(" -o StrictHostKeyChecking=no -o UserKnownHostsFile=/dev/null");
    } else {
        let known = ctx
            .known_hosts
            .map(shell_quote)
            .unwrap_or_else(|| "/dev/null".to_string());
        cmd.push_str(&format!(
            " -o StrictHostKeyChecking=yes -o UserKnownHostsFile={known}"
        ));
    }
    match key {
        Some(key) => cmd.push_str(&format!(" -i {}", shell_quote(key))),
        None => cmd.push_str(" -o IdentityFile=none"),
    }
    cmd
}
