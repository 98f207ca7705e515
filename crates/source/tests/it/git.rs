//! Git over smart HTTP (lighttpd + git http-backend, basic auth), SSH (sshd) and file://.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use plumb_source::creds::{CredentialStore, RepositorySecret, SecretType};
use plumb_source::git::GitError;
use plumb_source::{GitCache, GitConfig, SourceError, UrlPolicy};
use tokio_util::sync::CancellationToken;

use crate::servers::{self, HTTP_PASSWORD, HTTP_USER, HttpServer, Repo, SshServer};
use crate::{cm, names, request, service, service_with, source};

fn secret(ty: SecretType, pairs: &[(&str, &str)]) -> RepositorySecret {
    let data: BTreeMap<String, String> = pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    RepositorySecret::from_secret_data("test", ty, &data).expect("secret")
}

fn store(secrets: Vec<RepositorySecret>) -> CredentialStore {
    let mut store = CredentialStore::new();
    for s in secrets {
        store.insert(s).expect("insert");
    }
    store
}

#[tokio::test]
async fn resolves_branches_tags_shas_and_semver_over_http() {
    let server = HttpServer::start().expect("lighttpd with git http-backend");
    let repo = Repo::create(&server.repos(), "app");
    let first = repo.commit(&[("a/cm.yaml", &cm("one"))], "first");
    repo.tag("v1.0.0", true);
    let second = repo.commit(&[("a/cm.yaml", &cm("two"))], "second");
    repo.tag("v1.2.0", false);
    crate::servers::git(&repo.work, &["checkout", "-q", "-b", "release", &first]);
    crate::servers::git(
        &repo.work,
        &["push", "-q", repo.bare.to_str().expect("utf8"), "release"],
    );

    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let url = server.public_url("app");
    let resolve = |rev: &'static str| {
        let svc = &svc;
        let cancel = &cancel;
        let url = url.clone();
        async move { svc.resolve(&source(&url, rev, "a"), cancel).await }
    };
    assert_eq!(resolve("HEAD").await.expect("HEAD").sha, second);
    assert_eq!(resolve("").await.expect("empty").sha, second);
    assert_eq!(resolve("main").await.expect("main").sha, second);
    assert_eq!(resolve("release").await.expect("branch").sha, first);
    assert_eq!(resolve("v1.0.0").await.expect("annotated tag").sha, first);
    assert_eq!(resolve("1.*").await.expect("semver").sha, second);
    assert_eq!(resolve(">=1.0.0 <1.1.0").await.expect("range").sha, first);
    let short = &second[..8];
    let short_static: &'static str = Box::leak(short.to_string().into_boxed_str());
    assert_eq!(resolve(short_static).await.expect("short").sha, second);

    let err = resolve("nope").await.expect_err("unknown revision");
    assert!(
        err.to_string().contains("revision 'nope' not found"),
        "{err}"
    );
    let err = resolve("--upload-pack=touch /tmp/pwned")
        .await
        .expect_err("injection");
    assert!(matches!(err, GitError::UnsafeArgument(_)), "{err}");

    // Rendering by tag renders that commit's content.
    let rendered = svc
        .render(&request(vec![source(&url, "v1.0.0", "a")]), &cancel)
        .await
        .expect("render");
    assert_eq!(names(&rendered), ["ConfigMap/one"]);
    assert_eq!(rendered.revisions, std::slice::from_ref(&first));

    // Commit metadata from the mirror.
    let parsed = svc.git().parse_url(&url).expect("url");
    let meta = svc
        .git()
        .commit_metadata(&parsed, &first, &cancel)
        .await
        .expect("metadata");
    assert_eq!(meta.author_name, "Ada Author");
    assert_eq!(meta.author_email, "ada@example.com");
    assert_eq!(meta.message, "first");
    assert!(
        meta.date.starts_with("2026-01-02T03:04:05"),
        "{}",
        meta.date
    );
    assert!(!meta.signed);
    assert_eq!(meta.signature_status, 'N');
}

