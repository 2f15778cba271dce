//! The Markdown of SPEC.md requirement texts as HTML: paragraphs, pipe tables and lists; `code`, **bold**, *emphasis* and links inline; everything else escaped.

use super::escape;

/// Render a requirement's Markdown text as HTML blocks.
pub fn to_html(md: &str) -> String {
    let lines: Vec<&str> = md.lines().map(str::trim).collect();
    let mut out = String::new();
    for block in lines.split(|l| l.is_empty()).filter(|b| !b.is_empty()) {
        if block.iter().all(|l| l.starts_with('|')) {
            table(block, &mut out);
        } else if block.iter().any(|l| item_start(l).is_some()) && item_start(block[0]).is_some() {
            list(block, &mut out);
        } else {
            out.push_str("<p>");
            out.push_str(&inline(&block.join(" ")));
            out.push_str("</p>");
        }
    }
    out
}

/// `- item`, `* item` (unordered) or `1. item` (ordered): the kind and the item's text.
fn item_start(line: &str) -> Option<(bool, &str)> {
    if let Some(rest) = line.strip_prefix("- ").or_else(|| line.strip_prefix("* ")) {
        return Some((false, rest));
    }
    let digits = line.len() - line.trim_start_matches(|c: char| c.is_ascii_digit()).len();
    if digits > 0 {
        if let Some(rest) = line[digits..].strip_prefix(". ") {
            return Some((true, rest));
        }
    }
    None
}

fn list(block: &[&str], out: &mut String) {
    let ordered = item_start(block[0]).is_some_and(|(o, _)| o);
    let mut items: Vec<String> = Vec::new();
    for line in block {
        match item_start(line) {
            Some((_, text)) => items.push(text.to_owned()),
            None => {
                if let Some(last) = items.last_mut() {
                    last.push(' ');
                    last.push_str(line);
                }
            }
        }
    }
    let tag = if ordered { "ol" } else { "ul" };
    out.push_str(&format!("<{tag}>"));
    for item in items {
        out.push_str("<li>");
        out.push_str(&inline(&item));
        out.push_str("</li>");
    }
    out.push_str(&format!("</{tag}>"));
}

fn table(block: &[&str], out: &mut String) {
    let is_rule = |l: &str| {
        cells(l)
            .iter()
            .all(|c| !c.is_empty() && c.chars().all(|ch| matches!(ch, '-' | ':' | ' ')))
    };
    let (head, body): (Option<&str>, &[&str]) = match block {
        [h, rule, rest @ ..] if is_rule(rule) => (Some(h), rest),
        _ => (None, block),
    };
    out.push_str("<table class=\"md\">");
    if let Some(h) = head {
        out.push_str("<thead><tr>");
        for c in cells(h) {
            out.push_str(&format!("<th>{}</th>", inline(&c)));
        }
        out.push_str("</tr></thead>");
    }
    out.push_str("<tbody>");
    for row in body {
        out.push_str("<tr>");
        for c in cells(row) {
            out.push_str(&format!("<td>{}</td>", inline(&c)));
        }
        out.push_str("</tr>");
    }
    out.push_str("</tbody></table>");
}

/// The cells of a `| a | b |` row: split on `|` outside code spans; `\|` is a literal bar.
fn cells(row: &str) -> Vec<String> {
    let row = row.trim();
    let row = row.strip_prefix('|').unwrap_or(row);
    let row = row.strip_suffix('|').unwrap_or(row);
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_code = false;
    let mut chars = row.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' if chars.peek() == Some(&'|') => {
                chars.next();
                cur.push('|');
            }
            '`' => {
                in_code = !in_code;
                cur.push('`');
            }
            '|' if !in_code => out.push(std::mem::take(&mut cur)),
            c => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter().map(|c| c.trim().to_owned()).collect()
}

/// Inline Markdown: code spans, `**strong**`, `*em*`, `[text](url)`, backslash escapes.
pub fn inline(text: &str) -> String {
    let chars: Vec<char> = text.chars().collect();
    let mut out = String::new();
    render(&chars, &mut out);
    out
}

