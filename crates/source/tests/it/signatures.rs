//! GnuPG signature verification with real gpg: keys generated here, commits signed with
//! `git commit -S`, the service's keyring filled the way Argo CD's `argocd-gpg-keys-cm` is.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::Ordering;

use plumb_source::{GitError, PublicKey, SourceError, SourceService};
use tokio_util::sync::CancellationToken;

use crate::servers::{self, HttpServer, Repo};
use crate::{cm, names, request, service_with, source};

/// A throwaway GnuPG home holding secret keys to sign with. Its agent is stopped on drop.
struct Signer {
    home: tempfile::TempDir,
}

impl Signer {
    fn new() -> Signer {
        let home = tempfile::Builder::new()
            .prefix("gpg")
            .tempdir()
            .expect("tmp");
        Signer { home }
    }

    fn gpg(&self, args: &[&str]) -> String {
        let out = servers::run_checked(
            Command::new("gpg")
                .args(["--homedir"])
                .arg(self.home.path())
                .args(["--batch", "--no-tty"])
                .args(args),
            &format!("gpg {args:?}"),
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Generates a signing key; returns its long key ID.
    fn generate(&self, user: &str) -> String {
        self.gpg(&[
            "--passphrase",
            "",
            "--quick-gen-key",
            user,
            "ed25519",
            "sign",
            "never",
        ]);
        let listing = self.gpg(&["--with-colons", "--list-keys", user]);
        listing
            .lines()
            .find(|l| l.starts_with("pub:"))
            .and_then(|l| l.split(':').nth(4))
            .expect("key id")
            .to_string()
    }

    fn export(&self, key_id: &str) -> String {
        self.gpg(&["--armor", "--export", key_id])
    }

    /// Runs git in `repo`'s work tree as Signe Signer with this keyring; its output, trimmed.
    fn git(&self, repo: &Repo, args: &[&str]) -> String {
        let out = servers::run_checked(
            Command::new("git")
                .args(args)
                .current_dir(&repo.work)
                .env("GIT_CONFIG_NOSYSTEM", "1")
                .env("GIT_CONFIG_GLOBAL", "/dev/null")
                .env("GNUPGHOME", self.home.path())
                .env("GIT_AUTHOR_NAME", "Signe Signer")
                .env("GIT_AUTHOR_EMAIL", "signe@example.com")
                .env("GIT_COMMITTER_NAME", "Signe Signer")
                .env("GIT_COMMITTER_EMAIL", "signe@example.com"),
            &format!("git {args:?}"),
        );
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    /// Makes `key_id`'s public key the only signature key of `svc`; the keys imported.
    async fn make_only_signature_key(
        &self,
        svc: &SourceService,
        key_id: &str,
        cancel: &CancellationToken,
    ) -> Vec<PublicKey> {
        svc.git()
            .set_signature_keys(&keys(&[(key_id, &self.export(key_id))]), cancel)
            .await
            .expect("import")
    }

    /// Commits `files` in `repo` signed by `key_id` (or unsigned) and pushes `main`.
    fn commit(&self, repo: &Repo, files: &[(&str, &str)], key_id: Option<&str>) -> String {
        for (path, content) in files {
            let path = repo.work.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, content).expect("write");
        }
        let git = |args: &[&str]| self.git(repo, args);
        git(&["add", "-A"]);
        match key_id {
            Some(key) => git(&[
                "-c",
                &format!("user.signingkey={key}"),
                "commit",
                "-q",
                "-S",
                "-m",
                "signed",
            ]),
            None => git(&["commit", "-q", "-m", "unsigned"]),
        };
        git(&[
            "push",
            "-q",
            "--force",
            repo.bare.to_str().expect("utf8"),
            "main",
        ]);
        git(&["rev-parse", "HEAD"])
    }
}

impl Signer {
    /// Tags `main` of `repo`: signed by `key_id`, annotated unsigned (`Some(None)`), or
    /// lightweight (`None`); pushes the tag.
    fn tag(&self, repo: &Repo, name: &str, signed_by: Option<Option<&str>>) {
        let git = |args: &[&str]| {
            self.git(repo, args);
        };
        match signed_by {
            Some(Some(key)) => git(&[
                "-c",
                &format!("user.signingkey={key}"),
                "tag",
                "-s",
                "-m",
                name,
                name,
            ]),
            Some(None) => git(&["tag", "-a", "-m", name, name]),
            None => git(&["tag", name]),
        }
        git(&["push", "-q", repo.bare.to_str().expect("utf8"), name]);
    }
}

impl Drop for Signer {
    fn drop(&mut self) {
        // `--quick-gen-key` started an agent for this home; stop exactly that one.
        let _ = Command::new("gpgconf")
            .arg("--homedir")
            .arg(self.home.path())
            .args(["--kill", "gpg-agent"])
            .status();
    }
}

fn keys(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn home_mode(svc: &SourceService) -> (PathBuf, u32) {
    use std::os::unix::fs::PermissionsExt;
    let home = svc.git().gnupg_home();
    let mode = std::fs::metadata(&home).expect("home").permissions().mode() & 0o777;
    (home, mode)
}

fn untrusted(err: SourceError) -> String {
    match err {
        SourceError::Git {
            source: source @ GitError::Untrusted { .. },
            ..
        } => source.to_string(),
        other => panic!("expected a signature refusal, got {other}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn renders_only_revisions_signed_by_a_required_key() {
    let signer = Signer::new();
    let trusted = signer.generate("Trusted Signer <trusted@example.com>");
    let stranger = signer.generate("Unknown Signer <unknown@example.com>");
    let http = HttpServer::start().expect("lighttpd with git http-backend");
    let repo = Repo::create(&http.repos(), "signed");
    let good = signer.commit(&repo, &[("app/cm.yaml", &cm("one"))], Some(&trusted));
    let unsigned = signer.commit(&repo, &[("app/cm.yaml", &cm("two"))], None);
    let unknown = signer.commit(&repo, &[("app/cm.yaml", &cm("three"))], Some(&stranger));
    let url = http.public_url("signed");

    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |_| {});
    let cancel = CancellationToken::new();
    let imported = signer
        .make_only_signature_key(&svc, &trusted, &cancel)
        .await;
    assert_eq!(imported.len(), 1);
    assert_eq!(imported[0].key_id, trusted);
    assert_eq!(
        imported[0].user_ids,
        ["Trusted Signer <trusted@example.com>"]
    );
    let (home, mode) = home_mode(&svc);
    assert_eq!(mode, 0o700, "{}", home.display());
    assert!(home.starts_with(dir.path().join("cache")));

    let required = vec![trusted.clone()];
    let with_keys = |revision: &str| {
        let mut r = request(vec![source(&url, revision, "app")]);
        r.signature_keys = required.clone();
        r
    };

    // Signed by an allowed key: renders, and the metadata says who signed.
    let rendered = svc.render(&with_keys(&good), &cancel).await.expect("good");
    assert_eq!(names(&rendered), ["ConfigMap/one"]);
    let parsed = svc.git().parse_url(&url).expect("url");
    let meta = svc
        .git()
        .commit_metadata(&parsed, &good, &cancel)
        .await
        .expect("metadata");
    assert!(meta.signed && meta.signature_trusted);
    assert_eq!(meta.signature_status, 'G');
    assert_eq!(meta.signature_key_id.as_deref(), Some(trusted.as_str()));
    // A second check of the same commit starts no process.
    let checks = svc.git().stats.signature_checks.load(Ordering::SeqCst);
    let again = svc.render(&with_keys(&good), &cancel).await.expect("good");
    assert!(again.cache_hit);
    assert_eq!(
        svc.git().stats.signature_checks.load(Ordering::SeqCst),
        checks
    );

    // Refused before anything is checked out, rendered or cached.
    let checkouts = svc.git().stats.checkouts.load(Ordering::SeqCst);
    let entries = svc.cache_stats().entries;
    let err = untrusted(
        svc.render(&with_keys(&unsigned), &cancel)
            .await
            .expect_err("unsigned"),
    );
    assert_eq!(
        err,
        format!(
            "revision {unsigned} is not signed with a trusted key (the commit is not signed); \
             signature key IDs required: {trusted}"
        )
    );
    let err = untrusted(
        svc.render(&with_keys(&unknown), &cancel)
            .await
            .expect_err("unknown key"),
    );
    assert!(
        err.starts_with(&format!(
            "revision {unknown} is not signed with a trusted key (it is signed with key {stranger}, \
             which is not in the GnuPG keyring"
        )),
        "{err}"
    );
    assert!(err.ends_with(&format!("signature key IDs required: {trusted}")));
    assert_eq!(svc.git().stats.checkouts.load(Ordering::SeqCst), checkouts);
    assert_eq!(svc.cache_stats().entries, entries);
    let meta = svc
        .git()
        .commit_metadata(&parsed, &unknown, &cancel)
        .await
        .expect("metadata");
    assert!(meta.signed && !meta.signature_trusted);
    assert_eq!(meta.signature_status, 'E');
    assert_eq!(meta.signature_key_id.as_deref(), Some(stranger.as_str()));

    // A good signature by a key in the keyring that the request does not name.
    svc.git()
        .set_signature_keys(
            &keys(&[
                (&trusted, &signer.export(&trusted)),
                (&stranger, &signer.export(&stranger)),
            ]),
            &cancel,
        )
        .await
        .expect("import both");
    let err = untrusted(
        svc.render(&with_keys(&unknown), &cancel)
            .await
            .expect_err("not required"),
    );
    assert!(err.contains("not one of the required keys"), "{err}");
    // The same commit when its key is required (short key ID form, as people write it).
    let mut short = request(vec![source(&url, &unknown, "app")]);
    short.signature_keys = vec![stranger[8..].to_lowercase()];
    let rendered = svc.render(&short, &cancel).await.expect("now allowed");
    assert_eq!(names(&rendered), ["ConfigMap/three"]);
    // Without required keys nothing is checked, signed or not.
    let rendered = svc
        .render(&request(vec![source(&url, &unsigned, "app")]), &cancel)
        .await
        .expect("no requirement");
    assert_eq!(names(&rendered), ["ConfigMap/two"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_keys_are_refused_and_nothing_is_imported_half_way() {
    let signer = Signer::new();
    let trusted = signer.generate("Trusted Signer <trusted@example.com>");
    let other = signer.generate("Other Signer <other@example.com>");
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |_| {});
    let cancel = CancellationToken::new();
    signer
        .make_only_signature_key(&svc, &trusted, &cancel)
        .await;
    let before = svc.git().gnupg_home();
    let listing = |home: &Path| {
        let out = Command::new("gpg")
            .arg("--homedir")
            .arg(home)
            .args(["--batch", "--no-autostart", "--with-colons", "--list-keys"])
            .output()
            .expect("gpg");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| l.starts_with("pub:"))
            .count()
    };
    assert_eq!(listing(&before), 1);

    let malformed = "-----BEGIN PGP PUBLIC KEY BLOCK-----\n\nbm90IGEga2V5\n=AAAA\n-----END PGP PUBLIC KEY BLOCK-----\n";
    let cases: Vec<(BTreeMap<String, String>, &str)> = vec![
        // A good key next to a malformed one: neither is imported.
        (
            keys(&[
                (&other, &signer.export(&other)),
                ("0123456789ABCDEF", malformed),
            ]),
            "GnuPG key 0123456789ABCDEF: not an ASCII-armored OpenPGP public key",
        ),
        (
            keys(&[("0123456789ABCDEF", "hello")]),
            "GnuPG key 0123456789ABCDEF: not an ASCII-armored OpenPGP public key",
        ),
        (
            keys(&[("not-a-key-id", &signer.export(&other))]),
            "GnuPG key \"not-a-key-id\": the key ID must be 8, 16 or 40 hexadecimal digits",
        ),
        // Filed under the wrong ID.
        (
            keys(&[(&trusted, &signer.export(&other))]),
            "the armored key is",
        ),
        (
            keys(&[(
                &trusted,
                &format!("{}{}", signer.export(&trusted), signer.export(&other)),
            )]),
            "holds 2 keys",
        ),
        (
            keys(&[(
                &other,
                &signer.gpg(&[
                    "--armor",
                    "--pinentry-mode",
                    "loopback",
                    "--passphrase",
                    "",
                    "--export-secret-keys",
                    &other,
                ]),
            )]),
            "only public keys are accepted",
        ),
    ];
    for (bad, words) in cases {
        let err = svc
            .git()
            .set_signature_keys(&bad, &cancel)
            .await
            .expect_err("bad key");
        let text = err.to_string();
        assert!(text.contains(words), "{words:?} not in {text:?}");
        // The keyring is the one from before, with its one key.
        assert_eq!(svc.git().gnupg_home(), before);
        assert_eq!(svc.git().signature_keys().len(), 1);
        assert_eq!(listing(&before), 1);
    }
    // No staging directory is left behind.
    let leftovers: Vec<_> = std::fs::read_dir(before.parent().expect("root"))
        .expect("root")
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp") || n.starts_with("check-"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
    // An empty ConfigMap empties the keyring.
    svc.git()
        .set_signature_keys(&BTreeMap::new(), &cancel)
        .await
        .expect("empty");
    assert!(svc.git().signature_keys().is_empty());
    assert_eq!(listing(&svc.git().gnupg_home()), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_annotated_tag_is_judged_by_its_own_signature() {
    let signer = Signer::new();
    let trusted = signer.generate("Trusted Signer <trusted@example.com>");
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "tags");
    // An unsigned commit under a signed tag: the tag vouches for it (Argo CD's rule).
    signer.commit(&repo, &[("app/cm.yaml", &cm("one"))], None);
    signer.tag(&repo, "v1.0.0", Some(Some(&trusted)));
    // A signed commit under an unsigned annotated tag: the tag does not.
    signer.commit(&repo, &[("app/cm.yaml", &cm("two"))], Some(&trusted));
    signer.tag(&repo, "v2.0.0", Some(None));
    // A lightweight tag is only a name: the commit's signature counts.
    signer.tag(&repo, "light", None);
    let url = repo.file_url();
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |_| {});
    let cancel = CancellationToken::new();
    signer
        .make_only_signature_key(&svc, &trusted, &cancel)
        .await;
    let render = |revision: &str| {
        let mut r = request(vec![source(&url, revision, "app")]);
        r.signature_keys = vec![trusted.clone()];
        r
    };
    let rendered = svc
        .render(&render("v1.0.0"), &cancel)
        .await
        .expect("signed tag");
    assert_eq!(names(&rendered), ["ConfigMap/one"]);
    // The same through a semver constraint.
    let rendered = svc
        .render(&render("~1.0"), &cancel)
        .await
        .expect("constraint");
    assert_eq!(names(&rendered), ["ConfigMap/one"]);
    let err = untrusted(
        svc.render(&render("v2.0.0"), &cancel)
            .await
            .expect_err("unsigned tag"),
    );
    assert!(
        err.contains("(the annotated tag refs/tags/v2.0.0 is not signed)"),
        "{err}"
    );
    let rendered = svc
        .render(&render("light"), &cancel)
        .await
        .expect("lightweight");
    assert_eq!(names(&rendered), ["ConfigMap/two"]);
    // The unsigned commit itself, by branch: refused.
    svc.render(&render("main"), &cancel)
        .await
        .expect("main is the signed commit");
    let parsed = svc.git().parse_url(&url).expect("url");
    let first = git_rev(&repo, "v1.0.0^{commit}");
    let err = untrusted(
        svc.render(&render(&first), &cancel)
            .await
            .expect_err("commit"),
    );
    assert!(err.contains("(the commit is not signed)"), "{err}");
    let info = svc
        .git()
        .verify_commit(&parsed, &first, None, &cancel)
        .await
        .expect("verify");
    assert!(!info.signed);
}

fn git_rev(repo: &Repo, rev: &str) -> String {
    crate::servers::git(&repo.work, &["rev-parse", rev])
}
