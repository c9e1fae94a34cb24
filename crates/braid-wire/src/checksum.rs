//! The Internet checksum (RFC 1071) and the TCP pseudo-header sums for IPv4 and IPv6.
//!
//! Partial sums are carried as `u32` values already folded to 16 bits (so any two can be added
//! without overflow) and are in network byte order, i.e. the sum of big-endian 16-bit words.
//! [`finish`] turns a partial sum into the value written into a checksum field.

use std::net::{Ipv4Addr, Ipv6Addr};

/// Folds a wide one's-complement accumulator down to 16 bits (end-around carry, RFC 1071 §2(C)).
#[inline]
pub fn fold(mut sum: u64) -> u16 {
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff_ffff) + (sum >> 32);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum = (sum & 0xffff) + (sum >> 16);
    sum as u16
}

/// Sum of `data` as native-endian 16-bit words, in a wide accumulator (not folded).
///
/// The bulk is added as 32-bit native words into eight independent `u64` lanes, which the
/// compiler vectorises (measured faster here than 16-bit lanes with periodic flushes); a `u64`
/// lane cannot overflow for any slice that fits in memory. One's-complement addition is
/// byte-order independent (RFC 1071 §2(B)), so the caller swaps the folded result into network
/// order once at the end.
#[inline]
fn sum_native(data: &[u8]) -> u64 {
    let mut lanes = [0u64; 8];
    let mut blocks = data.chunks_exact(32);
    for block in &mut blocks {
        for (lane, word) in lanes.iter_mut().zip(block.chunks_exact(4)) {
            // chunks_exact(4) always yields 4 bytes.
            *lane += u64::from(u32::from_ne_bytes([word[0], word[1], word[2], word[3]]));
        }
    }
    let mut sum: u64 = lanes.iter().sum();
    let rest = blocks.remainder();
    let mut words = rest.chunks_exact(4);
    for word in &mut words {
        sum += u64::from(u32::from_ne_bytes([word[0], word[1], word[2], word[3]]));
    }
    let mut pairs = words.remainder().chunks_exact(2);
    for pair in &mut pairs {
        sum += u64::from(u16::from_ne_bytes([pair[0], pair[1]]));
    }
    if let [last] = pairs.remainder() {
        // An odd trailing byte is the high-order byte of a zero-padded word (RFC 1071 §4.1).
        sum += u64::from(u16::from_ne_bytes([*last, 0]));
    }
    sum
}

/// One's-complement sum of `data` taken as big-endian 16-bit words, folded to 16 bits (not
/// complemented). A trailing odd byte is padded with a zero byte.
#[inline]
pub fn ones_complement_sum(data: &[u8]) -> u32 {
    // The native-order sum, folded, is the network-order sum with its bytes swapped on
    // little-endian machines; `to_be` undoes exactly that (and is a no-op on big-endian ones).
    u32::from(fold(sum_native(data)).to_be())
}

/// Adds two partial sums (one's-complement addition), folded to 16 bits.
#[inline]
pub fn combine(a: u32, b: u32) -> u32 {
    u32::from(fold(u64::from(a) + u64::from(b)))
}

/// The value for a checksum field: the complement of the folded partial sum.
#[inline]
pub fn finish(sum: u32) -> u16 {
    !fold(u64::from(sum))
}

/// The checksum of `data` alone, as written into a header (e.g. the IPv4 header checksum).
#[inline]
pub fn checksum(data: &[u8]) -> u16 {
    finish(ones_complement_sum(data))
}

/// True when `data` (which includes its checksum field) sums, with `pseudo`, to all ones.
#[inline]
pub fn verify(pseudo: u32, data: &[u8]) -> bool {
    combine(pseudo, ones_complement_sum(data)) == 0xffff
}

/// Partial sum of the IPv4 pseudo-header: source, destination, zero, protocol, length
/// (RFC 9293 §3.1, "Checksum").
#[inline]
pub fn pseudo_header_v4(src: Ipv4Addr, dst: Ipv4Addr, protocol: u8, len: u32) -> u32 {
    let s = u32::from(src);
    let d = u32::from(dst);
    let sum = u64::from(s >> 16)
        + u64::from(s & 0xffff)
        + u64::from(d >> 16)
        + u64::from(d & 0xffff)
        + u64::from(protocol)
        + u64::from(len >> 16)
        + u64::from(len & 0xffff);
    u32::from(fold(sum))
}

