//! GnuPG signature verification, as Argo CD does it with AppProject `signatureKeys` and the
//! `argocd-gpg-keys-cm` ConfigMap.
//!
//! The source service owns a private GnuPG home under its cache directory (`gnupg/`, mode
//! 0700); nothing reads the user's `~/.gnupg`. Configured public keys (ASCII-armored, keyed
//! by key ID, exactly as the ConfigMap holds them) are checked one by one in a scratch home
//! first; only when every key is sound is a new home built with all of them and swapped in,
//! so a bad key leaves the keyring as it was. Every key in the keyring is trusted
//! (`trust-model always`): the keyring *is* the list of trusted keys, as in Argo CD.
//!
//! git verifies a commit's signature with that home (`%G?`, `%GK`, `%GF`, `%GP`); what a
//! render requires is decided by [`SignatureInfo::check_required`], a pure function.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::command::{self, CommandError, CommandSpec};

/// Written into every home plumb makes: never start an agent (public keys need none), and
/// trust what is in the keyring.
const GPG_CONF: &str = "no-autostart\ntrust-model always\n";

#[derive(Debug, thiserror::Error)]
pub enum GpgError {
    #[error(
        "GnuPG key {key_id:?}: the key ID must be 8, 16 or 40 hexadecimal digits (the \
         ConfigMap's keys are key IDs)"
    )]
    BadKeyId { key_id: String },
    #[error("GnuPG key {key_id}: not an ASCII-armored OpenPGP public key: {message}")]
    Malformed { key_id: String, message: String },
    #[error("GnuPG key {key_id}: holds a secret key; only public keys are accepted")]
    SecretKey { key_id: String },
    #[error("GnuPG key {key_id}: holds {count} keys; give each key under its own key ID")]
    SeveralKeys { key_id: String, count: usize },
    #[error("GnuPG key {key_id}: the armored key is {found}, not {key_id}")]
    KeyIdMismatch { key_id: String, found: String },
    #[error("gpg {operation}: {message}")]
    Failed {
        operation: &'static str,
        message: String,
    },
    #[error("gpg {operation}: {source}")]
    Command {
        operation: &'static str,
        #[source]
        source: CommandError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
}

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GpgError {
    let what = what.into();
    move |source| GpgError::Io { what, source }
}

/// One public key in the keyring.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    /// Long key ID (16 hex digits, upper case) of the primary key.
    pub key_id: String,
    pub fingerprint: String,
    pub user_ids: Vec<String>,
    /// Fingerprints of the subkeys (a signature may be made by one of them).
    pub subkey_fingerprints: Vec<String>,
}

/// A commit's signature as git and the keyring see it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SignatureInfo {
    /// The commit carries a signature (whatever its state).
    pub signed: bool,
    /// git's `%G?`: G good, B bad, U good with unknown validity, X/Y expired signature/key,
    /// R revoked key, E cannot be checked (key not in the keyring), N none.
    pub status: char,
    /// The ID of the key that made the signature (`%GK`), also when the key is unknown.
    pub key_id: Option<String>,
    /// Fingerprint of the signing (sub)key (`%GF`); only when the key is in the keyring.
    pub fingerprint: Option<String>,
    /// Fingerprint of its primary key (`%GP`).
    pub primary_fingerprint: Option<String>,
    /// The annotated tag whose own signature this is (`refs/tags/…`), when the revision
    /// named one; `None`: the commit's signature.
    pub tag: Option<String>,
}

/// A revision refused because it is not signed by a required key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "revision {sha} is not signed with a trusted key ({reason}); signature key IDs required: {}",
    required.join(", ")
)]
pub struct SignatureRejection {
    pub sha: String,
    pub reason: String,
    pub required: Vec<String>,
}

/// Upper-case hex without `0x` or spaces.
fn normalize_key_id(id: &str) -> String {
    let id = id.trim();
    let id = id
        .strip_prefix("0x")
        .or_else(|| id.strip_prefix("0X"))
        .unwrap_or(id);
    id.chars()
        .filter(|c| !c.is_whitespace())
        .collect::<String>()
        .to_ascii_uppercase()
}

