//! Source scenarios: revision resolution, directory renders (cold and cached), Kustomize and
//! Helm overhead over the tools themselves, and 100 applications on one monorepo commit.
//! Repositories are generated into temporary directories; the Git server is lighttpd running
//! `git http-backend` (as in plumb-source's tests).

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use plumb_model::application::{ApplicationSource, DirectorySource};
use plumb_source::jsonnet_worker::WorkerCommand;
use plumb_source::render::Tools;
use plumb_source::{RenderRequest, SourceConfig, SourceService, UrlPolicy};
use tokio_util::sync::CancellationToken;

use crate::harness::{Outcome, Scenario, percentile};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "source-resolve",
        about: "resolve an unchanged branch over smart HTTP vs `git ls-remote` on the same server (ms, p50)",
        run: resolve,
    },
    Scenario {
        name: "source-directory-cold",
        about: "render 1,000 YAML documents (5 MB) uncached, hard refresh (ms, p50; budget 150 ms) vs the same with serde-saphyr only",
        run: directory_cold,
    },
    Scenario {
        name: "source-jsonnet-worker",
        about: "uncached render of one Jsonnet file in a worker process (`plumb internal jsonnet-worker`) vs in-process (ms, p50)",
        run: jsonnet_worker,
    },
    Scenario {
        name: "source-render-cached",
        about: "a render served from the render cache (ms, p50; fixed budget 1 ms, no baseline)",
        run: render_cached,
    },
    Scenario {
        name: "source-kustomize",
        about: "uncached Kustomize render vs `kustomize build` on the same directory (ms, p50)",
        run: kustomize,
    },
    Scenario {
        name: "source-helm",
        about: "uncached Helm render vs `helm template` on the same chart (ms, p50)",
        run: helm,
    },
    Scenario {
        name: "source-monorepo-100",
        about: "100 apps on 100 paths of one commit, concurrently, cold (ms) vs one `git clone --bare`",
        run: monorepo,
    },
];

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<()> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "bench")
        .env("GIT_AUTHOR_EMAIL", "bench@example.com")
        .env("GIT_COMMITTER_NAME", "bench")
        .env("GIT_COMMITTER_EMAIL", "bench@example.com")
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(())
}

/// A bare repository `<root>/repos/<name>.git` holding `files` on `main`.
fn make_repo(root: &Path, name: &str, files: &[(String, String)]) -> anyhow::Result<PathBuf> {
    let work = root.join(format!("{name}-work"));
    let bare = root.join("repos").join(format!("{name}.git"));
    std::fs::create_dir_all(&work)?;
    std::fs::create_dir_all(root.join("repos"))?;
    git(&work, &["init", "-q", "-b", "main"])?;
    for (path, content) in files {
        let path = work.join(path);
        std::fs::create_dir_all(path.parent().context("parent")?)?;
        std::fs::write(path, content)?;
    }
    git(&work, &["add", "-A"])?;
    git(&work, &["commit", "-q", "-m", "bench"])?;
    git(
        root,
        &[
            "clone",
            "-q",
            "--bare",
            work.to_str().context("utf8")?,
            bare.to_str().context("utf8")?,
        ],
    )?;
    Ok(bare)
}

fn service(dir: &Path) -> anyhow::Result<SourceService> {
    service_with(dir, |_| {})
}

fn service_with(
    dir: &Path,
    adjust: impl FnOnce(&mut SourceConfig),
) -> anyhow::Result<SourceService> {
    let mut config = SourceConfig::new(dir.join("cache"));
    config.git.url_policy = UrlPolicy { allow_file: true };
    config.render_cache_entries = 10_000;
    adjust(&mut config);
    let bin =
        plumb_testcluster::bin_dir().context("helm/kustomize from scripts/build-testcluster")?;
    let tools = Tools::discover(&[bin], dir.join("cache/helm"));
    Ok(SourceService::with_tools(config, tools)?)
}

pub(crate) fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?)
}

pub(crate) fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

pub(crate) fn p50(samples: &mut [Duration]) -> f64 {
    ms(percentile(samples, 50.0))
}