/// Partial sum of the IPv6 pseudo-header: source, destination, 32-bit upper-layer length, three
/// zero bytes, next header (RFC 8200 §8.1).
#[inline]
pub fn pseudo_header_v6(src: &Ipv6Addr, dst: &Ipv6Addr, next_header: u8, len: u32) -> u32 {
    let mut sum: u64 = src.segments().iter().map(|&w| u64::from(w)).sum();
    sum += dst.segments().iter().map(|&w| u64::from(w)).sum::<u64>();
    sum += u64::from(len >> 16) + u64::from(len & 0xffff) + u64::from(next_header);
    u32::from(fold(sum))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The textbook definition: big-endian 16-bit words, end-around carry after each addition.
    fn reference(data: &[u8]) -> u32 {
        let mut sum: u32 = 0;
        for pair in data.chunks(2) {
            let word = if pair.len() == 2 {
                u32::from(u16::from_be_bytes([pair[0], pair[1]]))
            } else {
                u32::from(pair[0]) << 8
            };
            sum += word;
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum
    }

    #[test]
    fn rfc1071_example() {
        // RFC 1071 §3: the bytes 00 01 f2 03 f4 f5 f6 f7 sum to ddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(ones_complement_sum(&data), 0xddf2);
        assert_eq!(checksum(&data), !0xddf2u16);
    }

    #[test]
    fn ipv4_header_checksum_known() {
        // A classic worked example: 4500 0073 0000 4000 4011 [b861] c0a8 0001 c0a8 00c7.
        let mut hdr = [
            0x45, 0x00, 0x00, 0x73, 0x00, 0x00, 0x40, 0x00, 0x40, 0x11, 0x00, 0x00, 0xc0, 0xa8,
            0x00, 0x01, 0xc0, 0xa8, 0x00, 0xc7,
        ];
        assert_eq!(checksum(&hdr), 0xb861);
        hdr[10..12].copy_from_slice(&0xb861u16.to_be_bytes());
        assert!(verify(0, &hdr));
    }

    #[test]
    fn matches_reference_for_all_lengths_and_offsets() {
        let data: Vec<u8> = (0..300u32)
            .map(|i| (i.wrapping_mul(151) ^ 0xa5) as u8)
            .collect();
        for start in 0..8 {
            for end in start..data.len() {
                let slice = &data[start..end];
                let r = reference(slice);
                let f = ones_complement_sum(slice);
                // 0 and 0xffff both denote zero in one's complement; the reference yields 0 only
                // for all-zero input, exactly like the fast sum.
                assert_eq!(f, r, "start {start} end {end}");
            }
        }
    }

    #[test]
    fn all_ones_and_zeros() {
        assert_eq!(ones_complement_sum(&[]), 0);
        assert_eq!(ones_complement_sum(&[0; 64]), 0);
        assert_eq!(ones_complement_sum(&[0xff; 64]), 0xffff);
        assert_eq!(ones_complement_sum(&[0xff; 3]), 0xff00);
        assert_eq!(
            ones_complement_sum(&[0xff; 100_001]),
            reference(&[0xff; 100_001])
        );
    }

    #[test]
    fn combine_is_split_invariant() {
        let data: Vec<u8> = (0..1500u32).map(|i| (i * 7 + 3) as u8).collect();
        let whole = ones_complement_sum(&data);
        for split in (0..data.len()).step_by(2) {
            let parts = combine(
                ones_complement_sum(&data[..split]),
                ones_complement_sum(&data[split..]),
            );
            assert_eq!(parts, whole, "split {split}");
        }
    }

    #[test]
    fn pseudo_headers_match_byte_layout() {
        let (s4, d4) = (Ipv4Addr::new(10, 1, 2, 3), Ipv4Addr::new(192, 168, 200, 9));
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s4.octets());
        bytes.extend_from_slice(&d4.octets());
        bytes.extend_from_slice(&[0, 6]);
        bytes.extend_from_slice(&1480u16.to_be_bytes());
        assert_eq!(pseudo_header_v4(s4, d4, 6, 1480), reference(&bytes));

        let s6: Ipv6Addr = "2001:db8::1:ffff".parse().unwrap();
        let d6: Ipv6Addr = "fe80::abcd:ef01:2345:6789".parse().unwrap();
        let mut bytes = Vec::new();
        bytes.extend_from_slice(&s6.octets());
        bytes.extend_from_slice(&d6.octets());
        bytes.extend_from_slice(&70000u32.to_be_bytes());
        bytes.extend_from_slice(&[0, 0, 0, 6]);
        assert_eq!(pseudo_header_v6(&s6, &d6, 6, 70000), reference(&bytes));
    }
}