fn render(s: &[char], out: &mut String) {
    let mut i = 0;
    let mut plain = String::new();
    let flush = |plain: &mut String, out: &mut String| {
        out.push_str(&escape(plain));
        plain.clear();
    };
    while i < s.len() {
        let c = s[i];
        // Backslash escape of ASCII punctuation.
        if c == '\\' && i + 1 < s.len() && s[i + 1].is_ascii_punctuation() {
            plain.push(s[i + 1]);
            i += 2;
            continue;
        }
        // Code span: a run of n backticks up to the next run of exactly n.
        if c == '`' {
            let n = run(s, i, '`');
            if let Some(end) = find_run(s, i + n, '`', n) {
                flush(&mut plain, out);
                let code: String = s[i + n..end].iter().collect();
                let code = code.trim();
                out.push_str(&format!("<code>{}</code>", escape(code)));
                i = end + n;
                continue;
            }
            plain.extend(&s[i..i + n]);
            i += n;
            continue;
        }
        // **strong**
        if c == '*' && s.get(i + 1) == Some(&'*') {
            if let Some(end) = closing(s, i + 2, 2) {
                flush(&mut plain, out);
                out.push_str("<strong>");
                render(&s[i + 2..end], out);
                out.push_str("</strong>");
                i = end + 2;
                continue;
            }
        }
        // *em*: opened before a non-space, closed after one.
        if c == '*' && s.get(i + 1) != Some(&'*') {
            if let Some(end) = closing(s, i + 1, 1) {
                flush(&mut plain, out);
                out.push_str("<em>");
                render(&s[i + 1..end], out);
                out.push_str("</em>");
                i = end + 1;
                continue;
            }
        }
        // [text](url)
        if c == '[' {
            if let Some((text_end, url_end)) = link(s, i) {
                let url: String = s[text_end + 2..url_end].iter().collect();
                if safe_url(&url) {
                    flush(&mut plain, out);
                    out.push_str(&format!("<a href=\"{}\">", escape(&url)));
                    render(&s[i + 1..text_end], out);
                    out.push_str("</a>");
                    i = url_end + 1;
                    continue;
                }
            }
        }
        plain.push(c);
        i += 1;
    }
    flush(&mut plain, out);
}

/// Length of the run of `c` starting at `i`.
fn run(s: &[char], i: usize, c: char) -> usize {
    s[i..].iter().take_while(|&&x| x == c).count()
}

/// Start of the next run of exactly `n` × `c` at or after `from`.
fn find_run(s: &[char], from: usize, c: char, n: usize) -> Option<usize> {
    let mut j = from;
    while j < s.len() {
        if s[j] == c {
            let m = run(s, j, c);
            if m == n {
                return Some(j);
            }
            j += m;
        } else {
            j += 1;
        }
    }
    None
}

/// The closing `n` asterisks of an emphasis whose content starts at `from`: the content must
/// not start or end with a space, and code spans inside are skipped.
fn closing(s: &[char], from: usize, n: usize) -> Option<usize> {
    if s.get(from).is_none_or(|c| c.is_whitespace()) {
        return None;
    }
    let mut j = from;
    while j < s.len() {
        match s[j] {
            '`' => {
                let m = run(s, j, '`');
                j = find_run(s, j + m, '`', m).map_or(j + m, |e| e + m);
            }
            '\\' => j += 2,
            '*' => {
                let m = run(s, j, '*');
                let before_ok = j > from && !s[j - 1].is_whitespace();
                if before_ok && (m == n || (n == 2 && m == 3) || (n == 1 && m == 3)) {
                    // `***` closes an inner and an outer emphasis: `**` takes the last two.
                    return Some(if n == 1 { j + m - 1 } else { j + m - 2 });
                }
                if n == 1 && m == 2 {
                    // A `**strong**` inside an emphasis: skip to its end.
                    j = closing(s, j + 2, 2).map_or(j + 2, |e| e + 2);
                    continue;
                }
                j += m;
            }
            _ => j += 1,
        }
    }
    None
}

/// `[text](url)` at `i`: the index of `]` and of `)`.
fn link(s: &[char], i: usize) -> Option<(usize, usize)> {
    let close = i + 1 + s[i + 1..].iter().position(|&c| c == ']')?;
    if s.get(close + 1) != Some(&'(') {
        return None;
    }
    let end = close + 2 + s[close + 2..].iter().position(|&c| c == ')')?;
    Some((close, end))
}

