//! The pseudo-random byte stream of the bulk transfer. The sending application and the checker
//! thread both regenerate it from the seed, so the sent bytes are never stored.

use braid_proto::rng::Rng;
use sha2::{Digest, Sha256};

/// Salt that keeps the data stream apart from every other use of the seed.
const STREAM_SALT: u64 = 0x6461_7461_5f73_7472;

/// Bytes generated per refill (a multiple of 8: the stream is a sequence of 8-byte words, so it
/// does not depend on how it is consumed).
const BLOCK: usize = 64 * 1024;

/// A reader of the pseudo-random stream for one seed.
///
/// Word `i` of the stream is a counter-based mix of `key + i·γ` (the wyrand construction: one
/// 64×64→128-bit multiply per word, with no dependency between words, so generation runs at
/// memory speed). The key comes from the seed through [`Rng`].
#[derive(Debug)]
pub(crate) struct StreamGen {
    counter: u64,
    block: Vec<u8>,
    pos: usize,
}

const GAMMA: u64 = 0xa076_1d64_78bd_642f;
const MIX: u64 = 0xe703_7ed1_a0b4_28db;

impl StreamGen {
    pub(crate) fn new(seed: u64) -> Self {
        StreamGen {
            counter: Rng::new(seed ^ STREAM_SALT).next_u64(),
            block: vec![0; BLOCK],
            pos: BLOCK,
        }
    }

    fn refill(&mut self) {
        let base = self.counter;
        for (i, word) in self.block.chunks_exact_mut(8).enumerate() {
            let x = base.wrapping_add((i as u64 + 1).wrapping_mul(GAMMA));
            let p = u128::from(x) * u128::from(x ^ MIX);
            word.copy_from_slice(&((p as u64) ^ ((p >> 64) as u64)).to_le_bytes());
        }
        self.counter = base.wrapping_add((BLOCK as u64 / 8).wrapping_mul(GAMMA));
        self.pos = 0;
    }

    /// The next unconsumed bytes (at least one).
    pub(crate) fn peek(&mut self) -> &[u8] {
        if self.pos == self.block.len() {
            self.refill();
        }
        &self.block[self.pos..]
    }

    /// Marks `n` bytes of the last `peek` as used.
    pub(crate) fn consume(&mut self, n: usize) {
        self.pos = (self.pos + n).min(self.block.len());
    }
}

/// Compares bytes read by the receiver, in order, with the stream regenerated in place (an
/// exact comparison: any lost, reordered, duplicated or corrupted byte shows), and optionally
/// hashes them (SHA-256).
#[derive(Debug)]
pub(crate) struct StreamCheck {
    gen: StreamGen,
    /// SHA-256 of every byte fed so far, i.e. of what the receiver read, when asked for.
    hash: Option<Sha256>,
    /// Bytes compared so far.
    pub(crate) checked: u64,
    /// Stream offset of the first byte that differed.
    pub(crate) first_mismatch: Option<u64>,
}

impl StreamCheck {
    /// A check of the stream of `seed`; with `sha256`, the bytes are hashed as well.
    pub(crate) fn new(seed: u64, sha256: bool) -> Self {
        StreamCheck {
            gen: StreamGen::new(seed),
            hash: sha256.then(Sha256::new),
            checked: 0,
            first_mismatch: None,
        }
    }

    /// The next bytes the receiver read.
    pub(crate) fn feed(&mut self, mut data: &[u8]) {
        if let Some(h) = self.hash.as_mut() {
            h.update(data);
        }
        while !data.is_empty() {
            let want = self.gen.peek();
            let n = want.len().min(data.len());
            if self.first_mismatch.is_none() && want[..n] != data[..n] {
                let i = want.iter().zip(data).position(|(a, b)| a != b).unwrap_or(0);
                self.first_mismatch = Some(self.checked + i as u64);
            }
            self.gen.consume(n);
            self.checked += n as u64;
            data = &data[n..];
        }
    }

    /// Lower-case hex SHA-256 of all bytes fed so far (None when not asked for).
    pub(crate) fn sha256_hex(&self) -> Option<String> {
        self.hash.as_ref().map(|h| hex(&h.clone().finalize()))
    }
}

/// Lower-case hex of `bytes`.
fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write;
    bytes
        .iter()
        .fold(String::with_capacity(2 * bytes.len()), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn collect(seed: u64, len: usize, step: usize) -> Vec<u8> {
        let mut g = StreamGen::new(seed);
        let mut out = Vec::new();
        while out.len() < len {
            let c = g.peek();
            let n = c.len().min(step).min(len - out.len());
            out.extend_from_slice(&c[..n]);
            g.consume(n);
        }
        out
    }

    #[test]
    fn sha256_of_nothing_and_abc() {
        // FIPS 180-2 appendix B.1 and the empty-message digest.
        let c = StreamCheck::new(1, true);
        assert_eq!(
            c.sha256_hex().as_deref(),
            Some("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        );
        assert_eq!(StreamCheck::new(1, false).sha256_hex(), None);
        assert_eq!(
            hex(&Sha256::digest(b"abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn stream_does_not_depend_on_read_sizes() {
        let a = collect(9, 200_000, 1);
        let b = collect(9, 200_000, 7777);
        let c = collect(9, 200_000, usize::MAX);
        assert_eq!(a, b);
        assert_eq!(a, c);
        assert_ne!(a, collect(10, 200_000, 4096));
    }

    #[test]
    fn check_accepts_the_stream_and_finds_the_first_wrong_byte() {
        let good = collect(3, 300_001, 1000);
        let mut c = StreamCheck::new(3, true);
        for piece in good.chunks(70_000) {
            c.feed(piece);
        }
        assert_eq!((c.checked, c.first_mismatch), (300_001, None));
        // The digest is that of the bytes read, however they were fed.
        assert_eq!(c.sha256_hex(), Some(hex(&Sha256::digest(&good))));

        for pos in [0usize, 65_535, 65_536, 300_000] {
            let mut bad = good.clone();
            bad[pos] ^= 0x10;
            for sha in [true, false] {
                let mut c = StreamCheck::new(3, sha);
                for piece in bad.chunks(12_345) {
                    c.feed(piece);
                }
                assert_eq!(c.first_mismatch, Some(pos as u64));
                if sha {
                    // ... and it hashes what was read, not what was expected.
                    assert_eq!(c.sha256_hex(), Some(hex(&Sha256::digest(&bad))));
                }
            }
        }
        // A lost byte (the rest shifted) and two swapped bytes are caught where they happen.
        let mut lost = good.clone();
        lost.remove(1000);
        let mut c = StreamCheck::new(3, false);
        c.feed(&lost);
        assert!(c.first_mismatch.is_some_and(|p| (1000..1008).contains(&p)));
        let mut swapped = good.clone();
        swapped.swap(5000, 5001);
        if swapped != good {
            let mut c = StreamCheck::new(3, false);
            c.feed(&swapped);
            assert_eq!(c.first_mismatch, Some(5000));
        }

        // Another seed's stream is caught at once.
        let mut c = StreamCheck::new(4, false);
        c.feed(&good[..100]);
        assert!(c.first_mismatch.is_some_and(|p| p < 8));
    }
}