#[tokio::test]
async fn basic_auth_from_repository_secrets() {
    let server = HttpServer::start().expect("lighttpd with git http-backend");
    let repo = Repo::create(&server.repos(), "secret-app");
    let sha = repo.commit(&[("cm.yaml", &cm("private"))], "private");
    let url = server.private_url("secret-app");
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let req = request(vec![source(&url, "main", ".")]);

    // No credentials: the server's refusal, with the URL.
    let err = svc.render(&req, &cancel).await.expect_err("no credentials");
    let text = err.to_string();
    assert!(
        text.contains("authentication failed for http://127.0.0.1"),
        "{text}"
    );

    // A wrong password: refused, and the password is nowhere in the message.
    svc.set_credentials(store(vec![secret(
        SecretType::Repository,
        &[
            ("url", &url),
            ("username", HTTP_USER),
            ("password", "wrong-password-xyz"),
        ],
    )]));
    let err = svc.render(&req, &cancel).await.expect_err("wrong password");
    let text = format!("{err} {err:?}");
    assert!(text.contains("authentication failed"), "{text}");
    assert!(!text.contains("wrong-password-xyz"), "{text}");
    assert_eq!(
        svc.cache_stats().entries,
        0,
        "nothing cached from a failure"
    );

    // A repo-creds template matched by prefix, written with a different spelling.
    svc.set_credentials(store(vec![secret(
        SecretType::RepoCreds,
        &[
            ("url", &format!("http://127.0.0.1:{}/private", server.port)),
            ("username", HTTP_USER),
            ("password", HTTP_PASSWORD),
        ],
    )]));
    let rendered = svc
        .render(&req, &cancel)
        .await
        .expect("authenticated render");
    assert_eq!(names(&rendered), ["ConfigMap/private"]);
    assert_eq!(rendered.revisions, [sha]);

    // The password never reached a process's arguments: git got it from the askpass helper.
    let helper = std::fs::read_to_string(dir.path().join("cache/askpass.sh")).expect("askpass");
    assert!(!helper.contains(HTTP_PASSWORD));
}

#[tokio::test]
async fn ssh_with_key_and_known_hosts() {
    let sshd = SshServer::start();
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "over-ssh");
    let sha = repo.commit(&[("deploy/cm.yaml", &cm("via-ssh"))], "ssh");
    let url = sshd.url(&repo.bare);
    let cancel = CancellationToken::new();
    let creds = store(vec![secret(
        SecretType::Repository,
        &[("url", &url), ("sshPrivateKey", &sshd.private_key)],
    )]);

    // Known host: works.
    let dir = tempfile::tempdir().expect("tmp");
    let known = sshd.known_hosts.clone();
    let svc = service_with(dir.path(), move |c| c.git.ssh_known_hosts = Some(known));
    svc.set_credentials(creds.clone());
    let rendered = svc
        .render(&request(vec![source(&url, "main", "deploy")]), &cancel)
        .await
        .expect("render over ssh");
    assert_eq!(names(&rendered), ["ConfigMap/via-ssh"]);
    assert_eq!(rendered.revisions, [sha]);

    // Unknown host key: refused, clearly.
    let dir2 = tempfile::tempdir().expect("tmp");
    let svc2 = service(dir2.path());
    svc2.set_credentials(creds.clone());
    let err = svc2
        .render(&request(vec![source(&url, "main", "deploy")]), &cancel)
        .await
        .expect_err("unknown host");
    assert!(
        err.to_string().contains("host key verification failed"),
        "{err}"
    );
    assert!(!err.to_string().contains("PRIVATE KEY"), "{err}");

    // The explicit insecure option skips host-key checking.
    let dir3 = tempfile::tempdir().expect("tmp");
    let svc3 = service(dir3.path());
    svc3.set_credentials(store(vec![secret(
        SecretType::Repository,
        &[
            ("url", &url),
            ("sshPrivateKey", &sshd.private_key),
            ("insecure", "true"),
        ],
    )]));
    svc3.render(&request(vec![source(&url, "main", "deploy")]), &cancel)
        .await
        .expect("insecure render");

    // A key the server does not accept.
    let other = tempfile::tempdir().expect("tmp");
    let status = std::process::Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(other.path().join("k"))
        .status()
        .expect("keygen");
    assert!(status.success());
    let dir4 = tempfile::tempdir().expect("tmp");
    let known = sshd.known_hosts.clone();
    let svc4 = service_with(dir4.path(), move |c| c.git.ssh_known_hosts = Some(known));
    svc4.set_credentials(store(vec![secret(
        SecretType::Repository,
        &[
            ("url", &url),
            (
                "sshPrivateKey",
                &std::fs::read_to_string(other.path().join("k")).expect("key"),
            ),
        ],
    )]));
    let err = svc4
        .render(&request(vec![source(&url, "main", "deploy")]), &cancel)
        .await
        .expect_err("rejected key");
    assert!(err.to_string().contains("authentication failed"), "{err}");
}