pub(crate) fn request(url: &str, revision: &str, path: &str) -> RenderRequest {
    RenderRequest {
        app_name: "bench".into(),
        namespace: "bench".into(),
        sources: vec![ApplicationSource {
            repo_url: url.into(),
            target_revision: revision.into(),
            path: path.into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

/// lighttpd + git http-backend for `<root>/repos` (shared with the git-fetch scenarios).
pub(crate) struct GitServer {
    child: Child,
    pub(crate) port: u16,
}

impl GitServer {
    pub(crate) fn start(root: &Path) -> anyhow::Result<GitServer> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let config = format!(
            r#"server.document-root = "{root}"
server.port = {port}
server.bind = "127.0.0.1"
server.modules = ("mod_alias", "mod_setenv", "mod_cgi")
server.errorlog = "{root}/lighttpd.log"
alias.url = ( "/git/" => "/usr/lib/git-core/git-http-backend/" )
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ( "" => "" )
  setenv.add-environment = ( "GIT_PROJECT_ROOT" => "{root}/repos", "GIT_HTTP_EXPORT_ALL" => "1" )
}}
"#,
            root = root.display()
        );
        std::fs::write(root.join("lighttpd.conf"), config)?;
        let child = Command::new("lighttpd")
            .args(["-D", "-f"])
            .arg(root.join("lighttpd.conf"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("lighttpd (scripts/install-test-deps installs it)")?;
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            if Instant::now() > deadline {
                bail!("lighttpd did not start");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(GitServer { child, port })
    }
}

impl Drop for GitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Renders `req` with `measured` and then `baseline`, `rounds` times over, interleaved so
/// drift on a noisy machine hits both alike; returns the durations of each.
fn interleaved_renders(
    rt: &tokio::runtime::Runtime,
    measured: &SourceService,
    baseline: &SourceService,
    req: &RenderRequest,
    cancel: &CancellationToken,
    rounds: usize,
) -> anyhow::Result<(Vec<Duration>, Vec<Duration>)> {
    let (mut measured_times, mut baseline_times) = (Vec::new(), Vec::new());
    for _ in 0..rounds {
        let start = Instant::now();
        rt.block_on(measured.render(req, cancel))?;
        measured_times.push(start.elapsed());
        let start = Instant::now();
        rt.block_on(baseline.render(req, cancel))?;
        baseline_times.push(start.elapsed());
    }
    Ok((measured_times, baseline_times))
}

fn resolve() -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    make_repo(dir.path(), "app", &[("cm.yaml".into(), configmap("a", 10))])?;
    let server = GitServer::start(dir.path())?;
    let url = format!("http://127.0.0.1:{}/git/app.git", server.port);
    let svc = service(dir.path())?;
    let rt = runtime()?;
    let cancel = CancellationToken::new();
    let source = request(&url, "main", ".").sources.remove(0);
    let rounds = 40;
    let (mut plumb, mut baseline) = (Vec::new(), Vec::new());
    // Interleaved, so drift on a noisy machine hits both alike.
    for _ in 0..rounds {
        let start = Instant::now();
        rt.block_on(svc.resolve(&source, &cancel))?;
        plumb.push(start.elapsed());
        let start = Instant::now();
        let out = Command::new("git").args(["ls-remote", &url]).output()?;
        baseline.push(start.elapsed());
        if !out.status.success() {
            bail!("git ls-remote failed");
        }
    }
    Ok(Outcome {
        figure: p50(&mut plumb),
        unit: "ms",
        baseline_label: "git ls-remote".into(),
        baseline: p50(&mut baseline),
        higher_is_better: false,
        fixed_budget: false,
    })
}

/// A ConfigMap document of roughly `kb` kilobytes.
fn configmap(name: &str, kb: usize) -> String {
    let mut doc = format!(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {name}\n  labels:\n    app: bench\ndata:\n"
    );
    let mut i = 0;
    while doc.len() < kb * 1024 {
        doc.push_str(&format!(
            "  key{i}: \"value number {i} of the generated configuration map\"\n"
        ));
        i += 1;
    }
    doc
}

/// 100 files of 10 documents of ~5 KB: 1,000 documents, ~5 MB.
fn big_directory() -> Vec<(String, String)> {
    (0..100)
        .map(|f| {
            let docs: Vec<String> = (0..10)
                .map(|d| configmap(&format!("cm-{f}-{d}"), 5))
                .collect();
            (format!("big/file{f:03}.yaml"), docs.join("---\n"))
        })
        .collect()
}

fn directory_cold() -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let files = big_directory();
    let bytes: usize = files.iter().map(|(_, c)| c.len()).sum();
    let bare = make_repo(dir.path(), "big", &files)?;
    let url = format!("file://{}", bare.display());
    // The same render with every document through serde-saphyr (the fast path for plain
    // block YAML off): what this scenario measured before the fast path.
    let svc = service(&dir.path().join("fast"))?;
    let saphyr = service_with(&dir.path().join("saphyr"), |c| {
        c.render.yaml_fast_path = false
    })?;
    let rt = runtime()?;
    let cancel = CancellationToken::new();
    let mut req = request(&url, "main", "big");
    let first = rt.block_on(svc.render(&req, &cancel))?;
    if first.manifests.len() != 1000 {
        bail!("expected 1000 objects, got {}", first.manifests.len());
    }
    let reference = rt.block_on(saphyr.render(&req, &cancel))?;
    if reference.manifests != first.manifests {
        bail!("the fast path and serde-saphyr rendered different objects");
    }
    req.sources[0].target_revision = first.revisions[0].clone();
    req.hard_refresh = true;
    let (mut samples, mut baseline) = interleaved_renders(&rt, &svc, &saphyr, &req, &cancel, 15)?;
    let figure = p50(&mut samples);
    eprintln!(
        "source-directory-cold: {} documents, {bytes} bytes; budget 150 ms: {:.2}x under it",
        first.manifests.len(),
        150.0 / figure
    );
    Ok(Outcome {
        figure,
        unit: "ms",
        baseline_label: "serde-saphyr only (before the fast path)".into(),
        baseline: p50(&mut baseline),
        higher_is_better: false,
        fixed_budget: false,
    })
}

/// The `plumb` binary next to this harness (built if missing), whose `internal
/// jsonnet-worker` is the worker plumb uses.
fn plumb_binary() -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let dir = exe.parent().context("harness binary has no directory")?;
    let mut build = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    build.args(["build", "-q", "-p", "plumb"]);
    if dir.ends_with("release") {
        build.arg("--release");
    }
    let status = build.status().context("running cargo build -p plumb")?;
    anyhow::ensure!(status.success(), "cargo build -p plumb failed");
    Ok(dir.join("plumb"))
}

/// The added cost of evaluating Jsonnet in a killable worker process: one file (20
/// ConfigMaps through a function and a library import) rendered uncached both ways,
/// interleaved.
fn jsonnet_worker() -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let files = vec![
        (
            "app/main.jsonnet".to_string(),
            "local lib = import '../lib/cm.libsonnet';\n[lib.cm('cm-%d' % i, i) for i in std.range(1, 20)]\n".to_string(),
        ),
        (
            "lib/cm.libsonnet".to_string(),
            "{ cm(name, i):: { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: name, labels: { app: 'bench' } }, data: { index: std.toString(i), text: std.join(',', [std.toString(j) for j in std.range(1, 50)]) } } }\n".to_string(),
        ),
    ];
    let bare = make_repo(dir.path(), "jsonnet", &files)?;
    let url = format!("file://{}", bare.display());
    let plumb = plumb_binary()?;
    let worker = service_with(&dir.path().join("worker"), |c| {
        c.render.jsonnet_worker = Some(
            WorkerCommand::new(&plumb)
                .arg("internal")
                .arg("jsonnet-worker"),
        )
    })?;
    let in_process = service_with(&dir.path().join("inline"), |c| {
        c.render.jsonnet_worker = None
    })?;
    let rt = runtime()?;
    let cancel = CancellationToken::new();
    let mut req = request(&url, "main", "app");
    let first = rt.block_on(worker.render(&req, &cancel))?;
    let reference = rt.block_on(in_process.render(&req, &cancel))?;
    if first.manifests.len() != 20 || first.manifests != reference.manifests {
        bail!("the worker and in-process renders differ");
    }
    req.sources[0].target_revision = first.revisions[0].clone();
    req.hard_refresh = true;
    let (mut samples, mut baseline) =
        interleaved_renders(&rt, &worker, &in_process, &req, &cancel, 40)?;
    let (figure, base) = (p50(&mut samples), p50(&mut baseline));
    eprintln!(
        "source-jsonnet-worker: {:.2} ms added per Jsonnet file (spawn of {}, request, answer)",
        figure - base,
        plumb.display()
    );
    Ok(Outcome {
        figure,
        unit: "ms",
        baseline_label: "in-process jsonnet".into(),
        baseline: base,
        higher_is_better: false,
        fixed_budget: false,
    })
}

