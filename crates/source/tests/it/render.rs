//! Directory and Jsonnet rendering from real repositories (file://), the render cache, and
//! the bad-input cases: path escapes, symlinks, malformed YAML, oversized files.

use plumb_model::application::{DirectorySource, JsonnetSource, JsonnetVar};
use plumb_source::{RenderError, SourceError};
use tokio_util::sync::CancellationToken;

use crate::servers::Repo;
use crate::{cm, names, request, service, source};

fn render_error(err: SourceError) -> RenderError {
    match err {
        SourceError::Render { source, .. } => *source,
        other => panic!("expected a render error, got {other}"),
    }
}

#[tokio::test]
async fn directory_options_formats_and_provenance() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "dirs");
    let list = "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s1}\n- apiVersion: v1\n  kind: Secret\n  metadata: {name: s2}\n";
    let multi = format!(
        "---\n{}---\n\n---\n# comment only\n---\n{}",
        cm("m1"),
        cm("m2")
    );
    let json = r#"{"apiVersion": "v1", "kind": "Service", "metadata": {"name": "svc"}}"#;
    repo.commit(
        &[
            ("app/a.yaml", &multi),
            ("app/list.yml", list),
            ("app/svc.json", json),
            ("app/notes.txt", "not a manifest"),
            ("app/sub/deep.yaml", &cm("deep")),
            ("app/sub/skip.yaml", &cm("skipped")),
            ("app/sub/more/deeper.yaml", &cm("deeper")),
        ],
        "dirs",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let url = repo.file_url();

    let rendered = svc
        .render(&request(vec![source(&url, "main", "app")]), &cancel)
        .await
        .expect("flat");
    assert_eq!(
        names(&rendered),
        [
            "ConfigMap/m1",
            "ConfigMap/m2",
            "Secret/s1",
            "Secret/s2",
            "Service/svc"
        ]
    );
    let m2 = &rendered.manifests[1];
    assert_eq!(m2.file, "app/a.yaml");
    assert_eq!(m2.line, Some(13), "second document starts on line 13");

    let mut src = source(&url, "main", "app");
    src.directory = Some(DirectorySource {
        recurse: true,
        include: "{*.yaml,sub/**}".to_string(),
        exclude: "**/skip.yaml".to_string(),
        jsonnet: None,
        disable_extension_filter: false,
    });
    let rendered = svc
        .render(&request(vec![src]), &cancel)
        .await
        .expect("recurse");
    assert_eq!(
        names(&rendered),
        [
            "ConfigMap/m1",
            "ConfigMap/m2",
            "ConfigMap/deep",
            "ConfigMap/deeper"
        ]
    );
    assert_eq!(rendered.manifests[3].file, "app/sub/more/deeper.yaml");

    let mut bad = source(&url, "main", "app");
    bad.directory = Some(DirectorySource {
        include: "[".to_string(),
        ..Default::default()
    });
    let err = render_error(
        svc.render(&request(vec![bad]), &cancel)
            .await
            .expect_err("bad glob"),
    );
    assert!(err.to_string().contains("directory.include"), "{err}");
}

#[tokio::test]
async fn jsonnet_with_ext_vars_tlas_and_libs() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "jsonnet");
    let main = r#"