#[tokio::test]
async fn file_urls_only_when_allowed_and_bad_schemes_never() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "local");
    repo.commit(&[("cm.yaml", &cm("local"))], "c");
    let dir = tempfile::tempdir().expect("tmp");
    let strict = service_with(dir.path(), |c| {
        c.git.url_policy = UrlPolicy { allow_file: false }
    });
    let cancel = CancellationToken::new();
    let err = strict
        .render(
            &request(vec![source(&repo.file_url(), "main", ".")]),
            &cancel,
        )
        .await
        .expect_err("file refused");
    assert!(
        err.to_string()
            .contains("file:// repository URLs are not allowed"),
        "{err}"
    );
    let marker = root.path().join("pwned");
    for bad in [
        format!("ext::sh -c touch% {}", marker.display()),
        "fd::7".to_string(),
        "-uhttps://example.com/x".to_string(),
        root.path().join("local.git").display().to_string(),
    ] {
        let err = strict
            .render(&request(vec![source(&bad, "main", ".")]), &cancel)
            .await
            .expect_err("bad URL");
        assert!(matches!(err, SourceError::Git { .. }), "{bad}: {err}");
    }
    assert!(!marker.exists(), "ext:: must never run a command");

    let open = crate::service(tempfile::tempdir().expect("tmp").path());
    let rendered = open
        .render(
            &request(vec![source(&repo.file_url(), "main", ".")]),
            &cancel,
        )
        .await
        .expect("file allowed");
    assert_eq!(names(&rendered), ["ConfigMap/local"]);
}

#[tokio::test]
async fn unreachable_and_hanging_servers() {
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |c| c.git.timeout = Duration::from_secs(2));
    let cancel = CancellationToken::new();
    // Nothing listens here.
    let port = servers::free_port();
    let err = svc
        .render(
            &request(vec![source(
                &format!("http://127.0.0.1:{port}/git/x.git"),
                "main",
                ".",
            )]),
            &cancel,
        )
        .await
        .expect_err("unreachable");
    assert!(err.to_string().contains("unreachable"), "{err}");

    // A server that accepts and never answers: killed at the timeout.
    let (port, _hole) = servers::black_hole();
    let started = std::time::Instant::now();
    let err = svc
        .render(
            &request(vec![source(
                &format!("http://127.0.0.1:{port}/git/x.git"),
                "main",
                ".",
            )]),
            &cancel,
        )
        .await
        .expect_err("hangs");
    assert!(err.to_string().contains("did not finish within"), "{err}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // Cancellation stops a git command at once.
    let (port, _hole2) = servers::black_hole();
    let token = CancellationToken::new();
    let trigger = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(300)).await;
        trigger.cancel();
    });
    let err = svc
        .render(
            &request(vec![source(
                &format!("http://127.0.0.1:{port}/git/y.git"),
                "main",
                ".",
            )]),
            &token,
        )
        .await
        .expect_err("cancelled");
    assert!(err.to_string().contains("cancelled"), "{err}");
    assert_eq!(svc.cache_stats().entries, 0);
}