fn safe_url(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    !url.is_empty()
        && !url.contains(char::is_whitespace)
        && (lower.starts_with("https://")
            || lower.starts_with("http://")
            || lower.starts_with('#')
            || !lower.contains(':'))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::spec::Spec;

    #[test]
    fn inline_code_bold_and_emphasis() {
        assert_eq!(
            inline("`connect` MUST start **now**, *(server)* <x> & `a<b`"),
            "<code>connect</code> MUST start <strong>now</strong>, <em>(server)</em> &lt;x&gt; &amp; <code>a&lt;b</code>"
        );
        // An asterisk between spaces is multiplication, not emphasis.
        assert_eq!(inline("2 * n and n * 2"), "2 * n and n * 2");
        assert_eq!(inline("a `2 * b` c"), "a <code>2 * b</code> c");
        // Unclosed markers stay literal; escapes drop the backslash.
        assert_eq!(inline("**open and `tick"), "**open and `tick");
        assert_eq!(inline(r"\*not em\* and a\_b"), "*not em* and a_b");
        assert_eq!(inline("``a ` b``"), "<code>a ` b</code>");
        assert_eq!(
            inline("**bold with `code*` inside**"),
            "<strong>bold with <code>code*</code> inside</strong>"
        );
        assert_eq!(inline("**a *b***"), "<strong>a <em>b</em></strong>");
        assert_eq!(
            inline("*em with **strong** inside*"),
            "<em>em with <strong>strong</strong> inside</em>"
        );
        assert_eq!(
            inline("see [RFC 6455](https://www.rfc-editor.org/rfc/rfc6455) §8.1"),
            "see <a href=\"https://www.rfc-editor.org/rfc/rfc6455\">RFC 6455</a> §8.1"
        );
        assert_eq!(
            inline("[x](javascript:alert(1))"),
            "[x](javascript:alert(1))"
        );
    }

    #[test]
    fn blocks_paragraphs_tables_lists() {
        let html = to_html(
            "First line\ngoes on.\n\n| code | meaning |\n|---|---|\n| `a\\|b` | **x** |\n| `c` | y |\n\n- one\n- two\n  more\n\nLast.",
        );
        assert_eq!(
            html,
            "<p>First line goes on.</p>\
             <table class=\"md\"><thead><tr><th>code</th><th>meaning</th></tr></thead>\
             <tbody><tr><td><code>a|b</code></td><td><strong>x</strong></td></tr>\
             <tr><td><code>c</code></td><td>y</td></tr></tbody></table>\
             <ul><li>one</li><li>two more</li></ul><p>Last.</p>"
        );
        assert_eq!(to_html("1. a\n2. b"), "<ol><li>a</li><li>b</li></ol>");
    }

    /// Remove `<code>…</code>` (code may hold any character), then every tag.
    fn prose(html: &str) -> String {
        let mut s = html.to_owned();
        while let Some(a) = s.find("<code>") {
            let b = s[a..]
                .find("</code>")
                .map_or(s.len(), |b| a + b + "</code>".len());
            s.replace_range(a..b, "CODE");
        }
        let mut out = String::new();
        let mut in_tag = false;
        for c in s.chars() {
            match c {
                '<' => in_tag = true,
                '>' => in_tag = false,
                c if !in_tag => out.push(c),
                _ => {}
            }
        }
        out
    }

    #[test]
    fn no_raw_markdown_left_in_any_spec_requirement() {
        let spec = Spec::embedded();
        assert!(!spec.is_empty());
        for r in &spec.requirements {
            let html = to_html(&r.text);
            let text = prose(&html);
            for raw in ["`", "**", "|---", "| ", "*(", ")*"] {
                assert!(
                    !text.contains(raw),
                    "{}: raw Markdown {raw:?} left in {text:?}",
                    r.id
                );
            }
            assert!(html.starts_with("<p>"), "{}: {html}", r.id);
        }
        let b8 = to_html(&spec.get("BACKOFF-8").expect("BACKOFF-8").text);
        assert!(b8.contains("<table class=\"md\">"), "{b8}");
        assert!(b8.contains("<td><code>floor_ms</code></td>"), "{b8}");
        let r3 = to_html(&spec.get("READY-3").expect("READY-3").text);
        assert!(r3.starts_with("<p><em>(server)</em>"), "{r3}");
    }
}
