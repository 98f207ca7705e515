//! Partial clone and shallow fetch against real servers: lighttpd + git http-backend, sshd
//! and file://.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::Ordering;

use plumb_source::git::Checkout;
use plumb_source::{CredentialStore, RenderedSource, RepositorySecret, SecretType, SourceService};
use tokio_util::sync::CancellationToken;

use crate::servers::{HTTP_PASSWORD, HTTP_USER, HttpServer, Repo, SshServer, git};
use crate::{cm, names, request, service_with, source};

const MB: u64 = 1024 * 1024;

/// 50 MB that do not compress (a mirror holding them is at least that large).
fn write_random(path: &Path, bytes: u64) {
    std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
    let mut file = std::fs::File::create(path).expect("create");
    // xorshift: fast, and incompressible enough for zlib.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut buf = vec![0u8; MB as usize];
    for _ in 0..bytes / MB {
        for chunk in buf.chunks_mut(8) {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            chunk.copy_from_slice(&state.to_le_bytes()[..chunk.len()]);
        }
        file.write_all(&buf).expect("write");
    }
}

/// `checkout` left nothing out: `assets/big.bin` is there, all `bytes` of it.
fn assert_has_big_bin(checkout: &Checkout, bytes: u64) {
    assert!(checkout.omitted.is_empty(), "{:?}", checkout.omitted);
    assert_eq!(
        std::fs::metadata(checkout.root().join("assets/big.bin"))
            .expect("big.bin")
            .len(),
        bytes
    );
}

/// Renders `path` of `url` at `revision`, panicking with what failed.
async fn render_one(
    svc: &SourceService,
    url: &str,
    revision: &str,
    path: &str,
    cancel: &CancellationToken,
) -> RenderedSource {
    svc.render(&request(vec![source(url, revision, path)]), cancel)
        .await
        .unwrap_or_else(|e| panic!("{url} {revision} {path}: {e}"))
}

/// A repository with `app/` (small manifests) and `assets/` (a small manifest beside a
/// 50 MB binary), exported by the HTTP server and reachable over ssh and file://.
fn big_repo(http: &HttpServer) -> Repo {
    let repo = Repo::create(&http.repos(), "big");
    write_random(&repo.work.join("assets/big.bin"), 50 * MB);
    repo.commit(
        &[
            ("app/cm.yaml", &cm("app")),
            ("assets/cm.yaml", &cm("assets")),
            ("base/shared.yaml", &cm("shared")),
        ],
        "app and a 50 MB asset",
    );
    repo
}

fn mirror_bytes(svc: &SourceService, url: &str) -> u64 {
    let parsed = svc.git().parse_url(url).expect("url");
    dir_bytes(&svc.git().mirror_dir(&parsed))
}