#[tokio::test]
async fn concurrent_renders_of_one_commit_share_one_fetch_and_checkout() {
    let server = HttpServer::start().expect("lighttpd with git http-backend");
    let repo = Repo::create(&server.repos(), "mono");
    let files: Vec<(String, String)> = (0..20)
        .map(|i| (format!("apps/app{i}/cm.yaml"), cm(&format!("app{i}"))))
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(a, b)| (a.as_str(), b.as_str()))
        .collect();
    let sha = repo.commit(&refs, "twenty apps");
    let dir = tempfile::tempdir().expect("tmp");
    let svc = Arc::new(service(dir.path()));
    let url = server.public_url("mono");
    let mut tasks = Vec::new();
    for i in 0..20 {
        let svc = svc.clone();
        let url = url.clone();
        tasks.push(tokio::spawn(async move {
            let cancel = CancellationToken::new();
            svc.render(
                &request(vec![source(&url, "main", &format!("apps/app{i}"))]),
                &cancel,
            )
            .await
        }));
    }
    for (i, task) in tasks.into_iter().enumerate() {
        let rendered = task.await.expect("join").expect("render");
        assert_eq!(names(&rendered), [format!("ConfigMap/app{i}")]);
        assert_eq!(rendered.revisions, std::slice::from_ref(&sha));
    }
    let stats = &svc.git().stats;
    assert_eq!(
        stats.fetches.load(Ordering::SeqCst),
        1,
        "one fetch for twenty renders"
    );
    assert_eq!(
        stats.checkouts.load(Ordering::SeqCst),
        1,
        "one checkout of the commit"
    );

    // A new commit: fetched incrementally, rendered at the new SHA.
    let sha2 = repo.commit(&[("apps/app0/cm.yaml", &cm("app0-v2"))], "change");
    let cancel = CancellationToken::new();
    let rendered = svc
        .render(&request(vec![source(&url, "main", "apps/app0")]), &cancel)
        .await
        .expect("render");
    assert_eq!(names(&rendered), ["ConfigMap/app0-v2"]);
    assert_eq!(rendered.revisions, [sha2]);
    assert_eq!(stats.fetches.load(Ordering::SeqCst), 2);
}

#[tokio::test]
async fn broken_mirror_is_recloned_and_disk_is_bounded() {
    let root = tempfile::tempdir().expect("tmp");
    let a = Repo::create(root.path(), "a");
    let b = Repo::create(root.path(), "b");
    let sha_a = a.commit(&[("cm.yaml", &cm("a"))], "a");
    b.commit(&[("cm.yaml", &cm("b"))], "b");
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = GitConfig::new(dir.path());
    config.url_policy = UrlPolicy { allow_file: true };
    config.max_mirror_bytes = 1; // everything not in use is evicted
    let cache = GitCache::open(config).expect("cache");
    let cancel = CancellationToken::new();
    let store = CredentialStore::new();
    let url_a = cache.parse_url(&a.file_url()).expect("url");
    let url_b = cache.parse_url(&b.file_url()).expect("url");

    cache
        .ensure_commit(&url_a, &sha_a, None, &cancel)
        .await
        .expect("fetch a");
    // Corrupt a's mirror: HEAD garbage and objects gone.
    let mirror = cache.mirror_dir(&url_a);
    std::fs::write(mirror.join("HEAD"), "garbage").expect("corrupt");
    std::fs::remove_dir_all(mirror.join("objects")).expect("corrupt");
    let checkout = cache
        .checkout(&url_a, &sha_a, &store, &cancel)
        .await
        .expect("recloned");
    assert!(checkout.root().join("cm.yaml").is_file());
    assert_eq!(cache.stats.reclones.load(Ordering::SeqCst), 1);
    drop(checkout);

    // Fetching b evicts a's mirror (over the byte bound, not in use).
    let resolved = cache
        .resolve(&url_b, "main", None, &cancel)
        .await
        .expect("resolve b");
    cache
        .ensure_commit(&url_b, &resolved.sha, None, &cancel)
        .await
        .expect("fetch b");
    assert!(cache.stats.evictions.load(Ordering::SeqCst) >= 1);
    assert!(!cache.mirror_dir(&url_a).exists(), "a was evicted");
    // And a comes back on demand.
    cache
        .ensure_commit(&url_a, &sha_a, None, &cancel)
        .await
        .expect("refetch a");
}

#[tokio::test]
async fn submodules_are_followed() {
    let root = tempfile::tempdir().expect("tmp");
    let lib = Repo::create(root.path(), "lib");
    lib.commit(&[("base/cm.yaml", &cm("from-submodule"))], "lib");
    let app = Repo::create(root.path(), "app");
    app.commit(&[("own/cm.yaml", &cm("own"))], "app");
    crate::servers::git(
        &app.work,
        &[
            "-c",
            "protocol.file.allow=always",
            "submodule",
            "add",
            "-q",
            &lib.file_url(),
            "vendor/lib",
        ],
    );
    let sha = app.commit(&[], "add submodule");
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let mut src = source(&app.file_url(), "main", ".");
    src.directory = Some(plumb_model::application::DirectorySource {
        recurse: true,
        ..Default::default()
    });
    let rendered = svc
        .render(&request(vec![src]), &cancel)
        .await
        .expect("render");
    let mut got = names(&rendered);
    got.sort();
    assert_eq!(got, ["ConfigMap/from-submodule", "ConfigMap/own"]);
    assert_eq!(rendered.revisions, [sha]);
}

