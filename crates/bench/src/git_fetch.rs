//! Git fetch scenarios: the cold first render of a repository with a long history of large
//! files, with a partial mirror (plumb's default, `--filter=blob:limit=1m`) against a full
//! mirror, and with a shallow fetch of a pinned commit against a full-history partial one.
//! The repository is written with `git fast-import` and served by lighttpd running
//! `git http-backend` with `uploadpack.allowFilter` on.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use plumb_source::render::Tools;
use plumb_source::{SourceConfig, SourceService};
use tokio_util::sync::CancellationToken;

use crate::harness::{Outcome, Scenario};
use crate::source::{GitServer, p50, request, runtime};

pub const SCENARIOS: &[Scenario] = &[
    Scenario {
        name: "git-fetch-partial",
        about: "cold first render of app/ in a repo with 120 MB of large-file history: partial vs full mirror (ms, p50)",
        run: partial_vs_full,
    },
    Scenario {
        name: "git-fetch-shallow",
        about: "cold first render of a pinned commit: depth 1 vs full-history partial mirror (ms, p50)",
        run: shallow_vs_history,
    },
];

const MB: usize = 1024 * 1024;
/// Commits in the generated history; each rewrites one 1 MB asset.
const COMMITS: usize = 100;

/// Deterministic bytes that do not compress.
fn noise(seed: u64, len: usize) -> Vec<u8> {
    let mut state = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    let mut out = Vec::with_capacity(len + 8);
    while out.len() < len {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        out.extend_from_slice(&state.to_le_bytes());
    }
    out.truncate(len);
    out
}