fn valid_key_id(id: &str) -> bool {
    matches!(id.len(), 8 | 16 | 40) && id.chars().all(|c| c.is_ascii_hexdigit())
}

impl SignatureInfo {
    /// A good signature from a key in the keyring.
    pub fn trusted(&self) -> bool {
        self.status == 'G'
    }

    /// Whether the signature was made by the key `required` (a short or long key ID or a
    /// fingerprint, of the signing subkey or of its primary key).
    pub fn made_by(&self, required: &str) -> bool {
        let required = normalize_key_id(required);
        if required.is_empty() {
            return false;
        }
        let known = [&self.fingerprint, &self.primary_fingerprint, &self.key_id];
        known
            .into_iter()
            .flatten()
            .map(|k| normalize_key_id(k))
            .any(|k| k.ends_with(&required) || (k.len() >= 16 && required.ends_with(&k)))
    }

    /// Argo CD's rule: with `signatureKeys` set, the revision must carry a good signature by
    /// a trusted key that is one of them. `required` empty: anything goes.
    pub fn check_required(&self, sha: &str, required: &[String]) -> Result<(), SignatureRejection> {
        if required.is_empty() {
            return Ok(());
        }
        let key = self.key_id.clone().unwrap_or_else(|| "?".to_string());
        let reason = match self.status {
            _ if !self.signed || self.status == 'N' => match &self.tag {
                Some(tag) => format!("the annotated tag {tag} is not signed"),
                None => "the commit is not signed".to_string(),
            },
            'G' if required.iter().any(|r| self.made_by(r)) => return Ok(()),
            'G' => format!("it is signed with key {key}, which is not one of the required keys"),
            'E' => format!(
                "it is signed with key {key}, which is not in the GnuPG keyring \
                 (argocd-gpg-keys-cm)"
            ),
            'B' => format!("the signature by key {key} is bad"),
            'U' => format!("the signature by key {key} is of unknown validity"),
            'X' => format!("the signature by key {key} has expired"),
            'Y' => format!("key {key} has expired"),
            'R' => format!("key {key} is revoked"),
            other => format!("git reports signature status {other:?} for key {key}"),
        };
        Err(SignatureRejection {
            sha: sha.to_string(),
            reason,
            required: required.to_vec(),
        })
    }

    /// Parses `git log -1 --format=%G?%x00%GK%x00%GF%x00%GP`, given whether the commit object
    /// has a signature header.
    pub fn parse(output: &str, signed: bool) -> SignatureInfo {
        let mut fields = output.trim_end_matches('\n').split('\0');
        let mut next = || {
            fields
                .next()
                .map(str::trim)
                .filter(|v| !v.is_empty())
                .map(str::to_string)
        };
        let status = next().and_then(|s| s.chars().next()).unwrap_or('N');
        SignatureInfo {
            signed: signed || status != 'N',
            status,
            key_id: next(),
            fingerprint: next(),
            primary_fingerprint: next(),
            tag: None,
        }
    }
}

/// Parses gpg's machine-readable status lines (`[GNUPG:] GOODSIG …`), as `git verify-tag
/// --raw` prints them, into the same shape as git's `%G?` fields.
pub fn parse_status(status: &str) -> SignatureInfo {
    let mut info = SignatureInfo {
        status: 'N',
        ..Default::default()
    };
    for line in status.lines() {
        let Some(rest) = line.strip_prefix("[GNUPG:] ") else {
            continue;
        };
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let arg = |i: usize| fields.get(i).map(|s| s.to_ascii_uppercase());
        let code = match fields.first().copied() {
            Some("GOODSIG") => 'G',
            Some("BADSIG") => 'B',
            Some("EXPSIG") => 'X',
            Some("EXPKEYSIG") => 'Y',
            Some("REVKEYSIG") => 'R',
            Some("ERRSIG") => 'E',
            Some("VALIDSIG") => {
                // VALIDSIG <fpr> <date> <ts> <expiry> <version> <reserved> <pk algo> <hash
                // algo> <class> <primary fpr>
                info.fingerprint = arg(1);
                info.primary_fingerprint = arg(10).or_else(|| arg(1));
                continue;
            }
            _ => continue,
        };
        info.signed = true;
        // The first verdict wins; later lines only add detail.
        if info.status == 'N' {
            info.status = code;
            info.key_id = arg(1);
        }
    }
    info
}

