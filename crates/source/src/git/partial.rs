//! Partial clones: which blobs of a commit a checkout fetches and which it leaves on the
//! server. Pure functions over git's listings; the I/O is in the parent module.
//!
//! A partial mirror is fetched with `--filter=blob:limit=<n>`: commits, trees and every blob
//! up to `n` bytes arrive with the fetch, larger blobs stay on the server (the mirror's
//! `origin` remote is a promisor remote). A checkout made for one rendered path fetches the
//! missing blobs under that path in one batch and leaves the others out. Blobs outside the
//! path are all present except large ones, so renders that read around their path
//! (Kustomize bases, value files, Jsonnet imports) keep working: only files above the limit
//! outside the path are missing from such a checkout, and they are listed in it.

/// Which part of a commit's tree a checkout must hold completely.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every file (ref sources, the repository root, submodules).
    Whole,
    /// Every file under this repository-relative directory (or this one file); elsewhere only
    /// blobs already in the mirror.
    Under(String),
}

impl Scope {
    /// The scope for rendering `path` (as written in `spec.source.path`).
    pub fn for_path(path: &str) -> Scope {
        let normal = normalize(path);
        if normal.is_empty() {
            Scope::Whole
        } else {
            Scope::Under(normal)
        }
    }

    /// Whether the file at repository-relative `path` must be in the checkout.
    pub fn contains(&self, path: &str) -> bool {
        match self {
            Scope::Whole => true,
            Scope::Under(dir) => is_under(path, dir),
        }
    }
}

/// `./a//b/` → `a/b`; `.` and `` → ``.
fn normalize(path: &str) -> String {
    path.split('/')
        .filter(|part| !part.is_empty() && *part != ".")
        .collect::<Vec<_>>()
        .join("/")
}

fn is_under(path: &str, dir: &str) -> bool {
    dir.is_empty() || path == dir || (path.starts_with(dir) && path[dir.len()..].starts_with('/'))
}

/// One blob of a commit's tree (`git ls-tree -r -z`): files and symlinks, not gitlinks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeBlob {
    pub oid: String,
    pub path: String,
}

/// Parses `git ls-tree -r -z --full-tree <commit>`: `<mode> SP <type> SP <oid> TAB <path> NUL`.
pub fn parse_ls_tree(output: &[u8]) -> Vec<TreeBlob> {
    output
        .split(|b| *b == 0)
        .filter_map(|record| {
            let record = String::from_utf8_lossy(record);
            let (meta, path) = record.split_once('\t')?;
            let mut fields = meta.split(' ');
            let (_mode, kind, oid) = (fields.next()?, fields.next()?, fields.next()?);
            (kind == "blob").then(|| TreeBlob {
                oid: oid.to_string(),
                path: path.to_string(),
            })
        })
        .collect()
}

/// The object IDs `git rev-list --objects --missing=print` reports missing (`?<oid>`).
pub fn parse_missing(output: &[u8]) -> std::collections::HashSet<String> {
    String::from_utf8_lossy(output)
        .lines()
        .filter_map(|line| line.strip_prefix('?'))
        .map(|oid| oid.trim().to_string())
        .collect()
}

/// What a checkout of one commit for `scope` does with the blobs the mirror lacks.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Plan {
    /// Missing blobs in scope: fetched (one batch) before the checkout is written.
    pub fetch: Vec<String>,
    /// Paths of missing blobs out of scope: not written (sorted).
    pub omitted: Vec<String>,
}

pub fn plan(
    blobs: &[TreeBlob],
    missing: &std::collections::HashSet<String>,
    scope: &Scope,
) -> Plan {
    let mut plan = Plan::default();
    let mut wanted = std::collections::BTreeSet::new();
    for blob in blobs.iter().filter(|b| missing.contains(&b.oid)) {
        if scope.contains(&blob.path) {
            wanted.insert(blob.oid.clone());
        } else {
            plan.omitted.push(blob.path.clone());
        }
    }
    // The same content at two paths, one in scope: it is fetched, so neither is left out.
    plan.omitted.retain(|path| {
        blobs
            .iter()
            .find(|b| &b.path == path)
            .is_none_or(|b| !wanted.contains(&b.oid))
    });
    plan.omitted.sort();
    plan.fetch = wanted.into_iter().collect();
    plan
}

/// Whether git's stderr says the server ignored `--filter` (no `uploadpack.allowFilter`).
pub fn filter_refused(stderr: &str) -> bool {
    stderr.contains("filtering not recognized by server")
}

