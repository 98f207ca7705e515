//! Git repositories: revision resolution, a cache of bare mirrors, read-only checkouts of one
//! commit, commit metadata and submodules. All through the `git` binary (see [`auth`] for how
//! credentials reach it).
//!
//! Concurrency: each mirror has its own fetch lock (one fetch at a time per repository);
//! reading objects needs no lock (git writes packs and refs atomically), so renders of
//! different paths of one repository never wait on each other. A checkout of a commit is
//! built once and shared read-only by every render of that commit.

mod auth;
pub mod gpg;
pub mod partial;
pub mod revision;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use crate::command::{self, CommandError, CommandSpec, UnsafeArgument};
use crate::creds::{CredentialStore, Credentials};
use crate::url::{RepoUrl, Transport, UrlError, UrlPolicy};
pub use gpg::{GpgError, PublicKey, SignatureInfo, SignatureRejection};
pub use partial::Scope;
pub use revision::{RemoteRef, Resolution, RevisionError};

/// How the git layer behaves.
#[derive(Debug, Clone)]
pub struct GitConfig {
    /// Where mirrors and checkouts live.
    pub cache_dir: PathBuf,
    /// Mirrors are evicted (least recently used first) above this many bytes.
    pub max_mirror_bytes: u64,
    /// Checkouts kept for reuse (each is one commit of one repository).
    pub max_checkouts: usize,
    /// Per git command.
    pub timeout: Duration,
    pub url_policy: UrlPolicy,
    /// ssh known_hosts content (Argo CD's `argocd-ssh-known-hosts-cm`).
    pub ssh_known_hosts: Option<String>,
    pub git_binary: PathBuf,
    /// Partial clone: blobs larger than this many bytes are left on the server
    /// (`--filter=blob:limit=<n>`) until a render of the path that holds them needs them.
    /// `None` keeps full mirrors. Servers that do not allow filtering
    /// (`uploadpack.allowFilter`) get a full fetch and a log line saying so.
    pub partial_clone_blob_limit: Option<u64>,
    /// Shallow fetches: commits fetched this many deep (Argo CD's repository `depth`);
    /// 0 fetches full history. Opt-in: see ARCHITECTURE.md for why it is not the default.
    pub depth: u32,
    /// Per repository (normalised URL, [`RepoUrl::normalized`]) depth overriding `depth`.
    pub repository_depth: HashMap<String, u32>,
    /// The `gpg` used to import signature keys and to verify commits.
    pub gpg_binary: PathBuf,
}

impl GitConfig {
    pub fn new(cache_dir: impl Into<PathBuf>) -> Self {
        GitConfig {
            cache_dir: cache_dir.into(),
            max_mirror_bytes: 10 * 1024 * 1024 * 1024,
            max_checkouts: 64,
            timeout: Duration::from_secs(90),
            url_policy: UrlPolicy::default(),
            ssh_known_hosts: None,
            git_binary: PathBuf::from("git"),
            partial_clone_blob_limit: Some(1024 * 1024),
            depth: 0,
            repository_depth: HashMap::new(),
            gpg_binary: PathBuf::from("gpg"),
        }
    }

