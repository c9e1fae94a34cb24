//! A fast keyed hasher for the engine's lookup tables (connection demultiplexing runs once per
//! packet). Keys are drawn per endpoint, so an attacker cannot precompute colliding 4-tuples
//! offline; in the spirit of the kernel's `jhash` with a boot-time secret.

use std::hash::{BuildHasher, Hasher};

const MUL: u64 = 0x9e37_79b9_7f4a_7c15;

/// Builds [`KeyedHasher`]s sharing one secret.
#[derive(Clone, Copy, Debug)]
pub struct KeyedState {
    k0: u64,
    k1: u64,
}

impl KeyedState {
    pub fn new(k0: u64, k1: u64) -> Self {
        KeyedState { k0, k1: k1 | 1 }
    }
}

impl BuildHasher for KeyedState {
    type Hasher = KeyedHasher;
    fn build_hasher(&self) -> KeyedHasher {
        KeyedHasher {
            h: self.k0,
            k: self.k1,
        }
    }
}

/// Multiply-rotate over 64-bit words, finished with a 64-bit avalanche (murmur3 fmix64).
#[derive(Clone, Debug)]
pub struct KeyedHasher {
    h: u64,
    k: u64,
}

impl KeyedHasher {
    #[inline]
    fn mix(&mut self, w: u64) {
        self.h = (self.h ^ w).wrapping_mul(MUL).rotate_left(29) ^ self.k;
    }
}

impl Hasher for KeyedHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.mix(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.mix(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }
    #[inline]
    fn write_u8(&mut self, n: u8) {
        self.mix(n as u64 | 0x100);
    }
    #[inline]
    fn write_u16(&mut self, n: u16) {
        self.mix(n as u64 | 0x1_0000);
    }
    #[inline]
    fn write_u32(&mut self, n: u32) {
        self.mix(n as u64 | 0x1_0000_0000);
    }
    #[inline]
    fn write_u64(&mut self, n: u64) {
        self.mix(n);
    }
    #[inline]
    fn write_usize(&mut self, n: usize) {
        self.mix(n as u64);
    }
    #[inline]
    fn finish(&self) -> u64 {
        let mut h = self.h ^ self.k.rotate_left(17);
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
        h ^ (h >> 33)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::net::{IpAddr, Ipv4Addr, SocketAddr};

    fn h<T: std::hash::Hash>(s: &KeyedState, v: &T) -> u64 {
        s.hash_one(v)
    }

    #[test]
    fn spreads_nearby_tuples_and_depends_on_the_key() {
        let s = KeyedState::new(1, 2);
        let t = KeyedState::new(3, 4);
        let ip = IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1));
        let mut seen = HashSet::new();
        for port in 0..10_000u16 {
            let k = (SocketAddr::new(ip, 80), SocketAddr::new(ip, port));
            // Low bits are what the table uses: they must differ for nearby ports.
            seen.insert(h(&s, &k) & 0xffff);
            assert_ne!(h(&s, &k), h(&t, &k));
        }
        assert!(seen.len() > 8_000, "poor spread: {}", seen.len());
    }
}