fn git(dir: &Path, args: &[&str]) -> anyhow::Result<String> {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .output()
        .context("running git")?;
    if !out.status.success() {
        bail!("git {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// `<root>/repos/big.git`: 100 commits, each rewriting one of ten 1 MB assets under
/// `assets/`, two 10 MB files under `media/` at the tip, and 50 small manifests under `app/`.
/// Returns the bare repository and the SHA of `main`.
fn make_repo(root: &Path) -> anyhow::Result<(PathBuf, String)> {
    let bare = root.join("repos/big.git");
    std::fs::create_dir_all(&bare)?;
    git(&bare, &["init", "-q", "--bare", "-b", "main"])?;
    git(&bare, &["config", "uploadpack.allowFilter", "true"])?;
    git(&bare, &["config", "uploadpack.allowAnySHA1InWant", "true"])?;
    let mut import = Command::new("git")
        .args(["fast-import", "--quiet"])
        .current_dir(&bare)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .stdin(Stdio::piped())
        .spawn()
        .context("git fast-import")?;
    {
        let stdin = import.stdin.as_mut().context("stdin")?;
        let mut stream = std::io::BufWriter::new(stdin);
        let file = |stream: &mut std::io::BufWriter<_>, path: &str, data: &[u8]| {
            writeln!(stream, "M 100644 inline {path}")?;
            writeln!(stream, "data {}", data.len())?;
            stream.write_all(data)?;
            writeln!(stream)
        };
        for i in 0..COMMITS {
            writeln!(stream, "commit refs/heads/main")?;
            writeln!(
                stream,
                "committer bench <bench@example.com> {} +0000",
                1_700_000_000 + i
            )?;
            let message = format!("commit {i}");
            writeln!(stream, "data {}\n{message}", message.len())?;
            if i == 0 {
                for app in 0..50 {
                    let manifest = format!(
                        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: app-{app}\ndata:\n  k: v\n"
                    );
                    file(
                        &mut stream,
                        &format!("app/cm-{app}.yaml"),
                        manifest.as_bytes(),
                    )?;
                }
            }
            file(
                &mut stream,
                &format!("assets/asset-{}.bin", i % 10),
                &noise(i as u64 + 1, MB),
            )?;
            if i == COMMITS - 1 {
                for m in 0..2 {
                    file(
                        &mut stream,
                        &format!("media/video-{m}.bin"),
                        &noise(1000 + m, 10 * MB),
                    )?;
                }
            }
        }
        stream.flush()?;
    }
    let status = import.wait()?;
    if !status.success() {
        bail!("git fast-import failed");
    }
    let sha = git(&bare, &["rev-parse", "main"])?;
    Ok((bare, sha))
}

fn dir_bytes(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.path().symlink_metadata() {
            Ok(m) if m.is_dir() => dir_bytes(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// One cold render of `app/` at `revision` with a fresh cache; returns the time and the
/// mirror's size on disk.
fn cold_render(
    scratch: &Path,
    url: &str,
    revision: &str,
    adjust: impl FnOnce(&mut SourceConfig),
) -> anyhow::Result<(Duration, u64)> {
    let cache = tempfile::tempdir_in(scratch)?;
    let mut config = SourceConfig::new(cache.path().join("cache"));
    adjust(&mut config);
    let tools = Tools::new(None, None, cache.path().join("cache/helm"));
    let svc = SourceService::with_tools(config, tools)?;
    let rt = runtime()?;
    let request = request(url, revision, "app");
    let cancel = CancellationToken::new();
    let started = Instant::now();
    let rendered = rt.block_on(svc.render(&request, &cancel))?;
    let took = started.elapsed();
    if rendered.manifests.len() != 50 {
        bail!("rendered {} objects, expected 50", rendered.manifests.len());
    }
    let parsed = svc.git().parse_url(url)?;
    Ok((took, dir_bytes(&svc.git().mirror_dir(&parsed))))
}

/// Runs `a` and `b` interleaved `rounds` times (drift on a noisy machine hits both alike);
/// returns their p50 times and last mirror sizes.
fn compare(
    rounds: usize,
    mut a: impl FnMut() -> anyhow::Result<(Duration, u64)>,
    mut b: impl FnMut() -> anyhow::Result<(Duration, u64)>,
) -> anyhow::Result<((f64, u64), (f64, u64))> {
    let (mut ta, mut tb) = (Vec::new(), Vec::new());
    let (mut sa, mut sb) = (0, 0);
    for _ in 0..rounds {
        let (t, s) = a()?;
        ta.push(t);
        sa = s;
        let (t, s) = b()?;
        tb.push(t);
        sb = s;
    }
    Ok(((p50(&mut ta), sa), (p50(&mut tb), sb)))
}

fn partial_vs_full() -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let (bare, _) = make_repo(dir.path())?;
    println!(
        "git-fetch-partial: server repository {:.1} MB, {COMMITS} commits",
        dir_bytes(&bare) as f64 / MB as f64
    );
    let server = GitServer::start(dir.path())?;
    let url = format!("http://127.0.0.1:{}/git/big.git", server.port);
    let scratch = dir.path().join("caches");
    std::fs::create_dir_all(&scratch)?;
    let ((partial, partial_bytes), (full, full_bytes)) = compare(
        5,
        || cold_render(&scratch, &url, "main", |_| {}),
        || {
            cold_render(&scratch, &url, "main", |c| {
                c.git.partial_clone_blob_limit = None
            })
        },
    )?;
    println!(
        "git-fetch-partial: mirror {:.1} MB partial vs {:.1} MB full",
        partial_bytes as f64 / MB as f64,
        full_bytes as f64 / MB as f64
    );
    Ok(Outcome {
        figure: partial,
        unit: "ms",
        baseline_label: "full mirror".into(),
        baseline: full,
        higher_is_better: false,
        fixed_budget: false,
    })
}

fn shallow_vs_history() -> anyhow::Result<Outcome> {
    let dir = tempfile::tempdir()?;
    let (_, sha) = make_repo(dir.path())?;
    let server = GitServer::start(dir.path())?;
    let url = format!("http://127.0.0.1:{}/git/big.git", server.port);
    let scratch = dir.path().join("caches");
    std::fs::create_dir_all(&scratch)?;
    let ((shallow, shallow_bytes), (history, history_bytes)) = compare(
        5,
        || cold_render(&scratch, &url, &sha, |c| c.git.depth = 1),
        || cold_render(&scratch, &url, &sha, |_| {}),
    )?;
    println!(
        "git-fetch-shallow: mirror {:.2} MB at depth 1 vs {:.2} MB with full (partial) history",
        shallow_bytes as f64 / MB as f64,
        history_bytes as f64 / MB as f64
    );
    Ok(Outcome {
        figure: shallow,
        unit: "ms",
        baseline_label: "full-history partial mirror".into(),
        baseline: history,
        higher_is_better: false,
        fixed_budget: false,
    })
}