    /// The shallow depth for `url` (0: full history).
    pub fn depth_for(&self, url: &RepoUrl) -> u32 {
        self.repository_depth
            .get(url.normalized())
            .copied()
            .unwrap_or(self.depth)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum GitError {
    #[error(transparent)]
    Url(#[from] UrlError),
    #[error(transparent)]
    UnsafeArgument(#[from] UnsafeArgument),
    #[error("authentication failed for {url}: {message}")]
    AuthFailed { url: String, message: String },
    #[error("host key verification failed for {url}: {message}")]
    HostKey { url: String, message: String },
    #[error("repository {url} is unreachable: {message}")]
    Unreachable { url: String, message: String },
    #[error("repository {url} not found: {message}")]
    RepositoryNotFound { url: String, message: String },
    #[error("{source} in {url}")]
    Revision {
        url: String,
        #[source]
        source: RevisionError,
    },
    #[error("git {operation} for {url} failed: {message}")]
    Failed {
        operation: &'static str,
        url: String,
        message: String,
    },
    #[error("git {operation} for {url}: {source}")]
    Command {
        operation: &'static str,
        url: String,
        #[source]
        source: CommandError,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: std::io::Error,
    },
    #[error("submodule {path:?} of {url}: {message}")]
    Submodule {
        url: String,
        path: String,
        message: String,
    },
    #[error(transparent)]
    Gpg(#[from] GpgError),
    /// Refused by the signature rule (before anything is checked out, rendered or cached).
    #[error("{source}")]
    Untrusted {
        url: String,
        #[source]
        source: Box<SignatureRejection>,
    },
}

impl GitError {
    fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> GitError {
        let what = what.into();
        move |source| GitError::Io { what, source }
    }
}

/// A resolved revision.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResolvedRevision {
    pub sha: String,
    /// The ref it was found through (`refs/heads/main`), if any.
    pub via: Option<String>,
}

/// Commit metadata for history and the UI.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitMetadata {
    pub sha: String,
    pub author_name: String,
    pub author_email: String,
    /// ISO 8601 author date.
    pub date: String,
    pub message: String,
    /// Whether the commit carries a signature at all.
    pub signed: bool,
    /// git's `%G?` against the service's keyring: G good, B bad, U unknown validity, X/Y
    /// expired, R revoked, E cannot be checked (key not in the keyring), N none.
    pub signature_status: char,
    /// The ID of the key that made the signature, known or not.
    pub signature_key_id: Option<String>,
    /// A good signature by a key in the keyring.
    pub signature_trusted: bool,
}

/// A read-only copy of one commit's tree. Removed from disk when the cache has evicted it
/// and the last render using it is done.
#[derive(Debug)]
pub struct Checkout {
    root: PathBuf,
    pub sha: String,
    pub url: String,
    /// Symlinks that resolve outside the checkout (repository-relative paths); any render
    /// of this commit refuses them, as Argo CD does.
    pub escaping_symlinks: Vec<String>,
    /// Files of the commit not written because a partial mirror left their blobs (larger
    /// than the blob limit) on the server and they lie outside the rendered path.
    pub omitted: Vec<String>,
}

impl Checkout {
    pub fn root(&self) -> &Path {
        &self.root
    }
}

impl Drop for Checkout {
    fn drop(&mut self) {
        // Best effort: a directory left behind is swept on the next start.
        let _ = std::fs::remove_dir_all(&self.root);
    }
}

struct Mirror {
    dir: PathBuf,
    fetch_lock: tokio::sync::Mutex<()>,
    last_used: AtomicU64,
    bytes: AtomicU64,
    /// Renders and fetches currently using this mirror; never evicted while non-zero.
    users: std::sync::atomic::AtomicUsize,
    /// The partial-clone settings are written into this mirror's config (once per process).
    configured: AtomicBool,
    /// The server ignored `--filter` once: later fetches do not ask again.
    filter_refused: AtomicBool,
}

impl Mirror {
    fn new(dir: PathBuf, bytes: u64) -> Mirror {
        Mirror {
            dir,
            fetch_lock: tokio::sync::Mutex::new(()),
            last_used: AtomicU64::new(0),
            bytes: AtomicU64::new(bytes),
            users: Default::default(),
            configured: AtomicBool::new(false),
            filter_refused: AtomicBool::new(false),
        }
    }

    /// Whether some pack came from a filtered fetch (git marks those with `.promisor`).
    fn is_partial(&self) -> bool {
        std::fs::read_dir(self.dir.join("objects/pack")).is_ok_and(|entries| {
            entries
                .flatten()
                .any(|e| e.path().extension().is_some_and(|x| x == "promisor"))
        })
    }

    fn is_shallow(&self) -> bool {
        self.dir.join("shallow").is_file()
    }
}

struct MirrorUse(Arc<Mirror>);

impl Drop for MirrorUse {
    fn drop(&mut self) {
        self.0.users.fetch_sub(1, Ordering::SeqCst);
    }
}

/// One in-flight ls-remote; `None` when it failed.
type RefsFlight = Arc<tokio::sync::OnceCell<Option<Arc<Vec<RemoteRef>>>>>;

/// Callers share an ls-remote only with the same repository *and* the same credentials.
fn flight_key(url: &RepoUrl, creds: Option<&Credentials>) -> String {
    let mut hasher = Sha256::new();
    hasher.update(url.fetch_url().as_bytes());
    if let Some(c) = creds {
        for field in [
            &c.username,
            &c.password,
            &c.ssh_private_key,
            &c.tls_client_cert_data,
        ] {
            hasher.update([0xff]);
            hasher.update(field.as_deref().unwrap_or("").as_bytes());
        }
        hasher.update([u8::from(c.insecure)]);
    }
    hex::encode(hasher.finalize())
}

type CheckoutSlot = Arc<tokio::sync::Mutex<Option<Arc<Checkout>>>>;

/// Statistics for metrics and benchmarks.
#[derive(Debug, Default)]
pub struct GitStats {
    pub ls_remotes: AtomicU64,
    pub fetches: AtomicU64,
    pub checkouts: AtomicU64,
    pub reclones: AtomicU64,
    pub evictions: AtomicU64,
    /// Batches of blobs a partial mirror fetched for a checkout.
    pub blob_fetches: AtomicU64,
    /// Filtered fetches the server answered in full (no `uploadpack.allowFilter`).
    pub filter_fallbacks: AtomicU64,
    /// `git log` runs that checked a commit's signature.
    pub signature_checks: AtomicU64,
}

/// The cache of mirrors and checkouts.
pub struct GitCache {
    config: GitConfig,
    askpass: PathBuf,
    known_hosts: Option<PathBuf>,
    mirrors: Mutex<HashMap<String, Arc<Mirror>>>,
    checkouts: Mutex<HashMap<String, (CheckoutSlot, u64)>>,
    ls_flights: Mutex<HashMap<String, RefsFlight>>,
    /// (commit, scope) → the checkout key it was last served from, so that a repeated
    /// checkout of one path starts no process.
    scoped: Mutex<HashMap<String, String>>,
    /// Signature checks by (repository, commit, keyring generation).
    signatures: Mutex<HashMap<String, SignatureInfo>>,
    keyring: gpg::Keyring,
    clock: AtomicU64,
    pub stats: GitStats,
}

fn key_of(text: &str) -> String {
    hex::encode(&Sha256::digest(text.as_bytes())[..12])
}

impl GitCache {
    /// Opens (creating) the cache directory. Mirrors left by an earlier run are reused;
    /// checkouts are not (they are cheap to rebuild and may be half-written).
    pub fn open(config: GitConfig) -> Result<GitCache, GitError> {
        let root = &config.cache_dir;
        for dir in ["mirrors", "checkouts", "scratch"] {
            std::fs::create_dir_all(root.join(dir)).map_err(GitError::io(format!(
                "creating {}",
                root.join(dir).display()
            )))?;
        }
        for stale in ["checkouts", "scratch"] {
            if let Ok(entries) = std::fs::read_dir(root.join(stale)) {
                for entry in entries.flatten() {
                    let _ = std::fs::remove_dir_all(entry.path());
                    let _ = std::fs::remove_file(entry.path());
                }
            }
        }
        let askpass = auth::write_askpass(root).map_err(GitError::io(format!(
            "writing the askpass helper in {}",
            root.display()
        )))?;
        let known_hosts = match &config.ssh_known_hosts {
            Some(text) => {
                let path = root.join("known_hosts");
                std::fs::write(&path, text)
                    .map_err(GitError::io(format!("writing {}", path.display())))?;
                Some(path)
            }
            None => None,
        };
        let mut mirrors = HashMap::new();
        if let Ok(entries) = std::fs::read_dir(root.join("mirrors")) {
            for entry in entries.flatten() {
                let dir = entry.path();
                let Some(name) = dir.file_name().map(|n| n.to_string_lossy().into_owned()) else {
                    continue;
                };
                let bytes = dir_size(&dir);
                mirrors.insert(name, Arc::new(Mirror::new(dir, bytes)));
            }
        }
        let keyring = gpg::Keyring::open(&root.join("gnupg"), &config.gpg_binary, config.timeout)?;
        Ok(GitCache {
            config,
            askpass,
            known_hosts,
            mirrors: Mutex::new(mirrors),
            checkouts: Mutex::new(HashMap::new()),
            ls_flights: Mutex::new(HashMap::new()),
            scoped: Mutex::new(HashMap::new()),
            signatures: Mutex::new(HashMap::new()),
            keyring,
            clock: AtomicU64::new(1),
            stats: GitStats::default(),
        })
    }

    pub fn config(&self) -> &GitConfig {
        &self.config
    }

    pub fn parse_url(&self, url: &str) -> Result<RepoUrl, GitError> {
        Ok(RepoUrl::parse(url, self.config.url_policy)?)
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::SeqCst)
    }

    fn auth(&self, url: &RepoUrl, creds: Option<&Credentials>) -> Result<auth::GitAuth, GitError> {
        auth::git_auth(
            url,
            creds,
            &auth::AuthContext {
                askpass: &self.askpass,
                scratch: &self.config.cache_dir.join("scratch"),
                known_hosts: self.known_hosts.as_deref(),
                allow_file: self.config.url_policy.allow_file,
            },
        )
        .map_err(GitError::io("preparing git credentials"))
    }

    /// A git command against `git_dir` with the credentials for `url`.
    fn git(&self, git_dir: Option<&Path>, auth: &auth::GitAuth) -> CommandSpec {
        let mut spec = CommandSpec::new(&self.config.git_binary)
            .timeout(self.config.timeout)
            .without_inherited("GIT_");
        for (k, v) in &auth.env {
            spec = spec.env(k, v);
        }
        for c in &auth.config {
            spec = spec.arg("-c").arg(c);
        }
        if let Some(dir) = git_dir {
            spec = spec.arg("--git-dir").arg(dir);
        }
        spec
    }

    /// A local git command against `git_dir`: no credentials, and no network at all. In a
    /// partial mirror git would fetch a missing object on its own ("lazy fetch"); naming no
    /// allowed protocol turns that into an error, so every transfer goes through
    /// [`Self::fetch`] or [`Self::fetch_blobs`] with the repository's credentials, timeout
    /// and cancellation.
    fn plain_git(&self, git_dir: &Path) -> CommandSpec {
        self.git_without_config()
            .env("GIT_ALLOW_PROTOCOL", "none")
            .env("LC_ALL", "C")
            .arg("--git-dir")
            .arg(git_dir)
    }

    /// git with neither the system's nor the user's configuration (nor any `GIT_*` variable
    /// of ours) in force.
    fn git_without_config(&self) -> CommandSpec {
        CommandSpec::new(&self.config.git_binary)
            .timeout(self.config.timeout)
            .without_inherited("GIT_")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env("GIT_CONFIG_GLOBAL", "/dev/null")
    }

    /// The refs the remote advertises (one `git ls-remote`, no fetch). Concurrent callers
    /// asking about the same repository with the same credentials share one ls-remote
    /// (100 applications of one monorepo resolve with one round trip, not 100).
    pub async fn ls_remote(
        &self,
        url: &RepoUrl,
        creds: Option<&Credentials>,
        cancel: &CancellationToken,
    ) -> Result<Vec<RemoteRef>, GitError> {
        let key = flight_key(url, creds);
        let flight = {
            let mut flights = self.ls_flights.lock().unwrap_or_else(|e| e.into_inner());
            flights.entry(key.clone()).or_default().clone()
        };
        let mut own_error = None;
        let shared = flight
            .get_or_init(|| async {
                match self.ls_remote_now(url, creds, cancel).await {
                    Ok(refs) => Some(Arc::new(refs)),
                    Err(e) => {
                        own_error = Some(e);
                        None
                    }
                }
            })
            .await
            .clone();
        {
            let mut flights = self.ls_flights.lock().unwrap_or_else(|e| e.into_inner());
            if flights.get(&key).is_some_and(|f| Arc::ptr_eq(f, &flight)) {
                flights.remove(&key);
            }
        }
        match (shared, own_error) {
            (Some(refs), _) => Ok(refs.as_ref().clone()),
            (None, Some(e)) => Err(e),
            // Someone else's ls-remote failed: ask on our own, for our own error.
            (None, None) => self.ls_remote_now(url, creds, cancel).await,
        }
    }

    async fn ls_remote_now(
        &self,
        url: &RepoUrl,
        creds: Option<&Credentials>,
        cancel: &CancellationToken,
    ) -> Result<Vec<RemoteRef>, GitError> {
        let auth = self.auth(url, creds)?;
        let spec = self
            .git(None, &auth)
            .args(["ls-remote", "--"])
            .arg(url.fetch_url())
            .max_stdout(64 * 1024 * 1024);
        self.stats.ls_remotes.fetch_add(1, Ordering::Relaxed);
        let out = run_git(&spec, "ls-remote", url, cancel).await?;
        if !out.success {
            return Err(classify(url, "ls-remote", &out.stderr, creds));
        }
        Ok(revision::parse_ls_remote(&String::from_utf8_lossy(
            &out.stdout,
        )))
    }

    /// Resolves `revision` to a commit with one ls-remote; fetches only when the revision is
    /// an abbreviated SHA that no ref points at.
    pub async fn resolve(
        &self,
        url: &RepoUrl,
        revision: &str,
        creds: Option<&Credentials>,
        cancel: &CancellationToken,
    ) -> Result<ResolvedRevision, GitError> {
        command::check_argument("revision", revision)?;
        // A full SHA names its commit already: no round trip (a render of it can then be
        // served from the cache without starting any process).
        if revision::is_full_sha(revision.trim()) {
            return Ok(ResolvedRevision {
                sha: revision.trim().to_lowercase(),
                via: None,
            });
        }
        let refs = self.ls_remote(url, creds, cancel).await?;
        let wrap = |source| GitError::Revision {
            url: url.to_string(),
            source,
        };
        match revision::resolve(revision, &refs).map_err(wrap)? {
            Resolution::Commit { sha, via } => Ok(ResolvedRevision { sha, via }),
            Resolution::ShortSha(short) => {
                let sha = self.ensure_commit(url, &short, creds, cancel).await?;
                Ok(ResolvedRevision { sha, via: None })
            }
        }
    }

    fn mirror(&self, url: &RepoUrl) -> Arc<Mirror> {
        let key = key_of(url.normalized());
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        let mirror = mirrors
            .entry(key.clone())
            .or_insert_with(|| {
                Arc::new(Mirror::new(
                    self.config.cache_dir.join("mirrors").join(&key),
                    0,
                ))
            })
            .clone();
        mirror.last_used.store(self.tick(), Ordering::SeqCst);
        mirror.users.fetch_add(1, Ordering::SeqCst);
        mirror
    }

    /// Whether `rev` names a commit present in the mirror. `Err` when the mirror is broken.
    async fn has_commit(
        &self,
        mirror: &Mirror,
        rev: &str,
        cancel: &CancellationToken,
    ) -> Result<Option<String>, String> {
        if !mirror.dir.join("HEAD").is_file() {
            return Ok(None);
        }
        let spec = self
            .plain_git(&mirror.dir)
            .args(["rev-parse", "--verify", "--quiet", "--end-of-options"])
            .arg(format!("{rev}^{{commit}}"));
        match command::run(&spec, cancel).await {
            Ok(out) if out.success => Ok(Some(
                String::from_utf8_lossy(&out.stdout).trim().to_string(),
            )),
            Ok(out) if looks_corrupt(&out.stderr) => Err(out.stderr),
            Ok(_) => Ok(None),
            Err(e) => Err(e.to_string()),
        }
    }

    /// Makes sure the commit `rev` (full or abbreviated SHA) is in the mirror, fetching if it
    /// is not; returns its full SHA. One fetch at a time per repository; a broken mirror is
    /// removed and cloned again.
    pub async fn ensure_commit(
        &self,
        url: &RepoUrl,
        rev: &str,
        creds: Option<&Credentials>,
        cancel: &CancellationToken,
    ) -> Result<String, GitError> {
        command::check_argument("revision", rev)?;
        let mirror = self.mirror(url);
        let _use = MirrorUse(mirror.clone());
        // A partial mirror when partial clone has been turned off: start a full one.
        let unwanted_partial =
            || self.config.partial_clone_blob_limit.is_none() && mirror.is_partial();
        if !unwanted_partial()
            && let Ok(Some(sha)) = self.has_commit(&mirror, rev, cancel).await
        {
            return Ok(sha);
        }
        let _fetching = mirror.fetch_lock.lock().await;
        // Someone else may have fetched it while we waited.
        let mut broken = match self.has_commit(&mirror, rev, cancel).await {
            Ok(Some(sha)) if !unwanted_partial() => return Ok(sha),
            Ok(_) => false,
            Err(_) => true,
        };
        for attempt in 0..2 {
            let unwanted_partial = unwanted_partial();
            if broken
                || unwanted_partial
                || !mirror.dir.join("HEAD").is_file()
                || !self.mirror_is_sound(&mirror, cancel).await
            {
                if unwanted_partial {
                    tracing::info!(url = %url, "partial clone is off; cloning the mirror in full");
                } else if mirror.dir.exists() {
                    tracing::warn!(url = %url, "mirror is broken; cloning it again");
                    self.stats.reclones.fetch_add(1, Ordering::Relaxed);
                }
                self.init_mirror(&mirror, url, cancel).await?;
                mirror.configured.store(false, Ordering::SeqCst);
                mirror.filter_refused.store(false, Ordering::SeqCst);
            }
            match self.fetch(&mirror, url, creds, rev, cancel).await {
                Ok(()) => {}
                Err(FetchFailure::Corrupt(message)) if attempt == 0 => {
                    tracing::warn!(url = %url, %message, "fetch found a corrupt mirror");
                    broken = true;
                    continue;
                }
                Err(FetchFailure::Corrupt(message)) => {
                    return Err(GitError::Failed {
                        operation: "fetch",
                        url: url.to_string(),
                        message,
                    });
                }
                Err(FetchFailure::Other(e)) => return Err(e),
            }
            match self.has_commit(&mirror, rev, cancel).await {
                Ok(Some(sha)) => {
                    mirror.bytes.store(dir_size(&mirror.dir), Ordering::Relaxed);
                    drop(_fetching);
                    self.evict_mirrors();
                    return Ok(sha);
                }
                Ok(None) => break,
                Err(_) if attempt == 0 => broken = true,
                Err(message) => {
                    return Err(GitError::Failed {
                        operation: "rev-parse",
                        url: url.to_string(),
                        message,
                    });
                }
            }
        }
        Err(GitError::Revision {
            url: url.to_string(),
            source: RevisionError::NotFound(rev.to_string()),
        })
    }

    async fn mirror_is_sound(&self, mirror: &Mirror, cancel: &CancellationToken) -> bool {
        let spec = self
            .plain_git(&mirror.dir)
            .args(["rev-parse", "--is-bare-repository"]);
        matches!(command::run(&spec, cancel).await, Ok(out) if out.success && out.stdout.starts_with(b"true"))
    }

    async fn init_mirror(
        &self,
        mirror: &Mirror,
        url: &RepoUrl,
        cancel: &CancellationToken,
    ) -> Result<(), GitError> {
        if mirror.dir.exists() {
            std::fs::remove_dir_all(&mirror.dir).map_err(GitError::io(format!(
                "removing broken mirror {}",
                mirror.dir.display()
            )))?;
        }
        let spec = self
            .git_without_config()
            .args(["init", "--bare", "--quiet", "--"])
            .arg(&mirror.dir);
        run_git_successfully(&spec, "init", url, cancel).await?;
        Ok(())
    }

    /// Points the mirror's `origin` at `url` and, for a partial mirror, makes `origin` its
    /// promisor remote (git then accepts packs with missing blobs, and marks them).
    async fn configure_mirror(
        &self,
        mirror: &Mirror,
        url: &RepoUrl,
        cancel: &CancellationToken,
    ) -> Result<(), GitError> {
        let mut settings = vec![("remote.origin.url".to_string(), url.fetch_url().to_string())];
        if !mirror.configured.load(Ordering::SeqCst)
            && let Some(limit) = self.config.partial_clone_blob_limit
        {
            {
                settings.extend([
                    ("core.repositoryformatversion".into(), "1".into()),
                    ("extensions.partialClone".into(), "origin".into()),
                    ("remote.origin.promisor".into(), "true".into()),
                    (
                        "remote.origin.partialclonefilter".into(),
                        format!("blob:limit={limit}"),
                    ),
                ]);
            }
        }
        for (key, value) in settings {
            let spec = self
                .plain_git(&mirror.dir)
                .args(["config", "--"])
                .arg(&key)
                .arg(&value);
            run_git_successfully(&spec, "config", url, cancel).await?;
        }
        mirror.configured.store(true, Ordering::SeqCst);
        Ok(())
    }

    async fn fetch(
        &self,
        mirror: &Mirror,
        url: &RepoUrl,
        creds: Option<&Credentials>,
        rev: &str,
        cancel: &CancellationToken,
    ) -> Result<(), FetchFailure> {
        self.configure_mirror(mirror, url, cancel)
            .await
            .map_err(FetchFailure::Other)?;
        let auth = self.auth(url, creds).map_err(FetchFailure::Other)?;
        let depth = self.config.depth_for(url);
        let filter = match self.config.partial_clone_blob_limit {
            Some(limit) if !mirror.filter_refused.load(Ordering::SeqCst) => {
                Some(format!("--filter=blob:limit={limit}"))
            }
            _ => None,
        };
        let mut spec = self.git(Some(&mirror.dir), &auth).args([
            "-c",
            "gc.auto=0",
            "fetch",
            "--quiet",
            "--prune",
            "--force",
        ]);
        if let Some(filter) = &filter {
            spec = spec.arg(filter);
        }
        if depth > 0 {
            spec = spec.arg(format!("--depth={depth}"));
        } else if mirror.is_shallow() {
            // Depth was turned off for a shallow mirror: complete its history.
            spec = spec.arg("--unshallow");
        }
        spec = spec.args(["--", "origin"]);
        let full_sha = revision::is_full_sha(rev);
        if depth > 0 && full_sha {
            // Shallow: only the commit asked for, `depth` deep, not every branch and tag;
            // kept under a ref of its own so that it stays reachable.
            spec = spec.arg(format!("+{rev}:refs/plumb/pinned/{rev}"));
        } else {
            spec = spec.args(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]);
            // A full SHA that no branch or tag reaches (an old commit, a PR head) is asked
            // for by name as well; servers allow that for reachable commits (protocol v2).
            if full_sha {
                spec = spec.arg(rev);
            }
        }
        self.stats.fetches.fetch_add(1, Ordering::Relaxed);
        let out = command::run(&spec, cancel).await.map_err(|source| {
            FetchFailure::Other(GitError::Command {
                operation: "fetch",
                url: url.to_string(),
                source,
            })
        })?;
        if filter.is_some() && partial::filter_refused(&out.stderr) {
            mirror.filter_refused.store(true, Ordering::SeqCst);
            self.stats.filter_fallbacks.fetch_add(1, Ordering::Relaxed);
            if url.transport() == Transport::File {
                // A local repository (`git config uploadpack.allowFilter` unset, git's
                // default): nothing crossed a network, so a full copy is no news.
                tracing::debug!(
                    url = %url,
                    "the local repository does not allow partial clone \
                     (uploadpack.allowFilter); copied it in full"
                );
            } else {
                tracing::warn!(
                    url = %url,
                    "the server does not allow partial clone (uploadpack.allowFilter); \
                     fetched the full repository instead"
                );
            }
        }
        if out.success {
            return Ok(());
        }
        if depth > 0 && partial::shallow_refused(&out.stderr) {
            tracing::warn!(
                url = %url,
                depth,
                "the server does not allow shallow fetches; fetching full history instead"
            );
            let mut retry = spec.clone();
            retry
                .args
                .retain(|a| !a.to_string_lossy().starts_with("--depth="));
            if let Ok(out) = command::run(&retry, cancel).await
                && out.success
            {
                return Ok(());
            }
        }
        if looks_corrupt(&out.stderr) {
            return Err(FetchFailure::Corrupt(redact(out.stderr.trim(), creds)));
        }
        // Asking for an unknown SHA fails the whole fetch: retry with the refs alone so that
        // the caller reports "revision not found" rather than a protocol error.
        if full_sha && out.stderr.contains(rev) {
            let mut retry = spec.clone();
            retry.args.pop();
            if depth > 0 {
                // Report "not found" the same way: by looking at the branches and tags.
                retry = retry.args(["+refs/heads/*:refs/heads/*", "+refs/tags/*:refs/tags/*"]);
            }
            if let Ok(out) = command::run(&retry, cancel).await
                && out.success
            {
                return Ok(());
            }
        }
        Err(FetchFailure::Other(classify(
            url,
            "fetch",
            &out.stderr,
            creds,
        )))
    }

    /// Fetches the blobs `oids` into a partial mirror in one request (what git's own lazy
    /// fetch does, but with the repository's credentials, timeout and cancellation). One
    /// fetch at a time per repository.
    async fn fetch_blobs(
        &self,
        mirror: &Mirror,
        url: &RepoUrl,
        creds: Option<&Credentials>,
        oids: &[String],
        cancel: &CancellationToken,
    ) -> Result<(), GitError> {
        if oids.is_empty() {
            return Ok(());
        }
        let _fetching = mirror.fetch_lock.lock().await;
        self.configure_mirror(mirror, url, cancel).await?;
        let auth = self.auth(url, creds)?;
        let mut input = Vec::with_capacity(oids.len() * 41);
        for oid in oids {
            input.extend_from_slice(oid.as_bytes());
            input.push(b'\n');
        }
        let spec = self
            .git(Some(&mirror.dir), &auth)
            .args([
                "-c",
                "gc.auto=0",
                "-c",
                "fetch.negotiationAlgorithm=noop",
                "fetch",
                "--quiet",
                "--no-tags",
                "--no-write-fetch-head",
                "--recurse-submodules=no",
                "--filter=blob:none",
                "--stdin",
                "--",
                "origin",
            ])
            .stdin(input);
        self.stats.blob_fetches.fetch_add(1, Ordering::Relaxed);
        let out = run_git(&spec, "fetch (blobs)", url, cancel).await?;
        if !out.success {
            return Err(classify(url, "fetch (blobs)", &out.stderr, creds));
        }
        mirror.bytes.store(dir_size(&mirror.dir), Ordering::Relaxed);
        drop(_fetching);
        // Larger now: other, idle mirrors may have to make room.
        self.evict_mirrors();
        Ok(())
    }

    fn evict_mirrors(&self) {
        let mut mirrors = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        let mut total: u64 = mirrors
            .values()
            .map(|m| m.bytes.load(Ordering::Relaxed))
            .sum();
        while total > self.config.max_mirror_bytes {
            let victim = mirrors
                .iter()
                .filter(|(_, m)| {
                    m.users.load(Ordering::SeqCst) == 0 && m.fetch_lock.try_lock().is_ok()
                })
                .min_by_key(|(_, m)| m.last_used.load(Ordering::SeqCst))
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            if let Some(mirror) = mirrors.remove(&victim) {
                total = total.saturating_sub(mirror.bytes.load(Ordering::Relaxed));
                let _ = std::fs::remove_dir_all(&mirror.dir);
                self.stats.evictions.fetch_add(1, Ordering::Relaxed);
                tracing::info!(dir = %mirror.dir.display(), "evicted mirror");
            }
        }
    }

    /// Total bytes the mirrors take on disk (as last measured).
    pub fn mirror_bytes(&self) -> u64 {
        let mirrors = self.mirrors.lock().unwrap_or_else(|e| e.into_inner());
        mirrors
            .values()
            .map(|m| m.bytes.load(Ordering::Relaxed))
            .sum()
    }

    /// The directory of the mirror of `url` (tests and diagnostics).
    pub fn mirror_dir(&self, url: &RepoUrl) -> PathBuf {
        self.config
            .cache_dir
            .join("mirrors")
            .join(key_of(url.normalized()))
    }

    /// A read-only checkout of commit `sha` (full SHA) of `url` with every file, with
    /// submodules, fetched first when missing. Shared by every caller asking for the same
    /// commit.
    pub async fn checkout(
        &self,
        url: &RepoUrl,
        sha: &str,
        store: &CredentialStore,
        cancel: &CancellationToken,
    ) -> Result<Arc<Checkout>, GitError> {
        self.checkout_depth(url, sha, &Scope::Whole, store, cancel, 0)
            .await
    }

    /// A checkout of commit `sha` for rendering `path`: from a partial mirror, files above
    /// the blob limit outside `path` are left on the server (listed in
    /// [`Checkout::omitted`]); everything else is written. From a full mirror this is
    /// [`Self::checkout`]. Checkouts that leave out the same files are shared.
    pub async fn checkout_path(
        &self,
        url: &RepoUrl,
        sha: &str,
        path: &str,
        store: &CredentialStore,
        cancel: &CancellationToken,
    ) -> Result<Arc<Checkout>, GitError> {
        self.checkout_depth(url, sha, &Scope::for_path(path), store, cancel, 0)
            .await
    }

    /// The checkout in slot `key`, when one is built and still on disk.
    fn built_checkout(&self, key: &str) -> Option<Arc<Checkout>> {
        let slot = {
            let checkouts = self.checkouts.lock().unwrap_or_else(|e| e.into_inner());
            checkouts.get(key)?.0.clone()
        };
        let guard = slot.try_lock().ok()?;
        guard.as_ref().filter(|c| c.root.is_dir()).cloned()
    }

    /// The missing blobs of commit `sha` in a partial mirror, split by `scope`.
    async fn partial_plan(
        &self,
        mirror: &Path,
        url: &RepoUrl,
        sha: &str,
        scope: &Scope,
        cancel: &CancellationToken,
    ) -> Result<partial::Plan, GitError> {
        let run = |spec: CommandSpec, operation: &'static str| async move {
            run_git_successfully(&spec, operation, url, cancel)
                .await
                .map(|out| out.stdout)
        };
        // Trees and commits are all in the mirror; `--missing=print` names the blobs that
        // are not, without fetching them.
        let missing = partial::parse_missing(
            &run(
                self.plain_git(mirror).args([
                    "rev-list",
                    "--objects",
                    "--no-walk",
                    "--missing=print",
                    "--end-of-options",
                    sha,
                    "--",
                ]),
                "rev-list",
            )
            .await?,
        );
        if missing.is_empty() {
            return Ok(partial::Plan::default());
        }
        let blobs = partial::parse_ls_tree(
            &run(
                self.plain_git(mirror).args([
                    "ls-tree",
                    "-r",
                    "-z",
                    "--full-tree",
                    "--end-of-options",
                    sha,
                ]),
                "ls-tree",
            )
            .await?,
        );
        Ok(partial::plan(&blobs, &missing, scope))
    }