fn render_cached() -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let bare = make_repo(dir.path(), "big", &big_directory())?;
    let url = format!("file://{}", bare.display());
    let svc = service(dir.path())?;
    let rt = runtime()?;
    let cancel = CancellationToken::new();
    let mut req = request(&url, "main", "big");
    let first = rt.block_on(svc.render(&req, &cancel))?;
    // By commit SHA, as the controller asks once it has resolved the revision.
    req.sources[0].target_revision = first.revisions[0].clone();
    rt.block_on(svc.render(&req, &cancel))?;
    let mut samples = Vec::new();
    for _ in 0..1000 {
        let start = Instant::now();
        let hit = rt.block_on(svc.render(&req, &cancel))?;
        samples.push(start.elapsed());
        if !hit.cache_hit {
            bail!("expected a cache hit");
        }
    }
    Ok(Outcome {
        figure: p50(&mut samples),
        unit: "ms",
        baseline_label: "BENCHMARKS.md target".into(),
        baseline: 1.0,
        higher_is_better: false,
        fixed_budget: true,
    })
}

/// Times `plumb` renders (hard refresh, so uncached) against the tool run directly on the
/// same checkout, interleaved.
fn tool_overhead(
    files: Vec<(String, String)>,
    path: &str,
    direct: impl Fn(&Path) -> Command,
    label: &str,
) -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let bare = make_repo(dir.path(), "tool", &files)?;
    let url = format!("file://{}", bare.display());
    let svc = service(dir.path())?;
    let rt = runtime()?;
    let cancel = CancellationToken::new();
    let mut req = request(&url, "main", path);
    let first = rt.block_on(svc.render(&req, &cancel))?;
    req.sources[0].target_revision = first.revisions[0].clone();
    req.hard_refresh = true;
    let checkout = dir.path().join("plain-checkout");
    git(
        dir.path(),
        &[
            "clone",
            "-q",
            bare.to_str().context("utf8")?,
            checkout.to_str().context("utf8")?,
        ],
    )?;
    let target = checkout.join(path);
    let (mut plumb, mut baseline) = (Vec::new(), Vec::new());
    for _ in 0..15 {
        let start = Instant::now();
        rt.block_on(svc.render(&req, &cancel))?;
        plumb.push(start.elapsed());
        let start = Instant::now();
        let out = direct(&target).output()?;
        baseline.push(start.elapsed());
        if !out.status.success() {
            bail!("{label}: {}", String::from_utf8_lossy(&out.stderr));
        }
    }
    Ok(Outcome {
        figure: p50(&mut plumb),
        unit: "ms",
        baseline_label: label.into(),
        baseline: p50(&mut baseline),
        higher_is_better: false,
        fixed_budget: false,
    })
}

