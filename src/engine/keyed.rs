//! Maps keyed by values that are hashes already (a script's SHA-256, a
//! share's fingerprint) and that stay few, looked up on every call: the
//! standard library's SipHash costs more there than the rest of the
//! lookup. The hasher folds the key's words with a multiply, as rustc's
//! own maps do.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

/// A map of few entries whose keys are hashes (see the module's note).
pub(crate) type KeyedMap<K, V> = HashMap<K, V, BuildHasherDefault<FoldHasher>>;

/// Folds each word written into the state: `(state <<< 5 ^ word) * K`.
#[derive(Default, Clone, Copy)]
pub(crate) struct FoldHasher(u64);

const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;

impl FoldHasher {
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(K);
    }
}

impl Hasher for FoldHasher {
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for chunk in &mut chunks {
            let mut word = [0u8; 8];
            word.copy_from_slice(chunk);
            self.add(u64::from_le_bytes(word));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut word = [0u8; 8];
            word[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(word));
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.add(n);
    }

    fn write_usize(&mut self, n: usize) {
        self.add(n as u64);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_that_differ_in_any_word_spread_over_the_table() {
        // 32-byte keys that differ only in their last byte, as SHA-256s
        // of similar scripts do not, but a weak fold would miss it.
        let mut map: KeyedMap<[u8; 32], usize> = KeyedMap::default();
        for i in 0..=255u8 {
            let mut key = [7u8; 32];
            key[31] = i;
            map.insert(key, i as usize);
        }
        assert_eq!(map.len(), 256);
        for i in 0..=255u8 {
            let mut key = [7u8; 32];
            key[31] = i;
            assert_eq!(map.get(&key), Some(&(i as usize)));
        }
        let hash = |key: &[u8; 32]| {
            let mut h = FoldHasher::default();
            h.write(key);
            h.finish()
        };
        let (a, b) = ([1u8; 32], {
            let mut k = [1u8; 32];
            k[0] = 2;
            k
        });
        assert_ne!(hash(&a), hash(&b));
        // The table's bucket comes from the low bits: keys 0..64 written
        // as words land in many different ones.
        let mut low = std::collections::HashSet::new();
        for n in 0..64u64 {
            let mut h = FoldHasher::default();
            h.write_u64(n);
            low.insert(h.finish() & 63);
        }
        assert!(low.len() > 32, "{} distinct low bits", low.len());
    }
}