    fn checkout_depth<'a>(
        &'a self,
        url: &'a RepoUrl,
        sha: &'a str,
        scope: &'a Scope,
        store: &'a CredentialStore,
        cancel: &'a CancellationToken,
        depth: usize,
    ) -> futures::future::BoxFuture<'a, Result<Arc<Checkout>, GitError>> {
        Box::pin(async move {
            let whole_key = key_of(&format!("{}\n{sha}", url.normalized()));
            let scope_id = format!("{whole_key}\n{scope:?}");
            // A checkout with every file serves any scope; a scope served before is served
            // from the same checkout again. Neither starts a process.
            let remembered_key = remembered(&self.scoped, &scope_id);
            for key in [Some(&whole_key), remembered_key.as_ref()]
                .into_iter()
                .flatten()
            {
                if let Some(existing) = self.built_checkout(key) {
                    self.touch_checkout(key);
                    return Ok(existing);
                }
            }
            // Held from before the fetch to the end of the checkout: never evicted meanwhile.
            let creds = store.lookup(url);
            let (in_use, sha) = self.mirror_with_commit(url, sha, creds, cancel).await?;
            let mirror = &in_use.0;
            let plan = if mirror.is_partial() {
                self.partial_plan(&mirror.dir, url, &sha, scope, cancel)
                    .await?
            } else {
                partial::Plan::default()
            };
            // Checkouts leaving out the same files have the same content.
            let key = if plan.omitted.is_empty() {
                whole_key.clone()
            } else {
                key_of(&format!("{whole_key}\n{}", plan.omitted.join("\0")))
            };
            remember_bounded(
                &self.scoped,
                16 * self.config.max_checkouts.max(1),
                scope_id,
                key.clone(),
            );
            let slot = {
                let mut checkouts = self.checkouts.lock().unwrap_or_else(|e| e.into_inner());
                let tick = self.tick();
                let entry = checkouts
                    .entry(key.clone())
                    .or_insert_with(|| (Arc::new(tokio::sync::Mutex::new(None)), tick));
                entry.1 = tick;
                entry.0.clone()
            };
            let mut guard = slot.lock().await;
            if let Some(existing) = guard.as_ref()
                && existing.root.is_dir()
            {
                return Ok(existing.clone());
            }
            if !plan.fetch.is_empty() {
                self.fetch_blobs(mirror, url, creds, &plan.fetch, cancel)
                    .await?;
            }
            if !plan.omitted.is_empty() {
                tracing::info!(
                    url = %url,
                    commit = %sha,
                    omitted = plan.omitted.len(),
                    "partial checkout: files above the blob limit outside the rendered path \
                     stay on the server"
                );
            }
            // A fresh name per build: an evicted checkout still held by a render removes
            // its own directory when released, never a newer checkout of the same commit.
            let generation = self.tick();
            let root = self
                .config
                .cache_dir
                .join("checkouts")
                .join(format!("{key}-{generation}"));
            let tmp = self
                .config
                .cache_dir
                .join("checkouts")
                .join(format!("{key}-{generation}.tmp"));
            let build = Build {
                mirror: &mirror.dir,
                url,
                sha: &sha,
                omitted: &plan.omitted,
            };
            let result = self
                .build_checkout(&build, &tmp, store, cancel, depth)
                .await;
            if let Err(e) = result {
                let _ = std::fs::remove_dir_all(&tmp);
                return Err(e);
            }
            let escaping_symlinks = escaping_symlinks(&tmp);
            let _ = std::fs::remove_dir_all(&root);
            std::fs::rename(&tmp, &root).map_err(GitError::io(format!(
                "moving checkout into {}",
                root.display()
            )))?;
            self.stats.checkouts.fetch_add(1, Ordering::Relaxed);
            let checkout = Arc::new(Checkout {
                root,
                sha: sha.clone(),
                url: url.to_string(),
                escaping_symlinks,
                omitted: plan.omitted,
            });
            *guard = Some(checkout.clone());
            drop(guard);
            self.evict_checkouts();
            Ok(checkout)
        })
    }

    fn touch_checkout(&self, key: &str) {
        let tick = self.tick();
        let mut checkouts = self.checkouts.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(entry) = checkouts.get_mut(key) {
            entry.1 = tick;
        }
    }

    async fn build_checkout(
        &self,
        build: &Build<'_>,
        dest: &Path,
        store: &CredentialStore,
        cancel: &CancellationToken,
        depth: usize,
    ) -> Result<(), GitError> {
        let Build {
            mirror,
            url,
            sha,
            omitted,
        } = *build;
        std::fs::create_dir_all(dest)
            .map_err(GitError::io(format!("creating {}", dest.display())))?;
        let index = dest.with_extension("index");
        let run = |spec: CommandSpec, operation: &'static str| async move {
            run_git_successfully(&spec, operation, url, cancel).await
        };
        // A private index file: checkouts of the same mirror run side by side.
        run(
            self.plain_git(mirror).env("GIT_INDEX_FILE", &index).args([
                "read-tree",
                "--end-of-options",
                sha,
            ]),
            "read-tree",
        )
        .await?;
        let mut write = self
            .plain_git(mirror)
            .env("GIT_INDEX_FILE", &index)
            .arg("--work-tree")
            .arg(dest)
            .args(["checkout-index", "--force"]);
        if omitted.is_empty() {
            write = write.arg("--all");
        } else {
            // Every file but the omitted ones: the index lists the files, minus those.
            let listing = run(
                self.plain_git(mirror)
                    .env("GIT_INDEX_FILE", &index)
                    .args(["ls-files", "-z", "--cached"]),
                "ls-files",
            )
            .await;
            let listing = match listing {
                Ok(out) => out.stdout,
                Err(e) => {
                    let _ = std::fs::remove_file(&index);
                    return Err(e);
                }
            };
            let left_out: std::collections::HashSet<&[u8]> =
                omitted.iter().map(|p| p.as_bytes()).collect();
            let mut input = Vec::with_capacity(listing.len());
            for path in listing.split(|b| *b == 0).filter(|p| !p.is_empty()) {
                if !left_out.contains(path) {
                    input.extend_from_slice(path);
                    input.push(0);
                }
            }
            write = write.args(["-z", "--stdin"]).stdin(input);
        }
        let checked_out = run(write, "checkout-index").await;
        let _ = std::fs::remove_file(&index);
        checked_out?;
        if dest.join(".gitmodules").is_file() {
            if depth >= 4 {
                return Err(GitError::Submodule {
                    url: url.to_string(),
                    path: String::new(),
                    message: "submodules nested more than 4 deep".to_string(),
                });
            }
            self.checkout_submodules(mirror, url, sha, dest, store, cancel, depth)
                .await?;
        }
        Ok(())
    }

    #[allow(clippy::too_many_arguments)]
    async fn checkout_submodules(
        &self,
        mirror: &Path,
        url: &RepoUrl,
        sha: &str,
        dest: &Path,
        store: &CredentialStore,
        cancel: &CancellationToken,
        depth: usize,
    ) -> Result<(), GitError> {
        let gitmodules = dest.join(".gitmodules");
        let listing = self
            .git_without_config()
            .args(["config", "--file"])
            .arg(&gitmodules)
            .args(["--get-regexp", r"^submodule\..*\.(path|url)$"]);
        let out = run_git(&listing, "config", url, cancel).await?;
        let mut modules: HashMap<String, (Option<String>, Option<String>)> = HashMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some((key, value)) = line.split_once(' ') else {
                continue;
            };
            let Some(rest) = key.strip_prefix("submodule.") else {
                continue;
            };
            if let Some(name) = rest.strip_suffix(".path") {
                modules.entry(name.to_string()).or_default().0 = Some(value.to_string());
            } else if let Some(name) = rest.strip_suffix(".url") {
                modules.entry(name.to_string()).or_default().1 = Some(value.to_string());
            }
        }
        for (name, (path, sub_url)) in modules {
            let (Some(path), Some(sub_url)) = (path, sub_url) else {
                continue;
            };
            let fail = |message: String| GitError::Submodule {
                url: url.to_string(),
                path: path.clone(),
                message,
            };
            if crate::paths::check_relative(&path).is_err() {
                return Err(fail(format!("submodule {name:?} has an unsafe path")));
            }
            // The commit the superproject records for the submodule (a gitlink).
            let tree = self
                .plain_git(mirror)
                .args(["ls-tree", "--end-of-options", sha, "--"])
                .arg(&path);
            let out = command::run(&tree, cancel)
                .await
                .map_err(|e| fail(e.to_string()))?;
            let listing = String::from_utf8_lossy(&out.stdout);
            let Some(gitlink) = listing
                .lines()
                .find(|l| l.starts_with("160000 commit "))
                .and_then(|l| l.split_whitespace().nth(2))
                .map(str::to_string)
            else {
                // Declared in .gitmodules but not recorded in this commit: nothing to check out.
                continue;
            };
            let sub = url
                .join_relative(&sub_url, self.config.url_policy)
                .map_err(|e| fail(e.to_string()))?;
            // Whole: a checkout is shared by key of the files its own commit leaves out, so
            // a submodule must not leave out any of its own.
            let checkout = self
                .checkout_depth(&sub, &gitlink, &Scope::Whole, store, cancel, depth + 1)
                .await?;
            let target = dest.join(&path);
            copy_tree(checkout.root(), &target)
                .map_err(|e| fail(format!("copying the submodule: {e}")))?;
        }
        Ok(())
    }

    fn evict_checkouts(&self) {
        let mut checkouts = self.checkouts.lock().unwrap_or_else(|e| e.into_inner());
        while checkouts.len() > self.config.max_checkouts {
            // Only slots nobody is building or holding are candidates.
            let victim = checkouts
                .iter()
                .filter(|(_, (slot, _))| {
                    slot.try_lock()
                        .map(|g| g.as_ref().is_none_or(|c| Arc::strong_count(c) == 1))
                        .unwrap_or(false)
                })
                .min_by_key(|(_, (_, tick))| *tick)
                .map(|(k, _)| k.clone());
            let Some(victim) = victim else { break };
            checkouts.remove(&victim);
        }
    }

    /// Commit metadata from the mirror (the commit must have been fetched). The signature is
    /// checked against the service's own keyring ([`Self::set_signature_keys`]).
    pub async fn commit_metadata(
        &self,
        url: &RepoUrl,
        sha: &str,
        cancel: &CancellationToken,
    ) -> Result<CommitMetadata, GitError> {
        command::check_argument("revision", sha)?;
        let dir = self.mirror_dir(url);
        let spec = self.plain_git(&dir).args([
            "log",
            "-1",
            "--format=%H%x00%an%x00%ae%x00%aI%x00%B",
            "--end-of-options",
            sha,
            "--",
        ]);
        let out = run_git(&spec, "log", url, cancel).await?;
        if !out.success {
            return Err(GitError::Revision {
                url: url.to_string(),
                source: RevisionError::NotFound(sha.to_string()),
            });
        }
        let text = String::from_utf8_lossy(&out.stdout);
        let mut fields = text.splitn(5, '\0');
        let mut next = || fields.next().unwrap_or("").to_string();
        let (sha, author_name, author_email, date, message) =
            (next(), next(), next(), next(), next());
        let signature = self.signature_in(&dir, url, &sha, cancel).await?;
        Ok(CommitMetadata {
            sha,
            author_name,
            author_email,
            date,
            message: message.trim_end().to_string(),
            signed: signature.signed,
            signature_status: signature.status,
            signature_key_id: signature.key_id.clone(),
            signature_trusted: signature.trusted(),
        })
    }

    /// Replaces the signature keys (Argo CD's `argocd-gpg-keys-cm`: key ID → ASCII-armored
    /// public key). All or nothing: a bad key is reported and the keyring stays as it was.
    pub async fn set_signature_keys(
        &self,
        keys: &std::collections::BTreeMap<String, String>,
        cancel: &CancellationToken,
    ) -> Result<Vec<PublicKey>, GitError> {
        let imported = self.keyring.set_keys(keys, cancel).await?;
        // Results were computed with the old keyring (the key includes its generation).
        self.signatures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clear();
        Ok(imported)
    }

    /// The keys in the keyring.
    pub fn signature_keys(&self) -> Vec<PublicKey> {
        self.keyring.current().keys.clone()
    }

    /// The keyring's GnuPG home (mode 0700, under the cache directory).
    pub fn gnupg_home(&self) -> PathBuf {
        self.keyring.current().dir.clone()
    }

    /// Checks the signature of commit `sha` (full SHA), fetching the commit first when the
    /// mirror lacks it. Remembered per keyring: a repeated check starts no process.
    pub async fn verify_commit(
        &self,
        url: &RepoUrl,
        sha: &str,
        creds: Option<&Credentials>,
        cancel: &CancellationToken,
    ) -> Result<SignatureInfo, GitError> {
        command::check_argument("revision", sha)?;
        let home = self.keyring.current();
        let key = format!("{}\n{sha}\n{}", url.normalized(), home.generation);
        if let Some(known) = remembered(&self.signatures, &key) {
            return Ok(known);
        }
        let (mirror, sha) = self.mirror_with_commit(url, sha, creds, cancel).await?;
        let info = self.signature_in(&mirror.0.dir, url, &sha, cancel).await?;
        remember_bounded(
            &self.signatures,
            MAX_REMEMBERED_SIGNATURES,
            key,
            info.clone(),
        );
        Ok(info)
    }

    /// The signature that vouches for a resolved revision, as Argo CD decides it: an
    /// annotated tag's own signature when the revision named one, the commit's otherwise.
    pub async fn verify_revision(
        &self,
        url: &RepoUrl,
        revision: &ResolvedRevision,
        creds: Option<&Credentials>,
        cancel: &CancellationToken,
    ) -> Result<SignatureInfo, GitError> {
        let Some(tag) = revision
            .via
            .as_deref()
            .filter(|v| v.starts_with("refs/tags/"))
        else {
            return self.verify_commit(url, &revision.sha, creds, cancel).await;
        };
        command::check_argument("tag", tag)?;
        let home = self.keyring.current();
        let key = format!(
            "{}\n{}\n{tag}\n{}",
            url.normalized(),
            revision.sha,
            home.generation
        );
        if let Some(known) = remembered(&self.signatures, &key) {
            return Ok(known);
        }
        let (mirror, _) = self
            .mirror_with_commit(url, &revision.sha, creds, cancel)
            .await?;
        let kind = self
            .plain_git(&mirror.0.dir)
            .args(["cat-file", "-t", "--end-of-options", tag]);
        let annotated = matches!(
            command::run(&kind, cancel).await,
            Ok(out) if out.success && out.stdout.starts_with(b"tag")
        );
        if !annotated {
            // A lightweight tag is just a name for the commit.
            return self.verify_commit(url, &revision.sha, creds, cancel).await;
        }
        let spec = self
            .git_with_keyring(&mirror.0.dir, &home.dir)
            .args(["verify-tag", "--raw", "--"])
            .arg(tag);
        let out = self
            .run_signature_check(&spec, "verify-tag", url, cancel)
            .await?;
        // gpg's verdict is in its status lines whatever the exit code says.
        let info = SignatureInfo {
            tag: Some(tag.to_string()),
            ..gpg::parse_status(&out.stderr)
        };
        remember_bounded(
            &self.signatures,
            MAX_REMEMBERED_SIGNATURES,
            key,
            info.clone(),
        );
        Ok(info)
    }

    /// Refuses `revision` unless it carries a good signature by one of `required` (key IDs
    /// or fingerprints) that is in the keyring ([`Self::verify_revision`] says which
    /// signature counts). Nothing required: nothing checked.
    pub async fn require_signature(
        &self,
        url: &RepoUrl,
        revision: &ResolvedRevision,
        required: &[String],
        creds: Option<&Credentials>,
        cancel: &CancellationToken,
    ) -> Result<(), GitError> {
        if required.is_empty() {
            return Ok(());
        }
        let sha = revision.sha.as_str();
        let info = self.verify_revision(url, revision, creds, cancel).await?;
        info.check_required(sha, required)
            .map_err(|source| GitError::Untrusted {
                url: url.to_string(),
                source: Box::new(source),
            })
    }

    /// The mirror of `url`, held in use (never evicted) while the returned guard lives, with
    /// commit `rev` fetched into it; and the commit's full SHA.
    async fn mirror_with_commit(
        &self,
        url: &RepoUrl,
        rev: &str,
        creds: Option<&Credentials>,
        cancel: &CancellationToken,
    ) -> Result<(MirrorUse, String), GitError> {
        let mirror = MirrorUse(self.mirror(url));
        let sha = self.ensure_commit(url, rev, creds, cancel).await?;
        Ok((mirror, sha))
    }

    /// git in `dir` verifying signatures with the keyring in `gnupg_home` (and nothing from
    /// the user's own GnuPG setup).
    fn git_with_keyring(&self, dir: &Path, gnupg_home: &Path) -> CommandSpec {
        let mut gpg_program = std::ffi::OsString::from("gpg.program=");
        gpg_program.push(self.keyring.gpg());
        self.plain_git(dir)
            .without_inherited("GNUPG")
            .env("GNUPGHOME", gnupg_home)
            .arg("-c")
            .arg(gpg_program)
    }

    /// Runs a signature-checking git command, counted in the stats.
    async fn run_signature_check(
        &self,
        spec: &CommandSpec,
        operation: &'static str,
        url: &RepoUrl,
        cancel: &CancellationToken,
    ) -> Result<command::CommandOutput, GitError> {
        self.stats.signature_checks.fetch_add(1, Ordering::Relaxed);
        run_git(spec, operation, url, cancel).await
    }

    async fn signature_in(
        &self,
        dir: &Path,
        url: &RepoUrl,
        sha: &str,
        cancel: &CancellationToken,
    ) -> Result<SignatureInfo, GitError> {
        let home = self.keyring.current();
        let raw = self
            .plain_git(dir)
            .args(["cat-file", "commit", "--end-of-options", sha]);
        let signed = match command::run(&raw, cancel).await {
            Ok(out) => String::from_utf8_lossy(&out.stdout)
                .split("\n\n")
                .next()
                .is_some_and(|headers| headers.lines().any(|l| l.starts_with("gpgsig"))),
            Err(_) => false,
        };
        if !signed {
            return Ok(SignatureInfo {
                status: 'N',
                ..Default::default()
            });
        }
        let spec = self.git_with_keyring(dir, &home.dir).args([
            "log",
            "-1",
            "--format=%G?%x00%GK%x00%GF%x00%GP",
            "--end-of-options",
            sha,
            "--",
        ]);
        let out = self
            .run_signature_check(&spec, "log (signature)", url, cancel)
            .await?;
        if !out.success {
            return Err(failed(&out, "log (signature)", url));
        }
        Ok(SignatureInfo::parse(
            &String::from_utf8_lossy(&out.stdout),
            signed,
        ))
    }
}

