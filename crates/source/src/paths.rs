//! Paths that come from users (application `path`, value files, components) resolved inside
//! a repository checkout, or refused.

use std::path::{Component, Path, PathBuf};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    #[error("{what} {path:?} is absolute; paths are relative to the repository")]
    Absolute { what: String, path: String },
    #[error("{what} {path:?} leaves the repository")]
    Escapes { what: String, path: String },
    #[error("{what} {path:?} contains a NUL or line break")]
    BadCharacters { what: String, path: String },
    #[error("{what} {path:?} starts with '-'")]
    LeadingDash { what: String, path: String },
    #[error("{what} {path:?} is a symlink that points outside the repository")]
    SymlinkEscapes { what: String, path: String },
    #[error("{what} {path:?} does not exist in the repository")]
    Missing { what: String, path: String },
}

/// A relative path with no component that climbs out of where it starts.
pub fn check_relative(path: &str) -> Result<(), PathError> {
    let err = |f: fn(String, String) -> PathError| Err(f("path".to_string(), path.to_string()));
    if path.contains(['\0', '\n', '\r']) {
        return err(|what, path| PathError::BadCharacters { what, path });
    }
    if Path::new(path).is_absolute() {
        return err(|what, path| PathError::Absolute { what, path });
    }
    if !lexically_inside(Path::new(""), Path::new(path)) {
        return err(|what, path| PathError::Escapes { what, path });
    }
    Ok(())
}

/// Whether `path`, with `.` and `..` applied lexically, stays under `root`.
pub fn lexically_inside(root: &Path, path: &Path) -> bool {
    let relative = match path.strip_prefix(root) {
        Ok(rest) => rest,
        Err(_) if path.is_absolute() => return false,
        Err(_) => path,
    };
    let mut depth: i64 = 0;
    for component in relative.components() {
        match component {
            Component::ParentDir => {
                depth -= 1;
                if depth < 0 {
                    return false;
                }
            }
            Component::Normal(_) => depth += 1,
            Component::CurDir => {}
            Component::RootDir | Component::Prefix(_) => return false,
        }
    }
    true
}

/// Resolves `relative` (written relative to `base`, itself inside `root`) to a real path
/// inside `root`: lexical `..` may not climb above `root`, and symlinks on the way must
/// resolve inside `root`. `what` names the path in errors ("value file", "path").
pub fn resolve_inside(
    root: &Path,
    base: &Path,
    relative: &str,
    what: &str,
) -> Result<PathBuf, PathError> {
    let err = |f: fn(String, String) -> PathError| f(what.to_string(), relative.to_string());
    if relative.contains(['\0', '\n', '\r']) {
        return Err(err(|what, path| PathError::BadCharacters { what, path }));
    }
    if relative.starts_with('-') {
        return Err(err(|what, path| PathError::LeadingDash { what, path }));
    }
    if Path::new(relative).is_absolute() {
        return Err(err(|what, path| PathError::Absolute { what, path }));
    }
    let joined = normalize(&base.join(relative));
    if !lexically_inside(root, &joined) {
        return Err(err(|what, path| PathError::Escapes { what, path }));
    }
    match joined.canonicalize() {
        Ok(real) => {
            let real_root = root.canonicalize().unwrap_or_else(|_| root.to_path_buf());
            if real.starts_with(&real_root) {
                Ok(joined)
            } else {
                Err(err(|what, path| PathError::SymlinkEscapes { what, path }))
            }
        }
        Err(_) => {
            // Missing, or a dangling link: a link is an escape; a missing file is missing.
            if joined.symlink_metadata().is_ok() {
                Err(err(|what, path| PathError::SymlinkEscapes { what, path }))
            } else {
                Err(err(|what, path| PathError::Missing { what, path }))
            }
        }
    }
}

/// `a/./b/../c` → `a/c`, without touching the file system.
pub fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for component in path.components() {
        match component {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_paths() {
        assert!(check_relative("apps/web").is_ok());
        assert!(check_relative("apps/../web").is_ok());
        assert!(check_relative(".").is_ok());
        assert!(matches!(
            check_relative("../other"),
            Err(PathError::Escapes { .. })
        ));
        assert!(matches!(
            check_relative("a/../../x"),
            Err(PathError::Escapes { .. })
        ));
        assert!(matches!(
            check_relative("/etc"),
            Err(PathError::Absolute { .. })
        ));
        assert!(matches!(
            check_relative("a\nb"),
            Err(PathError::BadCharacters { .. })
        ));
    }

    #[test]
    fn resolving_inside_a_tree() {
        let dir = tempfile::tempdir().expect("tmp");
        let root = dir.path();
        std::fs::create_dir_all(root.join("app")).expect("mkdir");
        std::fs::write(root.join("values.yaml"), "a: 1").expect("write");
        std::os::unix::fs::symlink("/etc/passwd", root.join("app/evil.yaml")).expect("link");
        std::os::unix::fs::symlink("../values.yaml", root.join("app/ok.yaml")).expect("link");
        let app = root.join("app");
        assert!(resolve_inside(root, &app, "../values.yaml", "value file").is_ok());
        assert!(resolve_inside(root, &app, "ok.yaml", "value file").is_ok());
        let err = resolve_inside(root, &app, "evil.yaml", "value file").expect_err("escape");
        assert!(matches!(err, PathError::SymlinkEscapes { .. }), "{err}");
        let err = resolve_inside(root, &app, "../../etc/passwd", "value file").expect_err("dots");
        assert!(matches!(err, PathError::Escapes { .. }), "{err}");
        let err = resolve_inside(root, &app, "/etc/passwd", "value file").expect_err("abs");
        assert!(matches!(err, PathError::Absolute { .. }), "{err}");
        let err = resolve_inside(root, &app, "--set=x", "value file").expect_err("dash");
        assert!(matches!(err, PathError::LeadingDash { .. }), "{err}");
        let err = resolve_inside(root, &app, "nope.yaml", "value file").expect_err("missing");
        assert!(matches!(err, PathError::Missing { .. }), "{err}");
    }
}
