//! Turning a `targetRevision` into a commit, given the refs a remote advertises (pure).
//!
//! Order, as Argo CD: `HEAD`/empty, a full SHA, a ref name (branch, tag, `refs/...`), a semver
//! constraint over tags, and finally a short SHA (a prefix of an advertised commit, else left
//! for the mirror to resolve after a fetch).

/// One ref a remote advertises (`git ls-remote`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RemoteRef {
    pub name: String,
    pub sha: String,
}

/// What a revision resolved to without a fetch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Resolution {
    /// A full commit SHA, with the ref it came from when there is one.
    Commit { sha: String, via: Option<String> },
    /// An abbreviated SHA no advertised ref starts with: the mirror decides after fetching.
    ShortSha(String),
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RevisionError {
    #[error("revision '{0}' not found")]
    NotFound(String),
    #[error("revision '{revision}' is ambiguous: it matches the commits {candidates:?}")]
    Ambiguous {
        revision: String,
        candidates: Vec<String>,
    },
    #[error("revision '{revision}' is not a valid semver constraint: {message}")]
    BadConstraint { revision: String, message: String },
}

pub fn is_full_sha(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

fn is_short_sha(s: &str) -> bool {
    (4..40).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Parses `git ls-remote` output: `<sha>\t<ref>` lines; annotated tags appear twice, the
/// `^{}` line carrying the commit, which is the one kept.
pub fn parse_ls_remote(output: &str) -> Vec<RemoteRef> {
    let mut refs: Vec<RemoteRef> = Vec::new();
    for line in output.lines() {
        let Some((sha, name)) = line.split_once('\t') else {
            continue;
        };
        if !is_full_sha(sha) {
            continue;
        }
        if let Some(tag) = name.strip_suffix("^{}") {
            match refs.iter_mut().find(|r| r.name == tag) {
                Some(existing) => existing.sha = sha.to_string(),
                None => refs.push(RemoteRef {
                    name: tag.to_string(),
                    sha: sha.to_string(),
                }),
            }
        } else if !refs.iter().any(|r| r.name == name) {
            refs.push(RemoteRef {
                name: name.to_string(),
                sha: sha.to_string(),
            });
        }
    }
    refs
}

/// Resolves `revision` against advertised `refs`.
pub fn resolve(revision: &str, refs: &[RemoteRef]) -> Result<Resolution, RevisionError> {
    let revision = revision.trim();
    let find = |name: &str| refs.iter().find(|r| r.name == name);
    let commit = |r: &RemoteRef| Resolution::Commit {
        sha: r.sha.to_lowercase(),
        via: Some(r.name.clone()),
    };
    if revision.is_empty() || revision == "HEAD" {
        return find("HEAD")
            .map(commit)
            .ok_or_else(|| RevisionError::NotFound("HEAD".to_string()));
    }
    if is_full_sha(revision) {
        return Ok(Resolution::Commit {
            sha: revision.to_lowercase(),
            via: None,
        });
    }
    for candidate in [
        revision.to_string(),
        format!("refs/heads/{revision}"),
        format!("refs/tags/{revision}"),
    ] {
        if let Some(r) = find(&candidate) {
            return Ok(commit(r));
        }
    }
    if let Some(constraint) = Constraint::parse(revision)? {
        let best = refs
            .iter()
            .filter_map(|r| {
                let tag = r.name.strip_prefix("refs/tags/")?;
                let version = parse_tag_version(tag)?;
                constraint.matches(&version).then_some((version, r))
            })
            .max_by(|a, b| a.0.cmp(&b.0));
        return best
            .map(|(_, r)| commit(r))
            .ok_or_else(|| RevisionError::NotFound(revision.to_string()));
    }
    if is_short_sha(revision) {
        let lower = revision.to_lowercase();
        let mut candidates: Vec<String> = refs
            .iter()
            .filter(|r| r.sha.starts_with(&lower))
            .map(|r| r.sha.clone())
            .collect();
        candidates.sort();
        candidates.dedup();
        return match candidates.len() {
            0 => Ok(Resolution::ShortSha(lower)),
            1 => Ok(Resolution::Commit {
                sha: candidates.remove(0),
                via: None,
            }),
            _ => Err(RevisionError::Ambiguous {
                revision: revision.to_string(),
                candidates,
            }),
        };
    }
    Err(RevisionError::NotFound(revision.to_string()))
}

/// A tag read as a version: `v1.2.3` and `1.2.3`; `1.2` is `1.2.0` (as Masterminds/semver).
pub fn parse_tag_version(tag: &str) -> Option<semver::Version> {
    let bare = tag.strip_prefix('v').unwrap_or(tag);
    if let Ok(v) = semver::Version::parse(bare) {
        return Some(v);
    }
    let (core, rest) = match bare.find(['-', '+']) {
        Some(i) => (&bare[..i], &bare[i..]),
        None => (bare, ""),
    };
    let parts: Vec<&str> = core.split('.').collect();
    if parts.is_empty() || parts.len() > 3 || parts.iter().any(|p| p.parse::<u64>().is_err()) {
        return None;
    }
    let mut full: Vec<&str> = parts.clone();
    while full.len() < 3 {
        full.push("0");
    }
    semver::Version::parse(&format!("{}{rest}", full.join("."))).ok()
}

/// A semver constraint in the syntax Argo CD accepts (Masterminds/semver): space- or
/// comma-separated comparators, `||` alternatives, `1.2.*`/`1.2.x` wildcards, `~`, `^`,
/// hyphen ranges; a bare version means exactly that version.
#[derive(Debug, Clone)]
pub struct Constraint {
    alternatives: Vec<semver::VersionReq>,
}

impl Constraint {
    /// `Ok(None)` when `text` does not look like a constraint at all (then it is a ref name).
    pub fn parse(text: &str) -> Result<Option<Constraint>, RevisionError> {
        let looks_like = text.contains(['*', '<', '>', '=', '~', '^', '|', ' ', ','])
            || text.split('.').any(|p| p == "x" || p == "X");
        if !looks_like {
            return Ok(None);
        }
        let bad = |message: String| RevisionError::BadConstraint {
            revision: text.to_string(),
            message,
        };
        let mut alternatives = Vec::new();
        for alternative in text.split("||") {
            let comparators = translate(alternative.trim()).map_err(bad)?;
            let req = semver::VersionReq::parse(&comparators.join(", "))
                .map_err(|e| bad(e.to_string()))?;
            alternatives.push(req);
        }
        Ok(Some(Constraint { alternatives }))
    }

    pub fn matches(&self, version: &semver::Version) -> bool {
        self.alternatives.iter().any(|req| req.matches(version))
    }
}

/// One `||` alternative, Masterminds syntax → Rust `semver` comparators.
fn translate(alternative: &str) -> Result<Vec<String>, String> {
    // Hyphen range `1.2 - 1.4.5` = `>=1.2, <=1.4.5`.
    if let Some((low, high)) = alternative.split_once(" - ") {
        return Ok(vec![
            format!(">={}", low.trim().trim_start_matches('v')),
            format!("<={}", high.trim().trim_start_matches('v')),
        ]);
    }
    // Glue operators to their versions (`>= 1.0` → `>=1.0`), then split.
    let mut tokens: Vec<String> = Vec::new();
    let mut pending_op = String::new();
    for raw in alternative.split([' ', ',']).filter(|t| !t.is_empty()) {
        if raw.chars().all(|c| "<>=!~^".contains(c)) {
            pending_op.push_str(raw);
            continue;
        }
        tokens.push(format!("{pending_op}{raw}"));
        pending_op.clear();
    }
    if !pending_op.is_empty() {
        return Err(format!("operator '{pending_op}' has no version"));
    }
    if tokens.is_empty() {
        return Err("empty constraint".to_string());
    }
    Ok(tokens
        .into_iter()
        .map(|token| {
            let op_len = token
                .find(|c: char| !"<>=!~^".contains(c))
                .unwrap_or(token.len());
            let (op, version) = token.split_at(op_len);
            let version = version
                .trim_start_matches('v')
                .split('.')
                .map(|p| if p == "x" || p == "X" { "*" } else { p })
                .collect::<Vec<_>>()
                .join(".");
            let op = match op {
                // Masterminds: a bare version is an exact match (Rust's default is caret).
                "" if !version.contains('*') => "=",
                "~>" => "~",
                other => other,
            };
            format!("{op}{version}")
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHA_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    const SHA_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    const SHA_C: &str = "cccccccccccccccccccccccccccccccccccccccc";
    const SHA_D: &str = "dddddddddddddddddddddddddddddddddddddddd";
    const SHA_E: &str = "eeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";

    fn refs() -> Vec<RemoteRef> {
        parse_ls_remote(&format!(
            "{SHA_A}\tHEAD\n{SHA_A}\trefs/heads/main\n{SHA_B}\trefs/heads/release\n\
             {SHA_C}\trefs/tags/v1.2.0\n{SHA_D}\trefs/tags/v1.2.0^{{}}\n\
             {SHA_E}\trefs/tags/v1.3.1\n{SHA_B}\trefs/tags/2.0.0\n{SHA_C}\trefs/tags/v1.4.0-rc.1\n"
        ))
    }

    fn sha(revision: &str) -> String {
        match resolve(revision, &refs()) {
            Ok(Resolution::Commit { sha, .. }) => sha,
            other => panic!("{revision}: {other:?}"),
        }
    }

    #[test]
    fn golden_resolutions() {
        assert_eq!(sha(""), SHA_A);
        assert_eq!(sha("HEAD"), SHA_A);
        assert_eq!(sha("main"), SHA_A);
        assert_eq!(sha("refs/heads/release"), SHA_B);
        // annotated tag: the peeled commit, not the tag object
        assert_eq!(sha("v1.2.0"), SHA_D);
        assert_eq!(sha(SHA_C), SHA_C);
        assert_eq!(sha("bbbbbbb"), SHA_B);
        assert_eq!(sha("1.2.*"), SHA_D);
        assert_eq!(sha("1.x"), SHA_E);
        assert_eq!(sha(">=1.0.0 <2.0.0"), SHA_E);
        assert_eq!(sha(">= 1.0.0, < 1.3.0"), SHA_D);
        assert_eq!(sha("~1.2"), SHA_D);
        assert_eq!(sha("^1"), SHA_E);
        assert_eq!(sha("*"), SHA_B);
        assert_eq!(sha("1.0 - 1.2.5"), SHA_D);
        assert_eq!(sha("<1.0.0 || >=2.0.0"), SHA_B);
    }

    #[test]
    fn short_sha_not_advertised_is_left_to_the_mirror() {
        assert_eq!(
            resolve("0123abc", &refs()),
            Ok(Resolution::ShortSha("0123abc".to_string()))
        );
    }

    #[test]
    fn failures_name_the_revision() {
        let err = resolve("nope", &refs()).expect_err("unknown");
        assert_eq!(err.to_string(), "revision 'nope' not found");
        let err = resolve(">=9.0.0", &refs()).expect_err("no tag satisfies");
        assert!(err.to_string().contains(">=9.0.0"));
        let err = resolve(">=", &refs()).expect_err("bad constraint");
        assert!(matches!(err, RevisionError::BadConstraint { .. }), "{err}");
    }

    #[test]
    fn tag_versions() {
        assert_eq!(
            parse_tag_version("v1.2").map(|v| v.to_string()),
            Some("1.2.0".into())
        );
        assert_eq!(parse_tag_version("release-1"), None);
        assert_eq!(
            parse_tag_version("1.4.0-rc.1").map(|v| v.to_string()),
            Some("1.4.0-rc.1".into())
        );
    }

    proptest::proptest! {
        /// A constraint picks the greatest matching tag, never one that does not match.
        #[test]
        fn constraint_picks_greatest_match(
            versions in proptest::collection::btree_set((0u64..4, 0u64..4, 0u64..4), 1..12),
            major in 0u64..4,
        ) {
            let refs: Vec<RemoteRef> = versions.iter().enumerate().map(|(i, (a, b, c))| RemoteRef {
                name: format!("refs/tags/v{a}.{b}.{c}"),
                sha: format!("{i:040x}"),
            }).collect();
            let expected = versions.iter().enumerate().filter(|(_, (a, _, _))| *a == major).max_by_key(|(_, v)| **v);
            let got = resolve(&format!("{major}.x"), &refs);
            match expected {
                Some((i, _)) => proptest::prop_assert_eq!(got, Ok(Resolution::Commit { sha: format!("{i:040x}"), via: Some(refs[i].name.clone()) })),
                None => proptest::prop_assert!(got.is_err()),
            }
        }
    }
}