#[tokio::test]
async fn https_with_custom_ca_and_client_certificate() {
    let server = servers::TlsGitServer::start();
    let repo = Repo::create(&server.repos(), "tls-app");
    let sha = repo.commit(&[("cm.yaml", &cm("over-tls"))], "tls");
    let url = server.url("tls-app");
    let cancel = CancellationToken::new();
    let req = request(vec![source(&url, "main", ".")]);
    let pki = &server.pki;

    // The server's CA is unknown: refused (the host's GIT_SSL_CAINFO, if any, is ignored).
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let err = svc.render(&req, &cancel).await.expect_err("unknown CA");
    assert!(err.to_string().contains("certificate"), "{err}");

    // CA trusted but no client certificate: the server refuses the handshake.
    svc.set_credentials(store(vec![secret(
        SecretType::Repository,
        &[("url", &url), ("tlsCACertData", &pki.ca_crt)],
    )]));
    svc.render(&req, &cancel)
        .await
        .expect_err("no client certificate");

    // CA and client certificate from the repository Secret: works.
    svc.set_credentials(store(vec![secret(
        SecretType::Repository,
        &[
            ("url", &url),
            ("tlsCACertData", &pki.ca_crt),
            ("tlsClientCertData", &pki.client_crt),
            ("tlsClientCertKey", &pki.client_key),
        ],
    )]));
    let rendered = svc.render(&req, &cancel).await.expect("mutual TLS");
    assert_eq!(names(&rendered), ["ConfigMap/over-tls"]);
    assert_eq!(rendered.revisions, std::slice::from_ref(&sha));

    // `insecure` skips server verification (the client certificate is still presented).
    let dir2 = tempfile::tempdir().expect("tmp");
    let svc2 = service(dir2.path());
    svc2.set_credentials(store(vec![secret(
        SecretType::Repository,
        &[
            ("url", &url),
            ("insecure", "true"),
            ("tlsClientCertData", &pki.client_crt),
            ("tlsClientCertKey", &pki.client_key),
        ],
    )]));
    svc2.render(&req, &cancel).await.expect("insecure");
}

#[tokio::test]
async fn evicted_checkouts_are_removed_only_when_released() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "evict");
    let first = repo.commit(&[("cm.yaml", &cm("one"))], "one");
    let second = repo.commit(&[("cm.yaml", &cm("two"))], "two");
    let third = repo.commit(&[("cm.yaml", &cm("three"))], "three");
    let dir = tempfile::tempdir().expect("tmp");
    let mut config = GitConfig::new(dir.path());
    config.url_policy = UrlPolicy { allow_file: true };
    config.max_checkouts = 1;
    let cache = GitCache::open(config).expect("cache");
    let cancel = CancellationToken::new();
    let store = CredentialStore::new();
    let url = cache.parse_url(&repo.file_url()).expect("url");

    let held = cache
        .checkout(&url, &first, &store, &cancel)
        .await
        .expect("first");
    let two = cache
        .checkout(&url, &second, &store, &cancel)
        .await
        .expect("second");
    drop(two);
    // `first` is still held by a render: it survives eviction pressure.
    cache
        .checkout(&url, &third, &store, &cancel)
        .await
        .expect("third");
    assert!(held.root().join("cm.yaml").is_file());
    // Asked again while held: the same checkout, not a second copy.
    let again = cache
        .checkout(&url, &first, &store, &cancel)
        .await
        .expect("again");
    assert!(Arc::ptr_eq(&held, &again));
    assert_eq!(cache.stats.checkouts.load(Ordering::SeqCst), 3);
    // Released and pushed out by newer ones: its directory goes away.
    let old_root = held.root().to_path_buf();
    drop(held);
    drop(again);
    cache
        .checkout(&url, &second, &store, &cancel)
        .await
        .expect("second again");
    cache
        .checkout(&url, &third, &store, &cancel)
        .await
        .expect("third again");
    assert!(
        !old_root.exists(),
        "evicted and released: removed from disk"
    );
}