/// Runs `spec`; a git that cannot run (or is cancelled, or times out) is a
/// [`GitError::Command`] for `operation` on `url`.
async fn run_git(
    spec: &CommandSpec,
    operation: &'static str,
    url: &RepoUrl,
    cancel: &CancellationToken,
) -> Result<command::CommandOutput, GitError> {
    command::run(spec, cancel)
        .await
        .map_err(|source| GitError::Command {
            operation,
            url: url.to_string(),
            source,
        })
}

/// [`run_git`], and a git that exits unsuccessfully is a [`GitError::Failed`] with its
/// standard error.
async fn run_git_successfully(
    spec: &CommandSpec,
    operation: &'static str,
    url: &RepoUrl,
    cancel: &CancellationToken,
) -> Result<command::CommandOutput, GitError> {
    let out = run_git(spec, operation, url, cancel).await?;
    if !out.success {
        return Err(failed(&out, operation, url));
    }
    Ok(out)
}

/// A git that ran but failed `operation`, in its own words.
fn failed(out: &command::CommandOutput, operation: &'static str, url: &RepoUrl) -> GitError {
    GitError::Failed {
        operation,
        url: url.to_string(),
        message: out.stderr.trim().to_string(),
    }
}

/// Signature results remembered at the most (all are forgotten beyond it).
const MAX_REMEMBERED_SIGNATURES: usize = 65536;