fn kustomize() -> anyhow::Result<Outcome> {
    let mut files = vec![(
        "app/kustomization.yaml".to_string(),
        format!(
            "namePrefix: bench-\ncommonLabels:\n  team: bench\nresources:\n{}",
            (0..50)
                .map(|i| format!("- cm{i}.yaml\n"))
                .collect::<String>()
        ),
    )];
    for i in 0..50 {
        files.push((format!("app/cm{i}.yaml"), configmap(&format!("cm{i}"), 2)));
    }
    let bin = plumb_testcluster::binary("kustomize")?;
    tool_overhead(
        files,
        "app",
        move |dir| {
            let mut c = Command::new(&bin);
            c.arg("build").arg(dir);
            c
        },
        "kustomize build",
    )
}

fn helm() -> anyhow::Result<Outcome> {
    let mut files = vec![
        ("chart/Chart.yaml".to_string(), "apiVersion: v2\nname: bench\nversion: 0.1.0\n".to_string()),
        ("chart/values.yaml".to_string(), "count: 50\n".to_string()),
        (
            "chart/templates/cms.yaml".to_string(),
            "{{- range $i := until (int .Values.count) }}\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ $.Release.Name }}-{{ $i }}\ndata:\n  index: \"{{ $i }}\"\n{{- end }}\n".to_string(),
        ),
    ];
    files.push(("chart/templates/svc.yaml".to_string(), "apiVersion: v1\nkind: Service\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  ports: [{port: 80}]\n".to_string()));
    let bin = plumb_testcluster::binary("helm")?;
    let home = tempfile::tempdir()?;
    let home_path = home.path().to_path_buf();
    tool_overhead(
        files,
        "chart",
        move |dir| {
            let mut c = Command::new(&bin);
            c.args(["template", "bench"])
                .arg(dir)
                .args(["--namespace", "bench", "--include-crds"])
                .env("HELM_CONFIG_HOME", home_path.join("config"))
                .env("HELM_CACHE_HOME", home_path.join("cache"))
                .env("HELM_DATA_HOME", home_path.join("data"));
            c
        },
        "helm template",
    )
}

