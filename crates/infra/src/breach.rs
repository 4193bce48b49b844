//! The breached-password list compiled into the binary.

use std::io::Read as _;
use std::sync::OnceLock;

use flate2::read::GzDecoder;
use safebox_domain::breach_key;
use safebox_domain::ports::BreachedPasswords;

/// The list, gzip-compressed; see `data/README.md` for where it comes from.
static COMPRESSED: &[u8] = include_bytes!("../data/breached-passwords.txt.gz");

/// The decompressed list: one allocation of keys and a sorted index into it, about
/// 1.5 MB for ~112,000 entries, built once per process.
struct Index {
    text: String,
    /// `(start, end)` byte ranges of each key in `text`, sorted by key.
    ranges: Vec<(u32, u32)>,
}

static INDEX: OnceLock<Index> = OnceLock::new();

fn build_index() -> Index {
    let mut raw = String::new();
    GzDecoder::new(COMPRESSED)
        .read_to_string(&mut raw)
        .expect("the embedded password list is valid gzip and UTF-8");
    let mut keys: Vec<String> = raw
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(breach_key)
        .collect();
    keys.sort_unstable();
    keys.dedup();
    let mut text = String::with_capacity(keys.iter().map(String::len).sum());
    let mut ranges = Vec::with_capacity(keys.len());
    for key in &keys {
        let start = u32::try_from(text.len()).expect("the list is far below 4 GiB");
        text.push_str(key);
        let end = u32::try_from(text.len()).expect("the list is far below 4 GiB");
        ranges.push((start, end));
    }
    Index { text, ranges }
}

/// [`BreachedPasswords`] backed by the embedded list: the 100,000 most common
/// passwords of the SecLists lists plus every listed password of 12 or more
/// characters. Matching is case-insensitive (see [`safebox_domain::breach_key`]).
#[derive(Debug, Default, Clone, Copy)]
pub struct EmbeddedBreachList;

impl EmbeddedBreachList {
    /// The list, decompressed on first use (tens of milliseconds, once per process).
    pub fn load() -> Self {
        INDEX.get_or_init(build_index);
        Self
    }

    /// Number of distinct entries.
    pub fn len(&self) -> usize {
        INDEX.get_or_init(build_index).ranges.len()
    }

    /// Whether the list is empty (it never is).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl BreachedPasswords for EmbeddedBreachList {
    fn contains(&self, key: &str) -> bool {
        let index = INDEX.get_or_init(build_index);
        index
            .ranges
            .binary_search_by(|&(start, end)| index.text[start as usize..end as usize].cmp(key))
            .is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holds_at_least_the_top_100k_and_finds_them_case_insensitively() {
        let list = EmbeddedBreachList::load();
        assert!(list.len() >= 100_000, "{} entries", list.len());
        for common in [
            "123456",
            "password",
            "qwerty",
            "qwertyuiopasdfgh",
            "123qweasdzxc",
        ] {
            assert!(list.contains(&breach_key(common)), "{common}");
        }
        assert!(list.contains(&breach_key("PASSWORD")));
        assert!(list.contains(&breach_key("QwErTy123456")));
    }

    #[test]
    fn does_not_list_a_random_passphrase() {
        let list = EmbeddedBreachList::load();
        assert!(!list.contains(&breach_key("violet anchor mumbles quietly 42")));
        assert!(!list.contains(""));
    }
}
