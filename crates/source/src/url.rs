//! Repository URLs: which forms are accepted, and one normal form per repository.
//!
//! The normal form is the identity of a repository everywhere in plumb: the mirror cache,
//! the render cache, credential matching and webhook matching. `https://Host/org/repo.git/`
//! and `https://host/org/repo` are the same repository; `git@host:org/repo.git` and
//! `ssh://git@host/org/repo` are too (as Argo CD treats them). The path keeps its case:
//! servers may be case-sensitive.

use std::fmt;

/// How a repository is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transport {
    Https,
    Http,
    Ssh,
    File,
}

/// A parsed, checked repository URL.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct RepoUrl {
    /// What git is given to fetch: the URL as written, minus any password.
    fetch_url: String,
    normalized: String,
    transport: Transport,
    /// `host[:port]`, lower case; empty for file://.
    host: String,
    /// The user in the URL (`git` in `git@host:...`), never a password.
    user: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    #[error("repository URL is empty")]
    Empty,
    #[error("repository URL {0:?} contains whitespace or control characters")]
    BadCharacters(String),
    #[error("repository URL {0:?} starts with '-'; refused so that it cannot act as an option")]
    LeadingDash(String),
    #[error(
        "repository URL {url:?} uses the scheme {scheme:?}; only https, http, ssh, scp-like \
         (user@host:path) and, when allowed, file are accepted"
    )]
    UnsupportedScheme { url: String, scheme: String },
    #[error(
        "file:// repository URLs are not allowed here ({0:?}); enable them in the configuration"
    )]
    FileNotAllowed(String),
    #[error("repository URL {0:?} has no host")]
    NoHost(String),
    #[error("repository URL {0:?} has no repository path")]
    NoPath(String),
}

/// Which URL forms a caller accepts.
#[derive(Debug, Clone, Copy, Default)]
pub struct UrlPolicy {
    pub allow_file: bool,
}

impl RepoUrl {
    /// Parses and checks `url`.
    pub fn parse(url: &str, policy: UrlPolicy) -> Result<RepoUrl, UrlError> {
        let url = url.trim();
        if url.is_empty() {
            return Err(UrlError::Empty);
        }
        if url.starts_with('-') {
            return Err(UrlError::LeadingDash(url.to_string()));
        }
        // git's remote helpers (`ext::cmd`, `fd::3`, `foo::url`) run programs: never.
        if let Some((scheme, _)) = url.split_once("::")
            && !scheme.contains('/')
        {
            return Err(UrlError::UnsupportedScheme {
                url: url.to_string(),
                scheme: scheme.to_string(),
            });
        }
        if url.chars().any(|c| c.is_control() || c.is_whitespace()) {
            return Err(UrlError::BadCharacters(url.to_string()));
        }
        if let Some((scheme, rest)) = url.split_once("://") {
            let transport = match scheme.to_ascii_lowercase().as_str() {
                "https" => Transport::Https,
                "http" => Transport::Http,
                "ssh" | "git+ssh" | "ssh+git" => Transport::Ssh,
                "file" => {
                    if !policy.allow_file {
                        return Err(UrlError::FileNotAllowed(url.to_string()));
                    }
                    Transport::File
                }
                other => {
                    return Err(UrlError::UnsupportedScheme {
                        url: url.to_string(),
                        scheme: other.to_string(),
                    });
                }
            };
            return Self::from_hierarchical(url, transport, rest);
        }
        // scp-like: `[user@]host:path`, with the colon before any slash (git's own rule).
        if let Some(colon) = url.find(':') {
            let slash = url.find('/').unwrap_or(usize::MAX);
            if colon < slash {
                let (authority, path) = (&url[..colon], &url[colon + 1..]);
                let (user, host) = match authority.rsplit_once('@') {
                    Some((user, host)) => (Some(user.to_string()), host),
                    None => (None, authority),
                };
                if host.is_empty() {
                    return Err(UrlError::NoHost(url.to_string()));
                }
                let path = clean_path(path);
                if path.is_empty() {
                    return Err(UrlError::NoPath(url.to_string()));
                }
                let host = host.to_ascii_lowercase();
                let normalized = format!(
                    "ssh://{}{host}/{path}",
                    user.as_deref().map(|u| format!("{u}@")).unwrap_or_default()
                );
                return Ok(RepoUrl {
                    fetch_url: url.to_string(),
                    normalized,
                    transport: Transport::Ssh,
                    host,
                    user,
                });
            }
        }
        Err(UrlError::UnsupportedScheme {
            url: url.to_string(),
            scheme: "local path".to_string(),
        })
    }