fn monorepo() -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let mut files = Vec::new();
    for app in 0..100 {
        for doc in 0..5 {
            files.push((
                format!("apps/app{app:03}/cm{doc}.yaml"),
                configmap(&format!("app{app}-{doc}"), 2),
            ));
        }
    }
    make_repo(dir.path(), "mono", &files)?;
    let server = GitServer::start(dir.path())?;
    let url = format!("http://127.0.0.1:{}/git/mono.git", server.port);

    let start = Instant::now();
    let out = Command::new("git")
        .args(["clone", "-q", "--bare", &url])
        .arg(dir.path().join("baseline-clone"))
        .output()?;
    let clone = start.elapsed();
    if !out.status.success() {
        bail!("git clone: {}", String::from_utf8_lossy(&out.stderr));
    }

    let svc = Arc::new(service(dir.path())?);
    let rt = runtime()?;
    let start = Instant::now();
    let results: Vec<anyhow::Result<usize>> = rt.block_on(async {
        let tasks: Vec<_> = (0..100)
            .map(|app| {
                let svc = svc.clone();
                let url = url.clone();
                tokio::spawn(async move {
                    let cancel = CancellationToken::new();
                    let mut req = request(&url, "main", &format!("apps/app{app:03}"));
                    req.sources[0].directory = Some(DirectorySource::default());
                    Ok(svc.render(&req, &cancel).await?.manifests.len())
                })
            })
            .collect();
        let mut out = Vec::new();
        for task in tasks {
            out.push(task.await.unwrap_or_else(|e| Err(anyhow::anyhow!(e))));
        }
        out
    });
    let elapsed = start.elapsed();
    for r in results {
        if r? != 5 {
            bail!("an app rendered the wrong number of objects");
        }
    }
    let fetches = svc.git().stats.fetches.load(Ordering::SeqCst);
    eprintln!(
        "source-monorepo-100: {fetches} fetch(es), {} checkout(s)",
        svc.git().stats.checkouts.load(Ordering::SeqCst)
    );
    if fetches != 1 {
        bail!("expected one fetch for 100 apps, saw {fetches}");
    }
    Ok(Outcome {
        figure: ms(elapsed),
        unit: "ms",
        baseline_label: "one git clone --bare".into(),
        baseline: ms(clone),
        higher_is_better: false,
        fixed_budget: false,
    })
}
