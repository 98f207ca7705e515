//! Real servers the tests start on loopback ports: lighttpd running `git http-backend` (with a
//! basic-auth area) and serving static files (a Helm chart repository), OpenSSH's sshd, and
//! Debian's docker-registry (an OCI registry). Each lives in its own temporary directory and
//! is killed when dropped.

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

pub use plumb_testcluster::servers::{HTTP_PASSWORD, HTTP_USER};

/// A port that was free a moment ago (servers that cannot report a port-0 bind get this).
pub fn free_port() -> u16 {
    plumb_testcluster::servers::free_port().expect("a free port")
}

/// [`plumb_testcluster::servers::start_on_free_port`] for spawners that cannot fail.
pub fn start_on_free_port(
    what: &str,
    log: &Path,
    mut spawn: impl FnMut(u16) -> Child,
) -> (Child, u16) {
    plumb_testcluster::servers::start_on_free_port(what, log, |port| Ok(spawn(port)))
        .unwrap_or_else(|error| panic!("{what}: {error}"))
}

/// lighttpd in the foreground with the config file `conf`.
pub fn spawn_lighttpd(conf: &Path) -> Child {
    plumb_testcluster::servers::spawn_lighttpd(conf).expect("lighttpd")
}

/// Runs `command`, panicking with its standard error unless it succeeds.
pub fn run_checked(command: &mut Command, what: &str) -> std::process::Output {
    let out = command.output().unwrap_or_else(|e| {
        panic!("{what} could not be started (scripts/install-test-deps installs it): {e}")
    });
    assert!(
        out.status.success(),
        "{what}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

/// Runs `git` in `dir`, panicking with its output on failure.
pub fn git(dir: &Path, args: &[&str]) -> String {
    let out = Command::new("git")
        .args(args)
        .current_dir(dir)
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_AUTHOR_NAME", "Ada Author")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Author")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
        .output()
        .expect("run git");
    assert!(
        out.status.success(),
        "git {args:?} in {}: {}",
        dir.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

/// A work tree whose commits are pushed to a bare repository the servers export.
pub struct Repo {
    pub work: PathBuf,
    pub bare: PathBuf,
}

impl Repo {
    /// Creates `<root>/<name>.git` (bare) and a work tree beside it with branch `main`.
    pub fn create(root: &Path, name: &str) -> Repo {
        let bare = root.join(format!("{name}.git"));
        let work = root.join(format!("{name}-work"));
        std::fs::create_dir_all(&work).expect("mkdir");
        git(
            root,
            &[
                "init",
                "-q",
                "--bare",
                "-b",
                "main",
                bare.to_str().expect("utf8"),
            ],
        );
        git(&work, &["init", "-q", "-b", "main"]);
        // http-backend refuses repositories it does not own unless told they are safe.
        git(&bare, &["config", "http.receivepack", "true"]);
        // Partial clone (plumb's default): the server must allow `--filter`; blobs a
        // checkout needs are then asked for by ID.
        git(&bare, &["config", "uploadpack.allowFilter", "true"]);
        git(&bare, &["config", "uploadpack.allowAnySHA1InWant", "true"]);
        Repo { work, bare }
    }

    /// Writes files (creating directories), commits everything and pushes `main`.
    pub fn commit(&self, files: &[(&str, &str)], message: &str) -> String {
        for (path, content) in files {
            let path = self.work.join(path);
            std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
            std::fs::write(&path, content).expect("write");
        }
        git(&self.work, &["add", "-A"]);
        git(
            &self.work,
            &["commit", "-q", "--allow-empty", "-m", message],
        );
        git(
            &self.work,
            &[
                "push",
                "-q",
                "--force",
                self.bare.to_str().expect("utf8"),
                "main",
            ],
        );
        git(&self.work, &["rev-parse", "HEAD"])
    }

    pub fn tag(&self, name: &str, annotated: bool) {
        if annotated {
            git(&self.work, &["tag", "-a", "-m", name, name]);
        } else {
            git(&self.work, &["tag", name]);
        }
        git(
            &self.work,
            &["push", "-q", self.bare.to_str().expect("utf8"), name],
        );
    }

    pub fn file_url(&self) -> String {
        format!("file://{}", self.bare.display())
    }
}

/// lighttpd with `git http-backend` (public `/git/`, basic-auth `/private/`) and static
/// files, shared with the other crates' tests.
pub use plumb_testcluster::servers::GitHttpServer as HttpServer;

/// OpenSSH's sshd on a loopback port with a generated host key, accepting one generated user
/// key for the current user.
pub struct SshServer {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
    pub user: String,
    /// The user's private key (PEM/OpenSSH format), as a repository Secret holds it.
    pub private_key: String,
    /// A known_hosts line for this server.
    pub known_hosts: String,
}

fn keygen(path: &Path) {
    let status = Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-C", "plumb-test", "-f"])
        .arg(path)
        .status()
        .expect("ssh-keygen");
    assert!(status.success());
}

impl SshServer {
    pub fn start() -> SshServer {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        keygen(&root.join("host"));
        keygen(&root.join("user"));
        std::fs::copy(root.join("user.pub"), root.join("authorized_keys")).expect("copy");
        // sshd's privilege separation directory (absent on a fresh machine until sshd ran).
        let _ = std::fs::create_dir_all("/run/sshd");
        let user = String::from_utf8(Command::new("id").arg("-un").output().expect("id").stdout)
            .expect("utf8")
            .trim()
            .to_string();
        let host_pub = std::fs::read_to_string(root.join("host.pub")).expect("host key");
        let (child, port) = start_on_free_port("sshd", &root.join("sshd.log"), |port| {
            let config = format!(
                "Port {port}\nListenAddress 127.0.0.1\nHostKey {root}/host\nPidFile {root}/sshd.pid\n\
                 AuthorizedKeysFile {root}/authorized_keys\nPasswordAuthentication no\n\
                 KbdInteractiveAuthentication no\nPubkeyAuthentication yes\nStrictModes no\nUsePAM no\n\
                 PermitRootLogin prohibit-password\n",
                root = root.display()
            );
            std::fs::write(root.join("sshd_config"), config).expect("config");
            let log = std::fs::File::create(root.join("sshd.log")).expect("log");
            Command::new("/usr/sbin/sshd")
                .args(["-D", "-e", "-f"])
                .arg(root.join("sshd_config"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("sshd (openssh-server; scripts/install-test-deps installs it)")
        });
        SshServer {
            child,
            port,
            user,
            private_key: std::fs::read_to_string(root.join("user")).expect("key"),
            known_hosts: format!("[127.0.0.1]:{port} {host_pub}"),
            _dir: dir,
        }
    }

    pub fn url(&self, bare: &Path) -> String {
        format!(
            "ssh://{}@127.0.0.1:{}{}",
            self.user,
            self.port,
            bare.display()
        )
    }
}

impl Drop for SshServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Debian's docker-registry (distribution) on a loopback port: an OCI registry for charts.
pub struct Registry {
    child: Child,
    pub port: u16,
    _dir: tempfile::TempDir,
}

impl Registry {
    pub fn start() -> Registry {
        Registry::start_with_auth(None)
    }

    /// A registry demanding basic auth as `user` with `password` (htpasswd, bcrypt).
    pub fn start_with_basic_auth(user: &str, password: &str) -> Registry {
        Registry::start_with_auth(Some(htpasswd_line(user, password)))
    }

    fn start_with_auth(htpasswd: Option<String>) -> Registry {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        let auth = match htpasswd {
            Some(line) => {
                std::fs::write(root.join("htpasswd"), line).expect("htpasswd");
                format!(
                    "auth:\n  htpasswd:\n    realm: plumb-test\n    path: {}/htpasswd\n",
                    root.display()
                )
            }
            None => String::new(),
        };
        let log_path = root.join("registry.log");
        let (child, port) = start_on_free_port("docker-registry", &log_path, |port| {
            let config = format!(
                "version: 0.1\nlog:\n  level: warn\nstorage:\n  filesystem:\n    rootdirectory: {root}/data\n\
                 {auth}http:\n  addr: 127.0.0.1:{port}\n",
                root = root.display()
            );
            std::fs::write(root.join("config.yml"), config).expect("config");
            let log = std::fs::File::create(&log_path).expect("log");
            Command::new("docker-registry")
                .arg("serve")
                .arg(root.join("config.yml"))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("docker-registry (scripts/install-test-deps installs it)")
        });
        Registry {
            child,
            port,
            _dir: dir,
        }
    }
}

/// A bcrypt htpasswd line (apache2-utils' htpasswd; scripts/install-test-deps installs it).
pub fn htpasswd_line(user: &str, password: &str) -> String {
    let out = run_checked(
        Command::new("htpasswd").args(["-nbB", user, password]),
        "htpasswd",
    );
    String::from_utf8(out.stdout)
        .expect("utf8")
        .trim()
        .to_string()
        + "\n"
}

/// Packages chart `name` at `version` with `template` as its one template
/// (`templates/cm.yaml`) into `out`, building it under `work`; returns the archive.
pub fn package_chart(
    work: &Path,
    out: &Path,
    name: &str,
    version: &str,
    template: &str,
) -> PathBuf {
    let chart = work.join(format!("{name}-{version}"));
    std::fs::create_dir_all(chart.join("templates")).expect("mkdir");
    std::fs::write(
        chart.join("Chart.yaml"),
        format!("apiVersion: v2\nname: {name}\nversion: {version}\n"),
    )
    .expect("chart");
    std::fs::write(chart.join("templates/cm.yaml"), template).expect("template");
    std::fs::create_dir_all(out).expect("mkdir");
    helm(
        &[
            "package",
            chart.to_str().expect("utf8"),
            "-d",
            out.to_str().expect("utf8"),
        ],
        work,
        &work.join("home"),
    );
    out.join(format!("{name}-{version}.tgz"))
}

/// Writes the `index.yaml` of the chart archives in `charts`, served at `url` (helm runs in
/// `work`, with its homes under `work/home`).
pub fn helm_repo_index(charts: &Path, url: &str, work: &Path) {
    helm(
        &[
            "repo",
            "index",
            charts.to_str().expect("utf8"),
            "--url",
            url,
        ],
        work,
        &work.join("home"),
    );
}

/// Runs the Go-built helm in `cwd` with its own homes under `home`; `registry.json` there
/// (docker config.json) holds the test's own registry logins.
pub fn helm(args: &[&str], cwd: &Path, home: &Path) {
    run_checked(
        Command::new(tool_bin_dir().join("helm"))
            .args(args)
            .current_dir(cwd)
            .env("HELM_CONFIG_HOME", home.join("config"))
            .env("HELM_CACHE_HOME", home.join("cache"))
            .env("HELM_DATA_HOME", home.join("data"))
            .env("HELM_REGISTRY_CONFIG", home.join("registry.json")),
        &format!("helm {args:?}"),
    );
}

impl Drop for Registry {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A TCP server that accepts connections and never answers (for timeouts).
pub fn black_hole() -> (u16, std::thread::JoinHandle<()>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let handle = std::thread::spawn(move || {
        let mut held = Vec::new();
        for stream in listener.incoming().take(16).flatten() {
            held.push(stream);
        }
    });
    (port, handle)
}

/// Where the Go-built helm and kustomize are: `PLUMB_TESTCLUSTER_BIN` (set by scripts/test),
/// else what `scripts/build-testcluster` prints (it builds once per machine, then answers
/// from its cache).
pub fn tool_bin_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("PLUMB_TESTCLUSTER_BIN") {
        return PathBuf::from(dir);
    }
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../scripts/build-testcluster");
    let out = Command::new(&script)
        .stderr(Stdio::inherit())
        .output()
        .expect("run scripts/build-testcluster");
    assert!(out.status.success(), "scripts/build-testcluster failed");
    PathBuf::from(String::from_utf8_lossy(&out.stdout).trim())
}

fn openssl(dir: &Path, args: &[&str]) {
    run_checked(
        Command::new("openssl").args(args).current_dir(dir),
        &format!("openssl {args:?}"),
    );
}

/// PEM files of a throwaway CA, a server certificate for 127.0.0.1 and a client certificate.
pub struct TestPki {
    pub ca_crt: String,
    pub client_crt: String,
    pub client_key: String,
}

/// lighttpd serving `git http-backend` over HTTPS at `/git/`, demanding a client
/// certificate signed by its own CA.
pub struct TlsGitServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
    pub pki: TestPki,
}

impl TlsGitServer {
    pub fn start() -> TlsGitServer {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::create_dir_all(root.join("repos")).expect("mkdir");
        let ec = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
            "-nodes",
        ];
        let mut args = vec!["req", "-x509"];
        args.extend(ec);
        args.extend([
            "-keyout",
            "ca.key",
            "-out",
            "ca.crt",
            "-days",
            "2",
            "-subj",
            "/CN=plumb test CA",
        ]);
        openssl(root, &args);
        for (name, ext) in [
            (
                "server",
                "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n",
            ),
            ("client", "extendedKeyUsage=clientAuth\n"),
        ] {
            let key = format!("{name}.key");
            let csr = format!("{name}.csr");
            let crt = format!("{name}.crt");
            let extfile = format!("{name}.ext");
            let subject = format!("/CN={name}");
            let mut args = vec!["req"];
            args.extend(ec);
            args.extend(["-keyout", &key, "-out", &csr, "-subj", &subject]);
            openssl(root, &args);
            std::fs::write(root.join(&extfile), ext).expect("ext");
            openssl(
                root,
                &[
                    "x509",
                    "-req",
                    "-in",
                    &csr,
                    "-CA",
                    "ca.crt",
                    "-CAkey",
                    "ca.key",
                    "-CAcreateserial",
                    "-out",
                    &crt,
                    "-days",
                    "2",
                    "-extfile",
                    &extfile,
                ],
            );
        }
        let read = |name: &str| std::fs::read_to_string(root.join(name)).expect("pem");
        std::fs::write(
            root.join("server.pem"),
            read("server.crt") + &read("server.key"),
        )
        .expect("pem");
        let pki = TestPki {
            ca_crt: read("ca.crt"),
            client_crt: read("client.crt"),
            client_key: read("client.key"),
        };
        let (child, port) = start_on_free_port("lighttpd (TLS)", &root.join("error.log"), |port| {
            let config = format!(
                r#"server.document-root = "{root}"
server.port = {port}
server.bind = "127.0.0.1"
server.modules = ("mod_alias", "mod_setenv", "mod_cgi", "mod_openssl")
server.errorlog = "{root}/error.log"
ssl.engine = "enable"
ssl.pemfile = "{root}/server.pem"
ssl.ca-file = "{root}/ca.crt"
ssl.verifyclient.activate = "enable"
ssl.verifyclient.enforce = "enable"
alias.url = ( "/git/" => "/usr/lib/git-core/git-http-backend/" )
$HTTP["url"] =~ "^/git/" {{
  cgi.assign = ( "" => "" )
  setenv.add-environment = ( "GIT_PROJECT_ROOT" => "{root}/repos", "GIT_HTTP_EXPORT_ALL" => "1" )
}}
"#,
                root = root.display()
            );
            std::fs::write(root.join("lighttpd.conf"), config).expect("config");
            spawn_lighttpd(&root.join("lighttpd.conf"))
        });
        TlsGitServer {
            child,
            port,
            dir,
            pki,
        }
    }

    pub fn repos(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    pub fn url(&self, name: &str) -> String {
        format!("https://127.0.0.1:{}/git/{name}.git", self.port)
    }
}

impl Drop for TlsGitServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
