//! Real servers tests start on loopback ports, shared by the crates' test suites: lighttpd
//! running `git http-backend`, with a public area and one behind basic auth. Each lives in its
//! own temporary directory and is killed when dropped.

use crate::error::Error;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The account the basic-auth area of [`GitHttpServer`] accepts.
pub const HTTP_USER: &str = "alice";
/// Its password.
pub const HTTP_PASSWORD: &str = "correct-horse-battery";

fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
    let what = what.into();
    move |source| Error::Io { what, source }
}

/// A port that was free a moment ago (servers that cannot report a port-0 bind get this).
pub fn free_port() -> Result<u16, Error> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(io("binding port 0"))?;
    Ok(listener.local_addr().map_err(io("reading a port"))?.port())
}

fn wait_for_port(port: u16, child: &mut Child, what: &str, log: &Path) -> Result<(), Error> {
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Timeout {
                what: format!("{what} to listen on port {port}"),
                seconds: 0,
                details: format!(
                    "; it exited with {status}: {}",
                    std::fs::read_to_string(log).unwrap_or_default()
                ),
            });
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    let _ = child.kill();
    Err(Error::Timeout {
        what: format!("{what} to listen on port {port}"),
        seconds: 20,
        details: format!(": {}", std::fs::read_to_string(log).unwrap_or_default()),
    })
}

/// Starts a server on a free port: `spawn` writes its config for the port and starts it. A
/// server that exits at once lost the port to someone else in between and is started again
/// on another; returns it once it listens (`log` is shown if it never does).
pub fn start_on_free_port(
    what: &str,
    log: &Path,
    mut spawn: impl FnMut(u16) -> Result<Child, Error>,
) -> Result<(Child, u16), Error> {
    let mut last = None;
    for _ in 0..5 {
        let port = free_port()?;
        let mut child = spawn(port)?;
        std::thread::sleep(Duration::from_millis(50));
        match wait_for_port(port, &mut child, what, log) {
            Ok(()) => return Ok((child, port)),
            // Most likely the port was taken in between: try another.
            Err(error) => last = Some(error),
        }
    }
    Err(Error::PortsKeptColliding {
        attempts: 5,
        last: Box::new(last.unwrap_or_else(|| Error::Timeout {
            what: what.to_string(),
            seconds: 0,
            details: String::new(),
        })),
    })
}

/// lighttpd in the foreground with the config file `conf`.
pub fn spawn_lighttpd(conf: &Path) -> Result<Child, Error> {
    Command::new("lighttpd")
        .args(["-D", "-f"])
        .arg(conf)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(io(
            "starting lighttpd (scripts/install-test-deps installs it)",
        ))
}

/// lighttpd with `git http-backend` at `/git/` (public) and `/private/` (basic auth as
/// [`HTTP_USER`]/[`HTTP_PASSWORD`]), and static files from `www/`. Repositories are bare
/// directories under [`repos`](Self::repos).
pub struct GitHttpServer {
    child: Child,
    pub port: u16,
    pub dir: tempfile::TempDir,
}

impl GitHttpServer {
    pub fn start() -> Result<GitHttpServer, Error> {
        let dir = tempfile::tempdir().map_err(io("creating a temporary directory"))?;
        let root = dir.path();
        for sub in ["repos", "www"] {
            std::fs::create_dir_all(root.join(sub)).map_err(io(format!("creating {sub}/")))?;
        }
        std::fs::write(root.join("users"), format!("{HTTP_USER}:{HTTP_PASSWORD}\n"))
            .map_err(io("writing the user file"))?;
        let backend = "/usr/lib/git-core/git-http-backend/";
        let (child, port) = start_on_free_port("lighttpd", &root.join("error.log"), |port| {
            let config = format!(
                r#"server.document-root = "{root}/www"
server.port = {port}
server.bind = "127.0.0.1"
server.modules = ("mod_alias", "mod_setenv", "mod_auth", "mod_authn_file", "mod_cgi")
server.errorlog = "{root}/error.log"
mimetype.assign = (".yaml" => "text/yaml", ".tgz" => "application/gzip")
alias.url = ( "/git/" => "{backend}", "/private/" => "{backend}" )
$HTTP["url"] =~ "^/(git|private)/" {{
  cgi.assign = ( "" => "" )
  setenv.add-environment = ( "GIT_PROJECT_ROOT" => "{root}/repos", "GIT_HTTP_EXPORT_ALL" => "1" )
}}
auth.backend = "plain"
auth.backend.plain.userfile = "{root}/users"
auth.require = ( "/private/" => ( "method" => "basic", "realm" => "git", "require" => "valid-user" ) )
"#,
                root = root.display()
            );
            std::fs::write(root.join("lighttpd.conf"), config)
                .map_err(io("writing lighttpd.conf"))?;
            spawn_lighttpd(&root.join("lighttpd.conf"))
        })?;
        Ok(GitHttpServer { child, port, dir })
    }

    pub fn repos(&self) -> PathBuf {
        self.dir.path().join("repos")
    }

    pub fn www(&self) -> PathBuf {
        self.dir.path().join("www")
    }

    /// URL of a repository under `repos/` (`name` without `.git`).
    pub fn public_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/git/{name}.git", self.port)
    }

    /// The same repository behind basic auth.
    pub fn private_url(&self, name: &str) -> String {
        format!("http://127.0.0.1:{}/private/{name}.git", self.port)
    }
}

impl Drop for GitHttpServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
