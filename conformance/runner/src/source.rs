//! Which source tree a run tested: the git commit of the checkout, for the reports (absent outside a git checkout or without git).

use serde::{Deserialize, Serialize};
use std::path::Path;
use std::process::{Command, Stdio};

/// The checkout a run came from.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// The full commit hash of `HEAD`.
    pub commit: String,
    /// True when tracked files differ from that commit (the run tested uncommitted code).
    pub dirty: bool,
}

impl Source {
    /// The commit as shown in reports: 12 hex digits, `+dirty` when modified.
    pub fn short(&self) -> String {
        let short: String = self.commit.chars().take(12).collect();
        if self.dirty {
            format!("{short}+dirty")
        } else {
            short
        }
    }
}

/// The git commit of the checkout holding `dir`, or `None` when `dir` is not in a git
/// checkout, git is not installed, or it fails: a report never fails for want of it.
pub fn git(dir: &Path) -> Option<Source> {
    let out = |args: &[&str]| -> Option<String> {
        let o = Command::new("git")
            .arg("-C")
            .arg(dir)
            .args(args)
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .ok()?;
        o.status
            .success()
            .then(|| String::from_utf8_lossy(&o.stdout).trim().to_owned())
    };
    let commit = out(&["rev-parse", "--verify", "HEAD"])?;
    if commit.len() < 7 || !commit.chars().all(|c| c.is_ascii_hexdigit()) {
        return None;
    }
    let dirty =
        out(&["status", "--porcelain", "--untracked-files=no"]).is_some_and(|s| !s.is_empty());
    Some(Source { commit, dirty })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn outside_a_checkout_there_is_no_commit() {
        let dir = std::env::temp_dir().join(format!("tether-no-git-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        // A directory under /tmp is not in this repository's checkout (nor, normally, any).
        let found = git(&dir);
        let _ = std::fs::remove_dir_all(&dir);
        assert_eq!(found, None);
        assert_eq!(git(Path::new("/nonexistent/tether")), None);
    }

    #[test]
    fn short_form() {
        let s = Source {
            commit: "0123456789abcdef0123".into(),
            dirty: true,
        };
        assert_eq!(s.short(), "0123456789ab+dirty");
        assert_eq!(Source { dirty: false, ..s }.short(), "0123456789ab");
    }
}