fn dir_bytes(dir: &Path) -> u64 {
    let mut total = 0;
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let meta = entry.path().symlink_metadata().expect("meta");
        total += if meta.is_dir() {
            dir_bytes(&entry.path())
        } else {
            meta.len()
        };
    }
    total
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_fifty_megabyte_blob_outside_the_path_stays_on_the_server() {
    let http = HttpServer::start().expect("lighttpd with git http-backend");
    let ssh = SshServer::start();
    let repo = big_repo(&http);
    let cancel = CancellationToken::new();
    let mut ssh_store = CredentialStore::new();
    let ssh_url = ssh.url(&repo.bare);
    ssh_store
        .insert(
            RepositorySecret::from_secret_data(
                "ssh",
                SecretType::Repository,
                &[
                    ("url".to_string(), ssh_url.clone()),
                    ("sshPrivateKey".to_string(), ssh.private_key.clone()),
                ]
                .into_iter()
                .collect(),
            )
            .expect("secret"),
        )
        .expect("insert");
    let private_url = http.private_url("big");
    let mut http_store = CredentialStore::new();
    http_store
        .insert(
            RepositorySecret::from_secret_data(
                "http",
                SecretType::Repository,
                &[
                    ("url".to_string(), private_url.clone()),
                    ("username".to_string(), HTTP_USER.to_string()),
                    ("password".to_string(), HTTP_PASSWORD.to_string()),
                ]
                .into_iter()
                .collect(),
            )
            .expect("secret"),
        )
        .expect("insert");
    for (url, store) in [
        (http.public_url("big"), CredentialStore::new()),
        // Basic auth: the blobs fetched later go through the same askpass.
        (private_url, http_store),
        (ssh_url.clone(), ssh_store),
        (repo.file_url(), CredentialStore::new()),
    ] {
        let dir = tempfile::tempdir().expect("tmp");
        let svc = service_with(dir.path(), |c| {
            c.git.ssh_known_hosts = Some(ssh.known_hosts.clone());
        });
        svc.set_credentials(store);
        let rendered = render_one(&svc, &url, "main", "app", &cancel).await;
        assert_eq!(names(&rendered), ["ConfigMap/app"], "{url}");
        let small = mirror_bytes(&svc, &url);
        assert!(
            small < 5 * MB,
            "{url}: the mirror is {small} bytes after rendering app/"
        );
        let stats = &svc.git().stats;
        assert_eq!(stats.filter_fallbacks.load(Ordering::SeqCst), 0, "{url}");
        assert_eq!(stats.blob_fetches.load(Ordering::SeqCst), 0, "{url}");

        // The path holding the blob: it is fetched on demand, with the same credentials.
        let rendered = render_one(&svc, &url, "main", "assets", &cancel).await;
        assert_eq!(names(&rendered), ["ConfigMap/assets"], "{url}");
        assert_eq!(stats.blob_fetches.load(Ordering::SeqCst), 1, "{url}");
        let big = mirror_bytes(&svc, &url);
        assert!(big > 50 * MB, "{url}: the mirror is {big} bytes");

        // Now that the mirror has every blob, any path is served from one full checkout.
        let parsed = svc.git().parse_url(&url).expect("url");
        let sha = rendered.revisions[0].clone();
        let full = svc
            .git()
            .checkout_path(&parsed, &sha, "app", &CredentialStore::new(), &cancel)
            .await
            .expect("checkout");
        assert_has_big_bin(&full, 50 * MB);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_partial_checkout_lists_what_it_left_out_and_reads_around_its_path() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "around");
    write_random(&repo.work.join("assets/big.bin"), 2 * MB);
    let sha = repo.commit(
        &[
            ("base/cm.yaml", &cm("base")),
            ("base/kustomization.yaml", "resources:\n- cm.yaml\n"),
            (
                "overlay/kustomization.yaml",
                "resources:\n- ../base\nnamePrefix: prod-\n",
            ),
        ],
        "kustomize overlay over a base outside its path",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |_| {});
    let cancel = CancellationToken::new();
    // Kustomize reads ../base, outside the rendered path: small blobs are all there.
    let rendered = render_one(&svc, &repo.file_url(), "main", "overlay", &cancel).await;
    assert_eq!(names(&rendered), ["ConfigMap/prod-base"]);
    let parsed = svc.git().parse_url(&repo.file_url()).expect("url");
    let store = CredentialStore::new();
    let overlay = svc
        .git()
        .checkout_path(&parsed, &sha, "overlay", &store, &cancel)
        .await
        .expect("checkout");
    assert_eq!(overlay.omitted, ["assets/big.bin"]);
    assert!(!overlay.root().join("assets/big.bin").exists());
    assert!(overlay.root().join("base/cm.yaml").is_file());
    // Another path leaving out the same file shares the checkout.
    let base = svc
        .git()
        .checkout_path(&parsed, &sha, "./base/", &store, &cancel)
        .await
        .expect("checkout");
    assert_eq!(base.root(), overlay.root());
    // The whole tree (ref sources): the blob is fetched and written.
    let whole = svc
        .git()
        .checkout(&parsed, &sha, &store, &cancel)
        .await
        .expect("checkout");
    assert_has_big_bin(&whole, 2 * MB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_server_without_filtering_gets_a_full_fetch() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "nofilter");
    git(&repo.bare, &["config", "uploadpack.allowFilter", "false"]);
    write_random(&repo.work.join("assets/big.bin"), 4 * MB);
    repo.commit(&[("app/cm.yaml", &cm("app"))], "one");
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service_with(dir.path(), |_| {});
    let cancel = CancellationToken::new();
    let rendered = render_one(&svc, &repo.file_url(), "main", "app", &cancel).await;
    assert_eq!(names(&rendered), ["ConfigMap/app"]);
    let stats = &svc.git().stats;
    assert_eq!(stats.filter_fallbacks.load(Ordering::SeqCst), 1);
    assert!(mirror_bytes(&svc, &repo.file_url()) > 4 * MB);
    // The next fetch does not ask for a filter again (and so does not warn again).
    repo.commit(&[("app/cm2.yaml", &cm("app2"))], "two");
    let rendered = render_one(&svc, &repo.file_url(), "main", "app", &cancel).await;
    assert_eq!(names(&rendered).len(), 2);
    assert_eq!(stats.filter_fallbacks.load(Ordering::SeqCst), 1);
    assert_eq!(stats.blob_fetches.load(Ordering::SeqCst), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn turning_partial_clone_off_reclones_in_full() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "toggle");
    write_random(&repo.work.join("assets/big.bin"), 3 * MB);
    repo.commit(&[("app/cm.yaml", &cm("app"))], "one");
    let dir = tempfile::tempdir().expect("tmp");
    let cancel = CancellationToken::new();
    {
        let svc = service_with(dir.path(), |_| {});
        render_one(&svc, &repo.file_url(), "main", "app", &cancel).await;
        assert!(mirror_bytes(&svc, &repo.file_url()) < 2 * MB);
    }
    let svc = service_with(dir.path(), |c| c.git.partial_clone_blob_limit = None);
    render_one(&svc, &repo.file_url(), "main", "app", &cancel).await;
    assert!(mirror_bytes(&svc, &repo.file_url()) > 3 * MB);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn shallow_depth_fetches_the_pinned_commit_only() {
    let http = HttpServer::start().expect("lighttpd with git http-backend");
    let repo = Repo::create(&http.repos(), "deep");
    let mut shas = Vec::new();
    for i in 0..6 {
        shas.push(repo.commit(&[("app/cm.yaml", &cm(&format!("v{i}")))], &format!("c{i}")));
    }
    repo.tag("v1.2.0", true);
    let url = http.public_url("deep");
    let dir = tempfile::tempdir().expect("tmp");
    let cancel = CancellationToken::new();
    let count = |svc: &SourceService| {
        let parsed = svc.git().parse_url(&url).expect("url");
        git(
            &svc.git().mirror_dir(&parsed),
            &["rev-list", "--count", "--all"],
        )
    };
    {
        let svc = service_with(dir.path(), |c| c.git.depth = 1);
        // A pinned commit: that one commit, nothing else.
        let rendered = render_one(&svc, &url, &shas[2], "app", &cancel).await;
        assert_eq!(names(&rendered), ["ConfigMap/v2"]);
        assert_eq!(count(&svc), "1");
        let parsed = svc.git().parse_url(&url).expect("url");
        assert!(svc.git().mirror_dir(&parsed).join("shallow").is_file());
        // A semver constraint resolves with ls-remote; its commit arrives 1 deep.
        let rendered = render_one(&svc, &url, "~1.2", "app", &cancel).await;
        assert_eq!(names(&rendered), ["ConfigMap/v5"]);
        let meta = svc
            .git()
            .commit_metadata(&parsed, &shas[5], &cancel)
            .await
            .expect("metadata");
        assert_eq!(meta.message, "c5");
        assert!(count(&svc).parse::<u32>().expect("count") <= 2);
    }
    // Depth turned off: the next fetch completes the history.
    shas.push(repo.commit(&[("app/cm.yaml", &cm("v6"))], "c6"));
    let svc = service_with(dir.path(), |c| c.git.depth = 0);
    render_one(&svc, &url, "main", "app", &cancel).await;
    let parsed = svc.git().parse_url(&url).expect("url");
    assert!(!svc.git().mirror_dir(&parsed).join("shallow").exists());
    assert_eq!(count(&svc), "7");
    // Per repository, as Argo CD's repository `depth`.
    let other = tempfile::tempdir().expect("tmp");
    let normalized = parsed.normalized().to_string();
    let svc = service_with(other.path(), |c| {
        c.git.repository_depth.insert(normalized, 2);
    });
    let rendered = render_one(&svc, &url, &shas[4], "app", &cancel).await;
    assert_eq!(names(&rendered), ["ConfigMap/v4"]);
    assert_eq!(count(&svc), "2");
}
