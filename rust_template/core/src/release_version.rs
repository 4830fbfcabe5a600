//! Ordering of release versions (PEP 440, the project's version scheme),
//! for `update` to tell an upgrade from a downgrade.
//!
//! Enough of PEP 440 for published versions: an epoch, any number of release
//! numbers (trailing zeros do not count: 1.0 == 1.0.0), a pre-release
//! (a/b/rc), a post-release and a dev release. A local part (`+...`) is
//! compared as text after everything else.

use std::cmp::Ordering;

#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Key {
    epoch: u64,
    release: Vec<u64>,
    /// (rank, n): a dev release of a final sorts before its pre-releases
    /// (rank 0), then a (1), b (2), rc (3), the final itself (4).
    pre: (u8, u64),
    /// Absent sorts first; present as n + 1.
    post: u64,
    /// Absent (not a dev release) sorts last.
    dev: u64,
    local: String,
}

fn parse(text: &str) -> Option<Key> {
    let text = text.trim().to_ascii_lowercase();
    let text = text.strip_prefix('v').unwrap_or(&text);
    let (public, local) = text.split_once('+').unwrap_or((text, ""));
    let (epoch, rest) = match public.split_once('!') {
        Some((e, rest)) => (e.parse().ok()?, rest),
        None => (0, public),
    };
    // The release numbers: digits and dots up to the first other character.
    let end = rest
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(rest.len());
    let (numbers, mut tail) = rest.split_at(end);
    let numbers = numbers.strip_suffix('.').unwrap_or(numbers);
    let mut release: Vec<u64> = numbers
        .split('.')
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    while release.len() > 1 && release.last() == Some(&0) {
        release.pop();
    }
    let mut pre = None;
    let mut post = None;
    let mut dev = None;
    for (names, slot) in [
        (
            &["alpha", "a", "beta", "b", "rc", "c", "preview", "pre"][..],
            0,
        ),
        (&["post", "rev", "r", ""][..], 1),
        (&["dev"][..], 2),
    ] {
        let t = tail.trim_start_matches(['.', '-', '_']);
        let Some(name) = names
            .iter()
            .find(|n| t.starts_with(**n) && !(n.is_empty() && t.is_empty()))
        else {
            continue;
        };
        // A bare `-N` is a post-release; `.N` after the release was eaten above.
        if name.is_empty() && !tail.starts_with('-') {
            continue;
        }
        let t = t[name.len()..].trim_start_matches(['.', '-', '_']);
        let digits = t.find(|c: char| !c.is_ascii_digit()).unwrap_or(t.len());
        let n = if digits == 0 {
            0
        } else {
            t[..digits].parse().ok()?
        };
        tail = &t[digits..];
        match slot {
            0 => {
                let rank = match *name {
                    "alpha" | "a" => 1,
                    "beta" | "b" => 2,
                    _ => 3,
                };
                pre = Some((rank, n));
            }
            1 => post = Some(n),
            _ => dev = Some(n),
        }
    }
    if !tail.is_empty() {
        return None;
    }
    let pre = match (pre, post, dev) {
        (Some(p), _, _) => p,
        (None, None, Some(_)) => (0, 0),
        _ => (4, 0),
    };
    Some(Key {
        epoch,
        release,
        pre,
        post: post.map_or(0, |n| n + 1),
        dev: dev.unwrap_or(u64::MAX),
        local: local.to_string(),
    })
}

/// How `a` compares to `b`; None when either is not a PEP 440 version.
pub(crate) fn compare(a: &str, b: &str) -> Option<Ordering> {
    Some(parse(a)?.cmp(&parse(b)?))
}

#[cfg(test)]
mod tests {
    use super::*;
    use Ordering::*;

    #[test]
    fn pep440_order() {
        // Each is newer than the one before it.
        let ascending = [
            "0.9",
            "1.0.dev1",
            "1.0a1",
            "1.0a2.dev1",
            "1.0a2",
            "1.0b1",
            "1.0rc1",
            "1.0",
            "1.0.post1",
            "1.0.1",
            "1.2",
            "1.10",
            "2!0.1",
        ];
        for pair in ascending.windows(2) {
            assert_eq!(compare(pair[0], pair[1]), Some(Less), "{pair:?}");
            assert_eq!(compare(pair[1], pair[0]), Some(Greater), "{pair:?}");
        }
        assert_eq!(compare("1.0", "1.0.0"), Some(Equal));
        assert_eq!(compare("v1.0", "1.0"), Some(Equal));
        assert_eq!(compare("1.0-1", "1.0.post1"), Some(Equal));
        assert_eq!(compare("1.0RC1", "1.0rc1"), Some(Equal));
        assert_eq!(compare("1.0+local", "1.0"), Some(Greater));
        assert_eq!(compare("1.0", "nonsense"), None);
        assert_eq!(compare("1.0x", "1.0"), None);
    }
}
