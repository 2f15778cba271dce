//! SPEC.md, embedded: every requirement ID with its level (MUST / SHOULD / MAY) and whether it binds the server.

use std::collections::BTreeMap;

/// The contract this runner was built against.
pub const SPEC_MD: &str = include_str!("../../../SPEC.md");

/// How strongly a requirement binds (from its RFC 2119 keywords).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Level {
    /// Contains MUST / MUST NOT.
    Must,
    /// Normative without a keyword (a definition or a rule stated as fact): failures count as FAIL.
    Normative,
    /// Contains SHOULD (and no MUST): a miss is NON-STRICT.
    Should,
    /// Contains only MAY: optional.
    May,
}

impl Level {
    /// Stable name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Must => "MUST",
            Level::Normative => "NORMATIVE",
            Level::Should => "SHOULD",
            Level::May => "MAY",
        }
    }
}

/// One requirement.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Requirement {
    pub id: String,
    pub level: Level,
    /// Marked *(server)*.
    pub server: bool,
    /// Its text on one line, cut at 110 characters (terminal, JSON).
    pub summary: String,
    /// Its whole text as Markdown, lines unindented: paragraphs, tables, `code`, **bold**.
    pub text: String,
}

/// Every requirement, in SPEC order.
#[derive(Clone, Debug, Default)]
pub struct Spec {
    pub requirements: Vec<Requirement>,
    index: BTreeMap<String, usize>,
}

impl Spec {
    /// Parse the embedded SPEC.md.
    pub fn embedded() -> Spec {
        Spec::parse(SPEC_MD)
    }

    /// Parse requirement bullets `- **ID** text...`. The text runs on over the bullet's
    /// indented lines, blank lines included, and ends at the next bullet, heading or rule, or
    /// at an unindented line after a blank one (Markdown's end of a list item).
    pub fn parse(md: &str) -> Spec {
        let mut reqs: Vec<(String, Vec<String>)> = Vec::new();
        let mut open = false;
        let mut after_blank = false;
        for line in md.lines() {
            if let Some(rest) = line.strip_prefix("- **") {
                if let Some((id, text)) = rest.split_once("**") {
                    if is_id(id) {
                        reqs.push((id.to_owned(), vec![text.trim().to_owned()]));
                        open = true;
                        after_blank = false;
                        continue;
                    }
                }
            }
            let ends = line.starts_with('#')
                || line.starts_with("- ")
                || line.starts_with("---")
                || (after_blank && !line.starts_with(char::is_whitespace) && !line.is_empty());
            if ends {
                open = false;
                continue;
            }
            if open {
                if let Some(last) = reqs.last_mut() {
                    last.1.push(line.trim().to_owned());
                }
            }
            after_blank = line.trim().is_empty();
        }
        let requirements: Vec<Requirement> = reqs
            .into_iter()
            .map(|(id, lines)| {
                let text = lines.join("\n").trim().to_owned();
                let level = if text.contains("MUST") {
                    Level::Must
                } else if text.contains("SHOULD") {
                    Level::Should
                } else if text.contains("MAY") {
                    Level::May
                } else {
                    Level::Normative
                };
                let summary: String = text.split_whitespace().collect::<Vec<_>>().join(" ");
                let summary = if summary.chars().count() > 110 {
                    format!("{}…", summary.chars().take(110).collect::<String>())
                } else {
                    summary
                };
                Requirement {
                    server: text.starts_with("*(server)*"),
                    id,
                    level,
                    summary,
                    text,
                }
            })
            .collect();
        let index = requirements
            .iter()
            .enumerate()
            .map(|(i, r)| (r.id.clone(), i))
            .collect();
        Spec {
            requirements,
            index,
        }
    }

    /// A requirement by ID.
    pub fn get(&self, id: &str) -> Option<&Requirement> {
        self.index.get(id).map(|&i| &self.requirements[i])
    }

    /// Number of requirements.
    pub fn len(&self) -> usize {
        self.requirements.len()
    }

    /// True when no requirement was found.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }
}

fn is_id(s: &str) -> bool {
    match s.split_once('-') {
        Some((a, b)) => {
            !a.is_empty()
                && a.chars().all(|c| c.is_ascii_uppercase())
                && !b.is_empty()
                && b.chars().all(|c| c.is_ascii_digit())
        }
        None => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn embedded_spec_parses() {
        let s = Spec::embedded();
        assert!(s.len() >= 80, "{}", s.len());
        let b1 = s.get("BACKOFF-1").expect("BACKOFF-1");
        assert_eq!(b1.level, Level::Must);
        assert!(!b1.server);
        let r3 = s.get("READY-3").expect("READY-3");
        assert!(r3.server);
        assert_eq!(s.get("READY-4").map(|r| r.level), Some(Level::May));
        assert_eq!(s.get("RESUME-4").map(|r| r.level), Some(Level::Must));
        assert_eq!(s.get("CONN-2").map(|r| r.level), Some(Level::Normative));
        // A requirement's text ends at the next bullet: BACKOFF-8's table must not leak into BACKOFF-9.
        assert_eq!(s.get("BACKOFF-9").map(|r| r.level), Some(Level::Normative));
    }

    #[test]
    fn requirement_text_is_kept_whole() {
        let md = "## Part\n\n- **AB-1** First line MUST\n  go on `here`.\n\n  | a | b |\n  |---|---|\n  | 1 | 2 |\n\n  After the table.\n- **AB-2** *(server)* Short.\n\nA paragraph of the section, not of AB-2.\n\n- **AB-3** Last.\n### Next\ntext\n";
        let s = Spec::parse(md);
        let ids: Vec<&str> = s.requirements.iter().map(|r| r.id.as_str()).collect();
        assert_eq!(ids, ["AB-1", "AB-2", "AB-3"]);
        let a = &s.requirements[0];
        assert_eq!(
            a.text,
            "First line MUST\ngo on `here`.\n\n| a | b |\n|---|---|\n| 1 | 2 |\n\nAfter the table."
        );
        assert_eq!(
            a.summary,
            "First line MUST go on `here`. | a | b | |---|---| | 1 | 2 | After the table."
        );
        assert_eq!(s.requirements[1].text, "*(server)* Short.");
        assert!(s.requirements[1].server);
        assert_eq!(s.requirements[2].text, "Last.");
        // The embedded SPEC: BACKOFF-8 keeps its table and the line after it.
        let spec = Spec::embedded();
        let b8 = &spec.get("BACKOFF-8").expect("BACKOFF-8").text;
        assert!(b8.contains("| `floor_ms` |"), "{b8}");
        assert!(b8.contains("\n\nAfter clamping"), "{b8}");
    }
}