    fn from_hierarchical(url: &str, transport: Transport, rest: &str) -> Result<RepoUrl, UrlError> {
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i + 1..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rsplit_once('@') {
            Some((u, h)) => (Some(u), h),
            None => (None, authority),
        };
        let user = userinfo
            .map(|u| u.split_once(':').map_or(u, |(name, _)| name))
            .filter(|u| !u.is_empty())
            .map(str::to_string);
        if transport != Transport::File && hostport.is_empty() {
            return Err(UrlError::NoHost(url.to_string()));
        }
        let host = strip_default_port(&hostport.to_ascii_lowercase(), transport);
        let path = clean_path(path);
        if path.is_empty() {
            return Err(UrlError::NoPath(url.to_string()));
        }
        let scheme = match transport {
            Transport::Https => "https",
            Transport::Http => "http",
            Transport::Ssh => "ssh",
            Transport::File => "file",
        };
        let normalized = match transport {
            // Only ssh keeps the user: it selects the account on the server. For http(s) the
            // user is a credential and the repository is the same without it.
            Transport::Ssh => format!(
                "ssh://{}{host}/{path}",
                user.as_deref().map(|u| format!("{u}@")).unwrap_or_default()
            ),
            _ => format!("{scheme}://{host}/{path}"),
        };
        // The password never reaches git's command line: drop it from what git is given.
        let fetch_url = match userinfo {
            Some(info) if info.contains(':') => {
                let name = user.as_deref().unwrap_or("");
                let scheme_end = url.find("://").map_or(0, |i| i + 3);
                let after_at = &url[scheme_end + info.len() + 1..];
                format!("{}{name}@{after_at}", &url[..scheme_end])
            }
            _ => url.to_string(),
        };
        Ok(RepoUrl {
            fetch_url,
            normalized,
            transport,
            host,
            user,
        })
    }

    /// The URL git fetches from (as written, without a password).
    pub fn fetch_url(&self) -> &str {
        &self.fetch_url
    }

    /// The repository's identity: one string per repository however it is written.
    pub fn normalized(&self) -> &str {
        &self.normalized
    }

    pub fn transport(&self) -> Transport {
        self.transport
    }

    pub fn host(&self) -> &str {
        &self.host
    }

    pub fn user(&self) -> Option<&str> {
        self.user.as_deref()
    }

    /// Resolves a submodule URL written relative to this repository (`../other.git`).
    pub fn join_relative(&self, relative: &str, policy: UrlPolicy) -> Result<RepoUrl, UrlError> {
        if !(relative.starts_with("./") || relative.starts_with("../")) {
            return RepoUrl::parse(relative, policy);
        }
        let mut base = self.fetch_url.trim_end_matches('/').to_string();
        let mut rest = relative;
        loop {
            if let Some(r) = rest.strip_prefix("./") {
                rest = r;
            } else if let Some(r) = rest.strip_prefix("../") {
                rest = r;
                let cut = base.rfind(['/', ':']).unwrap_or(0);
                base.truncate(cut);
            } else {
                break;
            }
        }
        let sep = if base.ends_with(':') { "" } else { "/" };
        RepoUrl::parse(&format!("{base}{sep}{rest}"), policy)
    }
}

impl fmt::Display for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.fetch_url)
    }
}

impl fmt::Debug for RepoUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RepoUrl({})", self.fetch_url)
    }
}

/// Trailing slashes and a `.git` suffix do not name another repository; `//` neither.
fn clean_path(path: &str) -> String {
    let path = path.split(['?', '#']).next().unwrap_or("");
    let mut parts: Vec<&str> = path.split('/').filter(|p| !p.is_empty()).collect();
    if let Some(last) = parts.last_mut()
        && let Some(stripped) = last.strip_suffix(".git")
    {
        *last = stripped;
    }
    parts.retain(|p| !p.is_empty());
    parts.join("/")
}