/// A value remembered under `key`, if any.
fn remembered<V: Clone>(map: &Mutex<HashMap<String, V>>, key: &str) -> Option<V> {
    map.lock()
        .unwrap_or_else(|e| e.into_inner())
        .get(key)
        .cloned()
}

/// Remembers `value` under `key`; a map grown past `limit` entries is emptied first, which
/// bounds its memory at the price of recomputing.
fn remember_bounded<V>(map: &Mutex<HashMap<String, V>>, limit: usize, key: String, value: V) {
    let mut known = map.lock().unwrap_or_else(|e| e.into_inner());
    if known.len() > limit {
        known.clear();
    }
    known.insert(key, value);
}

/// What one checkout writes.
#[derive(Clone, Copy)]
struct Build<'a> {
    mirror: &'a Path,
    url: &'a RepoUrl,
    sha: &'a str,
    omitted: &'a [String],
}

enum FetchFailure {
    Corrupt(String),
    Other(GitError),
}

fn looks_corrupt(stderr: &str) -> bool {
    let s = stderr.to_ascii_lowercase();
    [
        "not a git repository",
        "is corrupt",
        "corrupt loose object",
        "bad object",
        "did not send all necessary objects",
        "unable to read",
        "packfile",
        "broken link",
        "bad config",
        "invalid object",
    ]
    .iter()
    .any(|needle| s.contains(needle))
}

