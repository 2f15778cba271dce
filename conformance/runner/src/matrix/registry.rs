//! The client registry (`conformance/adapters/clients.json`): which clients exist, how to run their adapters, and what must exist for each to be available.

use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};
use thiserror::Error;

/// One client of the matrix.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClientEntry {
    /// Short name (`native`, `kotlin`, ...), also the matrix column.
    pub name: String,
    /// What the column header says.
    #[serde(default)]
    pub label: String,
    /// The adapter command line, run from the repository root; absent for the built-in native adapter.
    #[serde(default)]
    pub command: Option<String>,
    /// Run once (from the repository root) before the client's cases, e.g. a build; its output
    /// goes to the terminal.
    #[serde(default)]
    pub prepare: Option<String>,
    /// What must exist for the client to be available: a path (contains `/`, relative to the
    /// repository root or absolute) or a program on `PATH`.
    #[serde(default)]
    pub requires: Vec<String>,
    /// A known-failures file (relative to the repository root), used when it exists.
    #[serde(default)]
    pub known_failures: Option<String>,
}

/// The registry file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Registry {
    pub clients: Vec<ClientEntry>,
}

/// Why the registry could not be used.
#[derive(Debug, Error)]
pub enum RegistryError {
    #[error("client registry {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    #[error("client registry {path}: {source}")]
    Parse {
        path: String,
        source: serde_json::Error,
    },
    #[error("client registry {path}: {0}", path = .1)]
    Invalid(String, String),
}

impl Registry {
    /// Read and check a registry file.
    pub fn load(path: &Path) -> Result<Registry, RegistryError> {
        let shown = path.display().to_string();
        let text = std::fs::read_to_string(path).map_err(|source| RegistryError::Read {
            path: shown.clone(),
            source,
        })?;
        Registry::parse(&text).map_err(|e| match e {
            RegistryError::Parse { source, .. } => RegistryError::Parse {
                path: shown.clone(),
                source,
            },
            RegistryError::Invalid(m, _) => RegistryError::Invalid(m, shown.clone()),
            other => other,
        })
    }

    /// Parse and check registry text: names unique and non-empty.
    pub fn parse(text: &str) -> Result<Registry, RegistryError> {
        let r: Registry = serde_json::from_str(text).map_err(|source| RegistryError::Parse {
            path: String::new(),
            source,
        })?;
        let mut seen = std::collections::BTreeSet::new();
        for c in &r.clients {
            if c.name.is_empty()
                || !c
                    .name
                    .chars()
                    .all(|ch| ch.is_ascii_alphanumeric() || ch == '-' || ch == '_')
            {
                return Err(RegistryError::Invalid(
                    format!("bad client name {:?}", c.name),
                    String::new(),
                ));
            }
            if !seen.insert(c.name.clone()) {
                return Err(RegistryError::Invalid(
                    format!("client {} listed twice", c.name),
                    String::new(),
                ));
            }
        }
        Ok(r)
    }
}

/// The `requires` entries that are missing, checked from `root` and along `path_var`.
pub fn missing(
    entry: &ClientEntry,
    root: &Path,
    path_var: Option<&std::ffi::OsStr>,
) -> Vec<String> {
    entry
        .requires
        .iter()
        .filter(|r| !present(r, root, path_var))
        .cloned()
        .collect()
}

fn present(req: &str, root: &Path, path_var: Option<&std::ffi::OsStr>) -> bool {
    if req.contains('/') {
        let p = PathBuf::from(req);
        let p = if p.is_absolute() { p } else { root.join(p) };
        return p.exists();
    }
    path_var
        .map(|pv| std::env::split_paths(pv).any(|dir| is_executable(&dir.join(req))))
        .unwrap_or(false)
}

fn is_executable(p: &Path) -> bool {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        p.metadata()
            .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
    }
    #[cfg(not(unix))]
    {
        p.is_file()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registry_parses_and_rejects_duplicates() {
        let r = Registry::parse(
            r#"{"clients":[{"name":"native","label":"Rust"},
               {"name":"browser","command":"node conformance/adapters/browser/adapter.mjs",
                "requires":["conformance/adapters/browser/adapter.mjs","node"]}]}"#,
        )
        .expect("parses");
        assert_eq!(r.clients.len(), 2);
        assert_eq!(r.clients[0].command, None);
        assert!(Registry::parse(r#"{"clients":[{"name":"a"},{"name":"a"}]}"#).is_err());
        assert!(Registry::parse(r#"{"clients":[{"name":"a b"}]}"#).is_err());
    }

    #[test]
    fn availability_checks_paths_and_programs() {
        let dir = std::env::temp_dir().join(format!("tether-registry-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("bin")).expect("dir");
        std::fs::write(dir.join("here.txt"), "x").expect("file");
        let prog = dir.join("bin/tool");
        std::fs::write(&prog, "#!/bin/sh\n").expect("prog");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&prog, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let e = ClientEntry {
            name: "x".into(),
            label: String::new(),
            command: Some("tool".into()),
            prepare: None,
            requires: vec![
                "here.txt".into(),
                "./here.txt".into(),
                "tool".into(),
                "no-such-tool".into(),
                "./absent.txt".into(),
            ],
            known_failures: None,
        };
        let path = std::env::join_paths([dir.join("bin")]).expect("path");
        let m = missing(&e, &dir, Some(&path));
        // "here.txt" has no slash: it is looked up as a program and is missing.
        assert_eq!(m, vec!["here.txt", "no-such-tool", "./absent.txt"]);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