/// Parses `gpg --with-colons` key listings: one [`PublicKey`] per `pub` record; `sec`
/// records are reported as such.
pub fn parse_colons(listing: &str) -> (Vec<PublicKey>, usize) {
    let mut keys: Vec<PublicKey> = Vec::new();
    let mut secret = 0;
    // Which record the next `fpr` belongs to.
    let mut in_subkey = false;
    for line in listing.lines() {
        let fields: Vec<&str> = line.split(':').collect();
        match fields.first().copied() {
            Some("pub") => {
                keys.push(PublicKey {
                    key_id: fields.get(4).unwrap_or(&"").to_ascii_uppercase(),
                    fingerprint: String::new(),
                    user_ids: Vec::new(),
                    subkey_fingerprints: Vec::new(),
                });
                in_subkey = false;
            }
            Some("sec") | Some("ssb") => secret += 1,
            Some("sub") => in_subkey = true,
            Some("fpr") => {
                let fpr = fields.get(9).unwrap_or(&"").to_ascii_uppercase();
                if let Some(key) = keys.last_mut() {
                    if in_subkey {
                        key.subkey_fingerprints.push(fpr);
                    } else if key.fingerprint.is_empty() {
                        key.fingerprint = fpr;
                    }
                }
            }
            Some("uid") => {
                if let Some(key) = keys.last_mut() {
                    key.user_ids.push(fields.get(9).unwrap_or(&"").to_string());
                }
            }
            _ => {}
        }
    }
    (keys, secret)
}

/// One GnuPG home: a directory and the keys imported into it.
#[derive(Debug)]
pub(crate) struct Home {
    pub dir: PathBuf,
    pub generation: u64,
    pub keys: Vec<PublicKey>,
}

/// The service's private keyring (a GnuPG home that is replaced whole on every change).
pub(crate) struct Keyring {
    root: PathBuf,
    gpg: PathBuf,
    timeout: Duration,
    current: RwLock<Arc<Home>>,
    /// The home before the current one: a verification started just before a swap may
    /// still be reading it.
    previous: RwLock<Option<Arc<Home>>>,
    generation: AtomicU64,
    changing: tokio::sync::Mutex<()>,
}

fn private_dir(dir: &Path) -> Result<(), GpgError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(io(format!("creating {}", dir.display())))?;
    // Also when it existed: gpg warns about (and some versions refuse) open homes.
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .map_err(io(format!("restricting {}", dir.display())))?;
    Ok(())
}

fn new_home(dir: &Path) -> Result<(), GpgError> {
    private_dir(dir)?;
    let conf = dir.join("gpg.conf");
    std::fs::write(&conf, GPG_CONF).map_err(io(format!("writing {}", conf.display())))
}

impl Keyring {
    /// Creates `root` (0700) with an empty home; homes left by an earlier run are removed
    /// (the keys are configuration and are set again by the caller).
    pub fn open(root: &Path, gpg: &Path, timeout: Duration) -> Result<Keyring, GpgError> {
        private_dir(root)?;
        if let Ok(entries) = std::fs::read_dir(root) {
            for entry in entries.flatten() {
                let _ = std::fs::remove_dir_all(entry.path());
            }
        }
        let dir = root.join("home-0");
        new_home(&dir)?;
        Ok(Keyring {
            root: root.to_path_buf(),
            gpg: gpg.to_path_buf(),
            timeout,
            current: RwLock::new(Arc::new(Home {
                dir,
                generation: 0,
                keys: Vec::new(),
            })),
            previous: RwLock::new(None),
            generation: AtomicU64::new(1),
            changing: tokio::sync::Mutex::new(()),
        })
    }

    pub fn gpg(&self) -> &Path {
        &self.gpg
    }

    pub fn current(&self) -> Arc<Home> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn gpg_in(&self, home: &Path) -> CommandSpec {
        CommandSpec::new(&self.gpg)
            .timeout(self.timeout)
            .without_inherited("GNUPG")
            .env("LC_ALL", "C")
            .arg("--homedir")
            .arg(home)
            .args(["--batch", "--no-tty", "--no-autostart"])
    }