/// Never echo a secret, even if a tool printed one.
fn redact(message: &str, creds: Option<&Credentials>) -> String {
    let mut message = message.to_string();
    if let Some(creds) = creds {
        for secret in [
            &creds.password,
            &creds.ssh_private_key,
            &creds.tls_client_cert_key,
        ]
        .into_iter()
        .flatten()
        {
            if !secret.is_empty() {
                message = message.replace(secret.as_str(), "*****");
            }
        }
    }
    message
}

/// Whether a tool's message reports the HTTP status `code` ("returned error: 403"): the code
/// as a number of its own, not part of a longer one or a port ("127.0.0.1:40179", "port 401").
pub(crate) fn says_http_status(lower: &str, code: &str) -> bool {
    lower.match_indices(code).any(|(at, _)| {
        let before = &lower[..at];
        let after = &lower[at + code.len()..];
        let digit_before = before.ends_with(|c: char| c.is_ascii_digit());
        let digit_after = after.starts_with(|c: char| c.is_ascii_digit());
        let is_port = before.ends_with(':') || before.ends_with("port ");
        !digit_before && !digit_after && !is_port
    })
}

/// The remote's own words, sorted into the failures callers act on.
fn classify(
    url: &RepoUrl,
    operation: &'static str,
    stderr: &str,
    creds: Option<&Credentials>,
) -> GitError {
    let message = redact(
        &stderr
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with("hint:"))
            .collect::<Vec<_>>()
            .join("; "),
        creds,
    );
    let lower = message.to_ascii_lowercase();
    let url_text = url.to_string();
    // Git's own wording (and the server's) is all there is to classify a failure by; the
    // first list that matches decides, so the more specific classes come first.
    const HOST_KEY: &[&str] = &[
        "host key verification failed",
        "remote host identification has changed",
    ];
    const AUTH: &[&str] = &[
        "authentication failed",
        "could not read username",
        "could not read password",
        "permission denied",
        "invalid username or password",
    ];
    const UNREACHABLE: &[&str] = &[
        "could not resolve host",
        "connection refused",
        "failed to connect",
        "connection timed out",
        "operation timed out",
        "no route to host",
        "connection reset",
        "could not read from remote repository",
        "connection closed",
    ];
    const NOT_FOUND: &[&str] = &[
        "not found",
        "does not appear to be a git repository",
        "does not exist",
    ];
    let mentions = |phrases: &[&str]| phrases.iter().any(|phrase| lower.contains(phrase));
    if mentions(HOST_KEY) {
        return GitError::HostKey {
            url: url_text,
            message,
        };
    }
    if mentions(AUTH) || says_http_status(&lower, "401") || says_http_status(&lower, "403") {
        return GitError::AuthFailed {
            url: url_text,
            message,
        };
    }
    if mentions(UNREACHABLE) {
        return GitError::Unreachable {
            url: url_text,
            message,
        };
    }
    if mentions(NOT_FOUND) {
        return GitError::RepositoryNotFound {
            url: url_text,
            message,
        };
    }
    GitError::Failed {
        operation,
        url: url_text,
        message,
    }
}