local lib = import 'helpers.libsonnet';
function(replicas, tier='web') [
  lib.configMap(std.extVar('env') + '-' + tier),
  { apiVersion: 'apps/v1', kind: 'Deployment', metadata: { name: 'web' }, spec: { replicas: replicas } },
]
"#;
    repo.commit(
        &[
            ("jsonnet/main.jsonnet", main),
            (
                "vendor/helpers.libsonnet",
                "{ configMap(name):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name } } }",
            ),
            ("escape/main.jsonnet", "importstr '/etc/hostname'"),
        ],
        "jsonnet",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let mut src = source(&repo.file_url(), "main", "jsonnet");
    let var = |name: &str, value: &str, code: bool| JsonnetVar {
        name: name.to_string(),
        value: value.to_string(),
        code,
    };
    src.directory = Some(DirectorySource {
        jsonnet: Some(JsonnetSource {
            ext_vars: vec![var("env", "prod", false)],
            tlas: vec![var("replicas", "1 + 2", true), var("tier", "api", false)],
            libs: vec!["vendor".to_string()],
        }),
        ..Default::default()
    });
    let rendered = svc
        .render(&request(vec![src]), &cancel)
        .await
        .expect("jsonnet");
    assert_eq!(names(&rendered), ["ConfigMap/prod-api", "Deployment/web"]);
    assert_eq!(rendered.manifests[1].object["spec"]["replicas"], 3);
    assert_eq!(rendered.manifests[0].file, "jsonnet/main.jsonnet");

    // Imports may not read outside the repository.
    let err = render_error(
        svc.render(
            &request(vec![source(&repo.file_url(), "main", "escape")]),
            &cancel,
        )
        .await
        .expect_err("import escape"),
    );
    assert!(err.to_string().contains("outside the repository"), "{err}");

    // A lib outside the repository is refused too.
    let mut src = source(&repo.file_url(), "main", "jsonnet");
    src.directory = Some(DirectorySource {
        jsonnet: Some(JsonnetSource {
            libs: vec!["../../..".to_string()],
            ..Default::default()
        }),
        ..Default::default()
    });
    let err = render_error(
        svc.render(&request(vec![src]), &cancel)
            .await
            .expect_err("lib escape"),
    );
    assert!(err.to_string().contains("leaves the repository"), "{err}");
}

#[tokio::test]
async fn render_cache_hits_bypasses_and_never_keeps_failures() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "cached");
    let sha = repo.commit(
        &[
            ("good/cm.yaml", &cm("good")),
            (
                "bad/broken.yaml",
                "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n",
            ),
        ],
        "c",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let url = repo.file_url();
    // By full SHA: resolving needs no process, so a hit needs none either.
    let req = request(vec![source(&url, &sha, "good")]);
    let first = svc.render(&req, &cancel).await.expect("cold");
    assert!(!first.cache_hit);
    let second = svc.render(&req, &cancel).await.expect("warm");
    assert!(second.cache_hit);
    assert!(std::sync::Arc::ptr_eq(&first.manifests, &second.manifests));
    let fetches = svc
        .git()
        .stats
        .fetches
        .load(std::sync::atomic::Ordering::SeqCst);

    let mut hard = req.clone();
    hard.hard_refresh = true;
    let third = svc.render(&hard, &cancel).await.expect("hard refresh");
    assert!(!third.cache_hit);
    assert_eq!(names(&third), ["ConfigMap/good"]);
    assert_eq!(
        svc.git()
            .stats
            .fetches
            .load(std::sync::atomic::Ordering::SeqCst),
        fetches,
        "commit already in the mirror: no fetch"
    );

    // Malformed YAML: file and line, nothing cached, and the good app is unaffected.
    let before = svc.cache_stats().entries;
    let err = svc
        .render(&request(vec![source(&url, &sha, "bad")]), &cancel)
        .await
        .expect_err("malformed");
    let text = err.to_string();
    assert!(text.contains("bad/broken.yaml:4"), "{text}");
    assert_eq!(svc.cache_stats().entries, before);
    let again = svc.render(&req, &cancel).await.expect("still fine");
    assert!(again.cache_hit);
    let stats = svc.cache_stats();
    assert!(stats.hits >= 2 && stats.misses >= 2, "{stats:?}");
}