    async fn run(
        &self,
        spec: CommandSpec,
        operation: &'static str,
        cancel: &CancellationToken,
    ) -> Result<command::CommandOutput, GpgError> {
        command::run(&spec, cancel)
            .await
            .map_err(|source| GpgError::Command { operation, source })
    }

    /// Checks one armored key in a scratch home: one public key whose ID is `key_id`.
    async fn inspect(
        &self,
        key_id: &str,
        armored: &str,
        scratch: &Path,
        cancel: &CancellationToken,
    ) -> Result<PublicKey, GpgError> {
        let normal = normalize_key_id(key_id);
        if !valid_key_id(&normal) {
            return Err(GpgError::BadKeyId {
                key_id: key_id.to_string(),
            });
        }
        let out = self
            .run(
                self.gpg_in(scratch)
                    .args(["--with-colons", "--import-options", "show-only", "--import"])
                    .stdin(armored.as_bytes().to_vec()),
                "show key",
                cancel,
            )
            .await?;
        let (keys, secret) = parse_colons(&String::from_utf8_lossy(&out.stdout));
        if secret > 0 {
            return Err(GpgError::SecretKey {
                key_id: key_id.to_string(),
            });
        }
        if !out.success || keys.is_empty() {
            let message = out
                .stderr
                .lines()
                .map(|l| l.trim_start_matches("gpg: ").trim())
                .filter(|l| !l.is_empty() && !l.contains("keybox") && !l.contains("trustdb"))
                .collect::<Vec<_>>()
                .join("; ");
            return Err(GpgError::Malformed {
                key_id: key_id.to_string(),
                message: if message.is_empty() {
                    "gpg found no key in it".to_string()
                } else {
                    message
                },
            });
        }
        if keys.len() > 1 {
            return Err(GpgError::SeveralKeys {
                key_id: key_id.to_string(),
                count: keys.len(),
            });
        }
        let key = keys.into_iter().next().ok_or_else(|| GpgError::Malformed {
            key_id: key_id.to_string(),
            message: "gpg found no key in it".to_string(),
        })?;
        let matches = std::iter::once(&key.fingerprint)
            .chain(&key.subkey_fingerprints)
            .any(|fpr| fpr.ends_with(&normal));
        if !matches {
            return Err(GpgError::KeyIdMismatch {
                key_id: key_id.to_string(),
                found: key.key_id,
            });
        }
        Ok(key)
    }