/// Bytes under `dir` (files only; symlinks not followed).
pub(crate) fn dir_size(dir: &Path) -> u64 {
    let mut total = 0;
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(meta) = entry.path().symlink_metadata() else {
                continue;
            };
            if meta.is_dir() {
                stack.push(entry.path());
            } else {
                total += meta.len();
            }
        }
    }
    total
}

/// Symlinks under `root` whose target, resolved, leaves `root` (or does not resolve into it).
pub(crate) fn escaping_symlinks(root: &Path) -> Vec<String> {
    let Ok(real_root) = root.canonicalize() else {
        return Vec::new();
    };
    let mut found = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(d) = stack.pop() {
        let Ok(entries) = std::fs::read_dir(&d) else {
            continue;
        };
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(meta) = path.symlink_metadata() else {
                continue;
            };
            if meta.file_type().is_symlink() {
                let inside = match path.canonicalize() {
                    Ok(real) => real.starts_with(&real_root),
                    // A dangling link: judge its text lexically.
                    Err(_) => std::fs::read_link(&path).is_ok_and(|target| {
                        let base = path.parent().unwrap_or(root);
                        crate::paths::lexically_inside(root, &base.join(target))
                    }),
                };
                if !inside {
                    let rel = path.strip_prefix(root).unwrap_or(&path);
                    found.push(rel.display().to_string());
                }
            } else if meta.is_dir() && entry.file_name() != ".git" {
                stack.push(path);
            }
        }
    }
    found.sort();
    found
}

