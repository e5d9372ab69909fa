//! `${VAR}` interpolation, sizes, and locating a dotted path in YAML text.

use super::EnvFn;

/// Replace `${VAR}` and `${VAR:-default}`; `$$` is a literal `$`.
/// Returns the name of the first unset variable without a default.
pub(super) fn interpolate(value: &str, env: EnvFn<'_>) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        if let Some(tail) = after.strip_prefix('$') {
            out.push('$');
            rest = tail;
        } else if let Some(body) = after.strip_prefix('{') {
            let Some(end) = body.find('}') else {
                out.push_str(&rest[i..]);
                return Ok(out);
            };
            let expr = &body[..end];
            let (name, default) = match expr.split_once(":-") {
                Some((n, d)) => (n, Some(d)),
                None => (expr, None),
            };
            match (env(name.trim()), default) {
                (Some(v), _) => out.push_str(&v),
                (None, Some(d)) => out.push_str(d),
                (None, None) => return Err(name.trim().to_owned()),
            }
            rest = &body[end + 1..];
        } else {
            out.push('$');
            rest = after;
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// True when the value is exactly one `${VAR}` reference (what secrets must be).
pub(super) fn is_single_reference(value: &str) -> bool {
    let v = value.trim();
    v.starts_with("${")
        && v.ends_with('}')
        && v[2..v.len() - 1].chars().all(|c| c != '}' && c != '$')
}

/// `20MiB`, `512KiB`, `1MB`, `1000` → bytes.
pub(super) fn parse_size(text: &str) -> Option<usize> {
    let t = text.trim();
    let split = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    let n: usize = num.parse().ok()?;
    let mult = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "k" | "kb" => 1000,
        "kib" => 1024,
        "m" | "mb" => 1000 * 1000,
        "mib" => 1024 * 1024,
        "g" | "gb" => 1000 * 1000 * 1000,
        "gib" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mult)
}

/// Best-effort 1-based line of a dotted path (`models.fast.deployments[1].provider`)
/// in block-style YAML: each segment is searched below its parent at a deeper
/// indentation. Returns the deepest line found.
pub(super) fn locate(text: &str, path: &str) -> Option<usize> {
    let lines: Vec<&str> = text.lines().collect();
    let mut start = 0usize;
    let mut parent_indent: Option<usize> = None;
    let mut found = None;
    for seg in segments(path) {
        let mut hit = None;
        match seg {
            Seg::Key(k) => {
                for (i, line) in lines.iter().enumerate().skip(start) {
                    let ind = indent(line);
                    let body = line.trim_start().trim_start_matches("- ");
                    if body.is_empty() || body.starts_with('#') {
                        continue;
                    }
                    if let Some(p) = parent_indent {
                        if ind <= p && i > start && !line.trim_start().starts_with("- ") {
                            break;
                        }
                    }
                    let key = body
                        .split(':')
                        .next()
                        .unwrap_or("")
                        .trim()
                        .trim_matches(|c| c == '"' || c == '\'');
                    if key == k && body.contains(':') {
                        hit = Some((i, ind));
                        break;
                    }
                }
            }
            Seg::Index(n) => {
                let mut count = 0usize;
                for (i, line) in lines.iter().enumerate().skip(start) {
                    if line.trim_start().starts_with("- ") || line.trim() == "-" {
                        if count == n {
                            hit = Some((i, indent(line)));
                            break;
                        }
                        count += 1;
                    }
                }
            }
        }
        let (i, ind) = hit?;
        found = Some(i + 1);
        start = i;
        parent_indent = Some(ind);
        if matches!(seg, Seg::Index(_)) {
            // Keys of a list item sit on the dash line or below it.
            parent_indent = Some(ind);
        }
    }
    found
}

enum Seg<'a> {
    Key(&'a str),
    Index(usize),
}

fn segments(path: &str) -> Vec<Seg<'_>> {
    let mut out = Vec::new();
    for part in path.split('.') {
        let mut p = part;
        let key_end = p.find('[').unwrap_or(p.len());
        if key_end > 0 {
            out.push(Seg::Key(&p[..key_end]));
        }
        p = &p[key_end..];
        while let Some(rest) = p.strip_prefix('[') {
            let Some(end) = rest.find(']') else { break };
            if let Ok(n) = rest[..end].parse() {
                out.push(Seg::Index(n));
            }
            p = &rest[end + 1..];
        }
    }
    out
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start().len()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn interpolates() {
        let env = |k: &str| (k == "A").then(|| "x".to_string());
        assert_eq!(interpolate("a${A}b", &env).unwrap(), "axb");
        assert_eq!(interpolate("${B:-d}", &env).unwrap(), "d");
        assert_eq!(interpolate("$$1", &env).unwrap(), "$1");
        assert_eq!(interpolate("${B}", &env), Err("B".into()));
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("20MiB"), Some(20 * 1024 * 1024));
        assert_eq!(parse_size("10 kb"), Some(10_000));
        assert_eq!(parse_size("x"), None);
    }

    #[test]
    fn locates() {
        let t = "providers:\n  openai:\n    kind: openai\nmodels:\n  fast:\n    deployments:\n      - provider: openai\n        model: a\n      - provider: nope\n        model: b\n";
        assert_eq!(locate(t, "models.fast.deployments[1].provider"), Some(9));
        assert_eq!(locate(t, "providers.openai.kind"), Some(3));
        assert_eq!(locate(t, "models.fast"), Some(5));
    }
}
