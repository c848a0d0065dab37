//! Environment patterns such as `review-*`: `*` matches any run of
//! characters, `?` one character, everything else itself.

/// Whether `s` is a pattern rather than one name.
pub fn is_glob(s: &str) -> bool {
    s.contains(['*', '?'])
}

pub fn matches(pattern: &str, text: &str) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    // Iterative matcher with single-star backtracking: linear in practice and
    // never exponential, whatever an operator writes.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::matches;

    #[test]
    fn literal_and_wildcards() {
        assert!(matches("production", "production"));
        assert!(!matches("production", "production2"));
        assert!(!matches("production", "Production"));
        assert!(matches("review-*", "review-123"));
        assert!(matches("review-*", "review-"));
        assert!(!matches("review-*", "staging"));
        assert!(matches("*-eu", "prod-eu"));
        assert!(matches("a*b*c", "axxbyyc"));
        assert!(!matches("a*b*c", "axxbyy"));
        assert!(matches("pr-?", "pr-1"));
        assert!(!matches("pr-?", "pr-12"));
        assert!(matches("*", ""));
    }
}