    /// Replaces the keyring with exactly `keys` (key ID → ASCII-armored public key). Every
    /// key is checked before anything changes; on any error the keyring stays as it was.
    pub async fn set_keys(
        &self,
        keys: &BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<Vec<PublicKey>, GpgError> {
        let _changing = self.changing.lock().await;
        let generation = self.generation.fetch_add(1, Ordering::SeqCst);
        let scratch = self.root.join(format!("check-{generation}"));
        let staging = self.root.join(format!("home-{generation}.tmp"));
        let result = self
            .build_home(keys, &scratch, &staging, generation, cancel)
            .await;
        let _ = std::fs::remove_dir_all(&scratch);
        let imported = match result {
            Ok(imported) => imported,
            Err(e) => {
                let _ = std::fs::remove_dir_all(&staging);
                return Err(e);
            }
        };
        let dir = self.root.join(format!("home-{generation}"));
        if let Err(e) = std::fs::rename(&staging, &dir) {
            let _ = std::fs::remove_dir_all(&staging);
            return Err(GpgError::Io {
                what: format!("moving the new keyring into {}", dir.display()),
                source: e,
            });
        }
        let home = Arc::new(Home {
            dir,
            generation,
            keys: imported.clone(),
        });
        let replaced = {
            let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
            std::mem::replace(&mut *current, home)
        };
        let dropped = {
            let mut previous = self.previous.write().unwrap_or_else(|e| e.into_inner());
            previous.replace(replaced)
        };
        if let Some(old) = dropped {
            let _ = std::fs::remove_dir_all(&old.dir);
        }
        tracing::info!(keys = imported.len(), "GnuPG keyring replaced");
        Ok(imported)
    }

    async fn build_home(
        &self,
        keys: &BTreeMap<String, String>,
        scratch: &Path,
        staging: &Path,
        generation: u64,
        cancel: &CancellationToken,
    ) -> Result<Vec<PublicKey>, GpgError> {
        let mut checked = Vec::with_capacity(keys.len());
        for (key_id, armored) in keys {
            // A fresh scratch home per key: one key's leftovers never vouch for another.
            let _ = std::fs::remove_dir_all(scratch);
            new_home(scratch)?;
            checked.push(self.inspect(key_id, armored, scratch, cancel).await?);
        }
        new_home(staging)?;
        if !keys.is_empty() {
            let mut all = Vec::new();
            for armored in keys.values() {
                all.extend_from_slice(armored.as_bytes());
                all.push(b'\n');
            }
            let out = self
                .run(
                    self.gpg_in(staging).arg("--import").stdin(all),
                    "import",
                    cancel,
                )
                .await?;
            if !out.success {
                return Err(GpgError::Failed {
                    operation: "import",
                    message: out.stderr.trim().to_string(),
                });
            }
        }
        let out = self
            .run(
                self.gpg_in(staging).args(["--with-colons", "--list-keys"]),
                "list keys",
                cancel,
            )
            .await?;
        let (listed, _) = parse_colons(&String::from_utf8_lossy(&out.stdout));
        for key in &checked {
            if !listed.iter().any(|l| l.fingerprint == key.fingerprint) {
                return Err(GpgError::Failed {
                    operation: "import",
                    message: format!(
                        "key {} is missing from keyring generation {generation} after the import",
                        key.key_id
                    ),
                });
            }
        }
        Ok(checked)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FPR: &str = "AA299824EE9526035619AAA62E3502B2BEA6532C";

    fn good() -> SignatureInfo {
        SignatureInfo {
            signed: true,
            status: 'G',
            key_id: Some("2E3502B2BEA6532C".into()),
            fingerprint: Some(FPR.into()),
            primary_fingerprint: Some(FPR.into()),
            tag: None,
        }
    }

    #[test]
    fn parses_git_signature_fields() {
        let info = SignatureInfo::parse(&format!("G\x002E3502B2BEA6532C\0{FPR}\0{FPR}\n"), true);
        assert_eq!(info, good());
        let unknown = SignatureInfo::parse("E\x002E3502B2BEA6532C\0\0\n", true);
        assert_eq!(unknown.status, 'E');
        assert_eq!(unknown.key_id.as_deref(), Some("2E3502B2BEA6532C"));
        assert_eq!(unknown.fingerprint, None);
        let none = SignatureInfo::parse("N\0\0\0\n", false);
        assert!(!none.signed);
        assert_eq!(SignatureInfo::parse("", false).status, 'N');
    }

    #[test]
    fn key_ids_match_by_suffix_of_either_fingerprint() {
        let info = good();
        for id in [
            "2E3502B2BEA6532C",
            "2e3502b2bea6532c",
            "0x2E3502B2BEA6532C",
            "BEA6532C",
            FPR,
        ] {
            assert!(info.made_by(id), "{id}");
        }
        assert!(!info.made_by("1111111111111111"));
        assert!(!info.made_by(""));
        // Only the key ID is known (key not in the keyring): a fingerprint still matches it.
        let unknown = SignatureInfo {
            status: 'E',
            fingerprint: None,
            primary_fingerprint: None,
            ..good()
        };
        assert!(unknown.made_by(FPR));
    }

    #[test]
    fn required_keys_decide() {
        let required = vec!["2E3502B2BEA6532C".to_string()];
        assert_eq!(good().check_required("abc", &required), Ok(()));
        assert_eq!(
            SignatureInfo::default().check_required("abc", &[]),
            Ok(()),
            "nothing required, nothing checked"
        );
        let unsigned = SignatureInfo {
            status: 'N',
            ..Default::default()
        }
        .check_required("abc", &required)
        .unwrap_err();
        assert_eq!(
            unsigned.to_string(),
            "revision abc is not signed with a trusted key (the commit is not signed); \
             signature key IDs required: 2E3502B2BEA6532C"
        );
        let other = good()
            .check_required("abc", &["1111111111111111".into(), "22222222".into()])
            .unwrap_err();
        assert!(other.to_string().contains("not one of the required keys"));
        assert!(
            other
                .to_string()
                .ends_with("required: 1111111111111111, 22222222")
        );
        let unknown = SignatureInfo {
            status: 'E',
            fingerprint: None,
            primary_fingerprint: None,
            ..good()
        };
        // The right key ID, but not in the keyring: not trusted.
        let err = unknown.check_required("abc", &required).unwrap_err();
        assert!(err.reason.contains("not in the GnuPG keyring"), "{err}");
        for (status, words) in [
            ('B', "is bad"),
            ('X', "has expired"),
            ('Y', "key 2E3502B2BEA6532C has expired"),
            ('R', "revoked"),
            ('U', "unknown validity"),
        ] {
            let info = SignatureInfo { status, ..good() };
            let err = info.check_required("abc", &required).unwrap_err();
            assert!(err.reason.contains(words), "{status}: {err}");
        }
    }

    #[test]
    fn gpg_status_lines() {
        let parsed = parse_status(&format!(
            "[GNUPG:] NEWSIG\n[GNUPG:] KEY_CONSIDERED {FPR} 0\n[GNUPG:] SIG_ID x 2026-11-23 1\n\
             [GNUPG:] GOODSIG 2E3502B2BEA6532C Test <t@e.x>\n\
             [GNUPG:] VALIDSIG {FPR} 2026-11-23 1795472806 0 4 0 22 10 00 {FPR}\n\
             [GNUPG:] TRUST_UNDEFINED 0 pgp\n"
        ));
        assert_eq!(parsed, good());
        let unknown = parse_status(
            "[GNUPG:] NEWSIG\n[GNUPG:] ERRSIG 2E3502B2BEA6532C 22 10 00 1795472806 9 -\n\
             [GNUPG:] NO_PUBKEY 2E3502B2BEA6532C\n",
        );
        assert_eq!(unknown.status, 'E');
        assert!(unknown.signed);
        assert_eq!(unknown.key_id.as_deref(), Some("2E3502B2BEA6532C"));
        let bad = parse_status("[GNUPG:] BADSIG 2E3502B2BEA6532C Test <t@e.x>\n");
        assert_eq!(bad.status, 'B');
        let none = parse_status("error: no signature found\n");
        assert_eq!(
            none,
            SignatureInfo {
                status: 'N',
                ..Default::default()
            }
        );
    }

    #[test]
    fn colon_listings() {
        let listing = format!(
            "tru::1:1795472806:0:3:1:5\npub:-:255:22:2E3502B2BEA6532C:1795472806:::-:::scSC:::::ed25519:::0:\n\
             fpr:::::::::{FPR}:\nuid:-::::1795472806::5A90::Test <t@e.x>::::::::::0:\n\
             sub:-:255:18:9999999999999999:1795472806::::::e:::::cv25519::\n\
             fpr:::::::::BBBB9999999999999999999999999999999999BB:\n"
        );
        let (keys, secret) = parse_colons(&listing);
        assert_eq!(secret, 0);
        assert_eq!(
            keys,
            vec![PublicKey {
                key_id: "2E3502B2BEA6532C".into(),
                fingerprint: FPR.into(),
                user_ids: vec!["Test <t@e.x>".into()],
                subkey_fingerprints: vec!["BBBB9999999999999999999999999999999999BB".into()],
            }]
        );
        let (_, secret) = parse_colons("sec:u:255:22:2E3502B2BEA6532C::::\n");
        assert_eq!(secret, 1);
    }

    #[test]
    fn key_id_forms() {
        assert!(valid_key_id(&normalize_key_id("0x2e3502b2bea6532c")));
        assert!(valid_key_id(&normalize_key_id("BEA6532C")));
        assert!(valid_key_id(&normalize_key_id(FPR)));
        assert!(!valid_key_id(&normalize_key_id("not-a-key")));
        assert!(!valid_key_id(&normalize_key_id("2E3502B2BEA653")));
    }
}