#[tokio::test]
async fn paths_and_symlinks_that_leave_the_repository_are_refused() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "escape");
    repo.commit(&[("ok/cm.yaml", &cm("ok"))], "ok");
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let url = repo.file_url();
    for (path, why) in [
        ("../escape-work", "leaves the repository"),
        ("ok/../../..", "leaves the repository"),
        ("/etc", "absolute"),
        ("ok\n--help", "line break"),
    ] {
        let err = svc
            .render(&request(vec![source(&url, "main", path)]), &cancel)
            .await
            .expect_err(path);
        assert!(err.to_string().contains(why), "{path}: {err}");
    }
    // A symlink in the repository pointing outside it (Argo CD's CVE-2022-24348 shape).
    std::os::unix::fs::symlink("/etc/passwd", repo.work.join("ok/passwd.yaml")).expect("link");
    std::os::unix::fs::symlink("/etc", repo.work.join("etc-dir")).expect("link");
    let sha = repo.commit(&[], "evil links");
    let err = svc
        .render(&request(vec![source(&url, &sha, "ok")]), &cancel)
        .await
        .expect_err("symlink escape");
    let text = err.to_string();
    assert!(text.contains("symlinks that point outside"), "{text}");
    assert!(
        text.contains("ok/passwd.yaml") && text.contains("etc-dir"),
        "{text}"
    );
    assert_eq!(svc.cache_stats().entries, 0);
}

#[tokio::test]
async fn a_fifty_megabyte_file_is_refused_without_harming_other_paths() {
    let root = tempfile::tempdir().expect("tmp");
    let repo = Repo::create(root.path(), "big");
    let mut big = String::with_capacity(50 * 1024 * 1024 + 64);
    big.push_str("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: big\ndata:\n  blob: ");
    while big.len() < 50 * 1024 * 1024 {
        big.push_str("xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx");
    }
    big.push('\n');
    repo.commit(
        &[("huge/big.yaml", &big), ("small/cm.yaml", &cm("small"))],
        "big",
    );
    let dir = tempfile::tempdir().expect("tmp");
    let svc = service(dir.path());
    let cancel = CancellationToken::new();
    let err = svc
        .render(
            &request(vec![source(&repo.file_url(), "main", "huge")]),
            &cancel,
        )
        .await
        .expect_err("too large");
    let text = err.to_string();
    assert!(
        text.contains("over the limit") && text.contains("huge/big.yaml"),
        "{text}"
    );
    let rendered = svc
        .render(
            &request(vec![source(&repo.file_url(), "main", "small")]),
            &cancel,
        )
        .await
        .expect("other path fine");
    assert_eq!(names(&rendered), ["ConfigMap/small"]);
    assert_eq!(svc.cache_stats().entries, 1);
}

/// Without a worker the evaluation cannot be killed (it runs in-process): the render fails at
/// the deadline and the evaluation finishes in the background. This test's runtime is shut
/// down without waiting for it. (With a worker, see `jsonnet_worker`.)
#[test]
fn a_runaway_in_process_jsonnet_evaluation_is_reported_at_the_deadline() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let root = tempfile::tempdir().expect("tmp");
        let repo = Repo::create(root.path(), "slow-jsonnet");
        repo.commit(
            &[
                (
                    "slow/main.jsonnet",
                    "std.foldl(function(acc, x) acc + x, std.range(1, 10000000), 0)",
                ),
                ("fine/cm.yaml", &cm("fine")),
            ],
            "slow",
        );
        let dir = tempfile::tempdir().expect("tmp");
        let svc = crate::service_with(dir.path(), |c| {
            c.render.tool_timeout = std::time::Duration::from_secs(1);
            c.render.jsonnet_worker = None;
        });
        let cancel = CancellationToken::new();
        let err = svc
            .render(
                &request(vec![source(&repo.file_url(), "main", "slow")]),
                &cancel,
            )
            .await
            .expect_err("runaway");
        assert!(err.to_string().contains("did not finish within"), "{err}");
        assert_eq!(svc.cache_stats().entries, 0);
        svc.render(
            &request(vec![source(&repo.file_url(), "main", "fine")]),
            &cancel,
        )
        .await
        .expect("others unaffected");
    });
    runtime.shutdown_background();
}