/// Copies `from` into `to` (files, directories, symlinks as links); hard links when the file
/// system allows, since checkouts are never written.
pub(crate) fn copy_tree(from: &Path, to: &Path) -> std::io::Result<()> {
    std::fs::create_dir_all(to)?;
    for entry in std::fs::read_dir(from)? {
        let entry = entry?;
        let src = entry.path();
        let dst = to.join(entry.file_name());
        let meta = src.symlink_metadata()?;
        if meta.file_type().is_symlink() {
            std::os::unix::fs::symlink(std::fs::read_link(&src)?, &dst)?;
        } else if meta.is_dir() {
            copy_tree(&src, &dst)?;
        } else if std::fs::hard_link(&src, &dst).is_err() {
            std::fs::copy(&src, &dst)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::url::UrlPolicy;

    fn classified(url: &str, stderr: &str) -> GitError {
        let url = RepoUrl::parse(url, UrlPolicy::default()).expect("url");
        classify(&url, "ls-remote", stderr, None)
    }

    #[test]
    fn a_port_that_contains_401_is_not_an_authentication_failure() {
        let error = classified(
            "http://127.0.0.1:40179/git/x.git",
            "fatal: unable to access 'http://127.0.0.1:40179/git/x.git/': Failed to connect to \
             127.0.0.1 port 40179 after 0 ms: Couldn't connect to server",
        );
        assert!(matches!(error, GitError::Unreachable { .. }), "{error}");
        let error = classified(
            "http://127.0.0.1:403/git/x.git",
            "fatal: unable to access 'http://127.0.0.1:403/git/x.git/': Failed to connect to \
             127.0.0.1 port 403 after 0 ms: Couldn't connect to server",
        );
        assert!(matches!(error, GitError::Unreachable { .. }), "{error}");
    }

    #[test]
    fn http_401_and_403_are_authentication_failures() {
        for code in ["401", "403"] {
            let error = classified(
                "http://127.0.0.1:8080/git/x.git",
                &format!(
                    "fatal: unable to access 'http://127.0.0.1:8080/git/x.git/': The requested \
                     URL returned error: {code}"
                ),
            );
            assert!(
                matches!(error, GitError::AuthFailed { .. }),
                "{code}: {error}"
            );
        }
    }

    #[test]
    fn http_status_is_a_number_of_its_own() {
        assert!(says_http_status(
            "the requested url returned error: 403",
            "403"
        ));
        assert!(says_http_status("http 401 unauthorized", "401"));
        assert!(!says_http_status("port 40179", "401"));
        assert!(!says_http_status("127.0.0.1:401/x", "401"));
        assert!(!says_http_status("after 1401 ms", "401"));
        assert!(!says_http_status("size 4030", "403"));
    }
}