fn strip_default_port(hostport: &str, transport: Transport) -> String {
    let default = match transport {
        Transport::Https => ":443",
        Transport::Http => ":80",
        Transport::Ssh => ":22",
        Transport::File => return hostport.to_string(),
    };
    hostport
        .strip_suffix(default)
        .unwrap_or(hostport)
        .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: UrlPolicy = UrlPolicy { allow_file: true };
    const STRICT: UrlPolicy = UrlPolicy { allow_file: false };

    fn norm(url: &str) -> String {
        RepoUrl::parse(url, OPEN)
            .unwrap_or_else(|e| panic!("{url}: {e}"))
            .normalized()
            .to_string()
    }

    #[test]
    fn golden_normal_forms() {
        let cases = [
            ("https://github.com/org/repo", "https://github.com/org/repo"),
            (
                "https://GitHub.com/org/repo.git",
                "https://github.com/org/repo",
            ),
            (
                "https://github.com/org/repo/",
                "https://github.com/org/repo",
            ),
            (
                "https://github.com:443/org/repo.git/",
                "https://github.com/org/repo",
            ),
            (
                "https://user:secret@github.com/org/repo",
                "https://github.com/org/repo",
            ),
            (
                "http://127.0.0.1:8080/git/a.git",
                "http://127.0.0.1:8080/git/a",
            ),
            (
                "git@github.com:org/repo.git",
                "ssh://git@github.com/org/repo",
            ),
            (
                "ssh://git@github.com/org/repo",
                "ssh://git@github.com/org/repo",
            ),
            (
                "ssh://git@github.com:22/org/repo.git",
                "ssh://git@github.com/org/repo",
            ),
            (
                "ssh://git@host:2222/org/repo",
                "ssh://git@host:2222/org/repo",
            ),
            ("file:///srv/git/repo.git", "file:///srv/git/repo"),
            ("https://host/Org/Repo", "https://host/Org/Repo"),
        ];
        for (input, want) in cases {
            assert_eq!(norm(input), want, "{input}");
        }
    }

    #[test]
    fn password_never_reaches_the_fetch_url() {
        let url = RepoUrl::parse("https://alice:s3cret@host/org/repo.git", OPEN).expect("parse");
        assert_eq!(url.fetch_url(), "https://alice@host/org/repo.git");
        assert_eq!(url.user(), Some("alice"));
        assert!(!format!("{url} {url:?}").contains("s3cret"));
    }

    #[test]
    fn refused_forms() {
        let refused = [
            ("ext::sh -c touch% /tmp/pwned", "scheme"),
            ("fd::17", "scheme"),
            ("git://host/repo", "scheme"),
            ("ftp://host/repo", "scheme"),
            ("-uhttps://host/repo", "'-'"),
            ("--upload-pack=touch /tmp/x", "'-'"),
            ("https://host/repo\nother", "control"),
            ("/srv/git/repo", "local path"),
            ("https:///repo", "no host"),
            ("https://host/", "no repository path"),
            ("", "empty"),
        ];
        for (url, why) in refused {
            let err = RepoUrl::parse(url, OPEN).expect_err(url).to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
        let err = RepoUrl::parse("file:///srv/repo", STRICT).expect_err("file");
        assert!(matches!(err, UrlError::FileNotAllowed(_)));
    }

    #[test]
    fn relative_submodule_urls() {
        let base = RepoUrl::parse("https://host/org/app.git", OPEN).expect("parse");
        let sub = base.join_relative("../lib.git", OPEN).expect("join");
        assert_eq!(sub.normalized(), "https://host/org/lib");
        let scp = RepoUrl::parse("git@host:org/app.git", OPEN).expect("parse");
        let sub = scp.join_relative("../lib.git", OPEN).expect("join");
        assert_eq!(sub.normalized(), "ssh://git@host/org/lib");
    }

    proptest::proptest! {
        /// Writing the same repository with or without `.git`, a trailing slash, a default
        /// port or upper-case host never changes its identity.
        #[test]
        fn spelling_variants_share_one_identity(
            host in "[a-z][a-z0-9]{0,8}(\\.[a-z]{2,3})?",
            segments in proptest::collection::vec("[A-Za-z0-9_][A-Za-z0-9_.-]{0,8}", 1..4),
        ) {
            let path = segments.join("/");
            proptest::prop_assume!(!path.ends_with(".git") && !path.contains(".git/"));
            let base = norm(&format!("https://{host}/{path}"));
            proptest::prop_assert_eq!(&norm(&format!("https://{}/{path}.git", host.to_uppercase())), &base);
            proptest::prop_assert_eq!(&norm(&format!("https://{host}:443/{path}/")), &base);
            proptest::prop_assert_eq!(&norm(&format!("https://tok:pw@{host}/{path}")), &base);
            let scp = norm(&format!("git@{host}:{path}.git"));
            proptest::prop_assert_eq!(scp, norm(&format!("ssh://git@{host}:22/{path}")));
        }
    }
}
