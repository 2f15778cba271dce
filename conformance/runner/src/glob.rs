//! Glob patterns on case names for `--include` / `--exclude`: `*` (any run, also across `/`) and `?`.

/// True when `name` matches `pattern`. A pattern without wildcards also matches as a prefix
/// of whole name segments (`backoff` matches `backoff/jitter/distribution`).
pub fn matches(pattern: &str, name: &str) -> bool {
    if !pattern.contains(['*', '?']) {
        return name == pattern || name.starts_with(&format!("{}/", pattern.trim_end_matches('/')));
    }
    wild(pattern.as_bytes(), name.as_bytes())
}

fn wild(p: &[u8], s: &[u8]) -> bool {
    let (mut pi, mut si) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while si < s.len() {
        if pi < p.len() && (p[pi] == b'?' || p[pi] == s[si]) {
            pi += 1;
            si += 1;
        } else if pi < p.len() && p[pi] == b'*' {
            star = Some(pi);
            mark = si;
            pi += 1;
        } else if let Some(st) = star {
            pi = st + 1;
            mark += 1;
            si = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == b'*' {
        pi += 1;
    }
    pi == p.len()
}

/// Keep a name when it matches some include (or there are none) and no exclude.
pub fn selected(name: &str, include: &[String], exclude: &[String]) -> bool {
    (include.is_empty() || include.iter().any(|p| matches(p, name)))
        && !exclude.iter().any(|p| matches(p, name))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs() {
        assert!(matches("backoff/*", "backoff/jitter/distribution"));
        assert!(matches("*/distribution", "backoff/jitter/distribution"));
        assert!(matches("backoff", "backoff/jitter/distribution"));
        assert!(!matches("back", "backoff/jitter/distribution"));
        assert!(matches("b?ckoff/**", "backoff/x"));
        assert!(!matches("drain/*", "backoff/x"));
        assert!(selected("a/b", &[], &["a/c".into()]));
        assert!(!selected("a/b", &["x/*".into()], &[]));
    }
}