/// Whether git's stderr says the server cannot serve a shallow fetch.
pub fn shallow_refused(stderr: &str) -> bool {
    let lower = stderr.to_ascii_lowercase();
    lower.contains("does not support shallow") || lower.contains("shallow capabilit")
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn blob(oid: &str, path: &str) -> TreeBlob {
        TreeBlob {
            oid: oid.into(),
            path: path.into(),
        }
    }

    #[test]
    fn scopes() {
        assert_eq!(Scope::for_path(""), Scope::Whole);
        assert_eq!(Scope::for_path("./"), Scope::Whole);
        assert_eq!(Scope::for_path("."), Scope::Whole);
        assert_eq!(
            Scope::for_path("./apps//web/"),
            Scope::Under("apps/web".into())
        );
        let web = Scope::for_path("apps/web");
        assert!(web.contains("apps/web/deploy.yaml"));
        assert!(web.contains("apps/web"));
        assert!(!web.contains("apps/website/deploy.yaml"));
        assert!(!web.contains("apps/big.bin"));
        assert!(Scope::Whole.contains("anything"));
    }

    #[test]
    fn ls_tree_listing() {
        let out = b"100644 blob aaa\tapp/a.yaml\x00120000 blob bbb\tapp/link\x00160000 commit ccc\tvendor\x00100644 blob ddd\tweird\tname.txt\x00";
        assert_eq!(
            parse_ls_tree(out),
            vec![
                blob("aaa", "app/a.yaml"),
                blob("bbb", "app/link"),
                blob("ddd", "weird\tname.txt"),
            ]
        );
        let missing = parse_missing(b"1263\nc579 \nb309 app\n?a8c5\n?ffff\n");
        assert_eq!(missing.len(), 2);
        assert!(missing.contains("a8c5") && missing.contains("ffff"));
    }

    #[test]
    fn plan_fetches_in_scope_and_omits_the_rest() {
        let blobs = vec![
            blob("1", "app/a.yaml"),
            blob("2", "app/big.bin"),
            blob("3", "data/huge.bin"),
            blob("2", "data/copy-of-big.bin"),
            blob("4", "data/small.txt"),
        ];
        let missing: std::collections::HashSet<String> =
            ["2", "3"].iter().map(|s| s.to_string()).collect();
        let p = plan(&blobs, &missing, &Scope::for_path("app"));
        assert_eq!(p.fetch, vec!["2".to_string()]);
        assert_eq!(p.omitted, vec!["data/huge.bin".to_string()]);
        let whole = plan(&blobs, &missing, &Scope::Whole);
        assert_eq!(whole.fetch, vec!["2".to_string(), "3".to_string()]);
        assert!(whole.omitted.is_empty());
        let none = plan(&blobs, &missing, &Scope::for_path("elsewhere"));
        assert!(none.fetch.is_empty());
        assert_eq!(none.omitted.len(), 3);
        assert_eq!(
            plan(&blobs, &Default::default(), &Scope::for_path("elsewhere")),
            Plan::default()
        );
    }

    #[test]
    fn server_refusals() {
        assert!(filter_refused(
            "warning: filtering not recognized by server, ignoring\n"
        ));
        assert!(!filter_refused("fatal: could not read from remote"));
        assert!(shallow_refused(
            "fatal: Server does not support shallow clients"
        ));
    }

    proptest! {
        /// Every missing blob is either fetched or omitted, never both; nothing present is
        /// touched; whatever is in scope is fetched.
        #[test]
        fn plan_partitions_missing_blobs(
            // A tree names each path once.
            files in proptest::collection::btree_map("[a-c]{1,2}(/[a-c]{1,2}){0,2}", 0u8..6, 0..20),
            missing_ids in proptest::collection::hash_set(0u8..6, 0..6),
            scope_path in "[a-c]{0,2}",
        ) {
            let blobs: Vec<TreeBlob> = files
                .iter()
                .map(|(p, id)| blob(&id.to_string(), p))
                .collect();
            let missing = missing_ids.iter().map(|i| i.to_string()).collect();
            let scope = Scope::for_path(&scope_path);
            let p = plan(&blobs, &missing, &scope);
            for oid in &p.fetch {
                prop_assert!(missing.contains(oid));
            }
            for b in &blobs {
                let is_missing = missing.contains(&b.oid);
                if is_missing && scope.contains(&b.path) {
                    prop_assert!(p.fetch.contains(&b.oid));
                }
                if p.omitted.contains(&b.path) {
                    prop_assert!(is_missing && !p.fetch.contains(&b.oid));
                }
                if !is_missing {
                    prop_assert!(!p.omitted.contains(&b.path));
                }
            }
        }
    }
}
