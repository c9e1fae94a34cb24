//! MPTCP v1 cryptography (RFC 8684 §3.1, §3.2, §3.4.1): token and initial data sequence number
//! from a key, HMAC-SHA256 (RFC 2104, written here over `sha2::Sha256`), the MP_JOIN and ADD_ADDR
//! HMACs, and the source of keys.
//!
//! Names follow the RFC's roles so the two ends cannot be mixed up: in MP_JOIN the *initiator*
//! (host A) sends the SYN, the *responder* (host B) the SYN/ACK, whichever end opened the MPTCP
//! connection itself.

use std::net::IpAddr;

use sha2::{Digest, Sha256};

/// SHA-256 block size in bytes (RFC 2104 "B").
const BLOCK: usize = 64;

/// Token and initial data sequence number (IDSN) of a key (RFC 8684 §3.1 and §3.3.1).
///
/// The key is hashed as its 8 big-endian octets with SHA-256; the token is the most significant
/// 32 bits of the hash, the IDSN the least significant 64 bits.
pub fn token_and_idsn(key: u64) -> (u32, u64) {
    let h: [u8; 32] = Sha256::digest(key.to_be_bytes()).into();
    let token = u32::from_be_bytes([h[0], h[1], h[2], h[3]]);
    let mut low = [0u8; 8];
    low.copy_from_slice(&h[24..32]);
    (token, u64::from_be_bytes(low))
}

/// HMAC-SHA256 of `msg` under `key` (RFC 2104 §2).
pub fn hmac_sha256(key: &[u8], msg: &[u8]) -> [u8; 32] {
    // A key longer than the block is replaced by its hash; a shorter one is zero-padded.
    let mut k = [0u8; BLOCK];
    if key.len() > BLOCK {
        k[..32].copy_from_slice(&Sha256::digest(key));
    } else {
        k[..key.len()].copy_from_slice(key);
    }
    let mut ipad = [0x36u8; BLOCK];
    let mut opad = [0x5cu8; BLOCK];
    for i in 0..BLOCK {
        ipad[i] ^= k[i];
        opad[i] ^= k[i];
    }
    let inner = Sha256::new()
        .chain_update(ipad)
        .chain_update(msg)
        .finalize();
    Sha256::new()
        .chain_update(opad)
        .chain_update(inner)
        .finalize()
        .into()
}

/// The full MP_JOIN HMAC that the host holding `own_key` and `own_nonce` sends (RFC 8684 §3.2):
/// key = own key || peer key (8 octets each, big-endian), message = own nonce || peer nonce
/// (4 octets each). HMAC-A = HMAC(Key-A || Key-B, R-A || R-B); HMAC-B = HMAC(Key-B || Key-A,
/// R-B || R-A). Prefer [`join_synack_hmac`] and [`join_ack_hmac`], which truncate as the option
/// needs.
pub fn join_hmac(own_key: u64, peer_key: u64, own_nonce: u32, peer_nonce: u32) -> [u8; 32] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&own_key.to_be_bytes());
    key[8..].copy_from_slice(&peer_key.to_be_bytes());
    let mut msg = [0u8; 8];
    msg[..4].copy_from_slice(&own_nonce.to_be_bytes());
    msg[4..].copy_from_slice(&peer_nonce.to_be_bytes());
    hmac_sha256(&key, &msg)
}

/// The truncated HMAC carried by MP_JOIN on the SYN/ACK: the leftmost 64 bits of the
/// *responder's* HMAC-B = HMAC(Key-B || Key-A, R-B || R-A) (RFC 8684 §3.2).
///
/// The responder computes it to send; the initiator computes it with the same arguments (the
/// responder's key and nonce first) to check the SYN/ACK.
pub fn join_synack_hmac(
    responder_key: u64,
    initiator_key: u64,
    responder_nonce: u32,
    initiator_nonce: u32,
) -> u64 {
    let h = join_hmac(
        responder_key,
        initiator_key,
        responder_nonce,
        initiator_nonce,
    );
    let mut left = [0u8; 8];
    left.copy_from_slice(&h[..8]);
    u64::from_be_bytes(left)
}

/// The HMAC carried by MP_JOIN on the third ACK: the leftmost 160 bits of the *initiator's*
/// HMAC-A = HMAC(Key-A || Key-B, R-A || R-B) (RFC 8684 §3.2).
///
/// The initiator computes it to send; the responder computes it with the same arguments (the
/// initiator's key and nonce first) to check the ACK.
pub fn join_ack_hmac(
    initiator_key: u64,
    responder_key: u64,
    initiator_nonce: u32,
    responder_nonce: u32,
) -> [u8; 20] {
    let h = join_hmac(
        initiator_key,
        responder_key,
        initiator_nonce,
        responder_nonce,
    );
    let mut left = [0u8; 20];
    left.copy_from_slice(&h[..20]);
    left
}

/// The truncated HMAC of an ADD_ADDR announcement (RFC 8684 §3.4.1): the rightmost 64 bits of
/// HMAC(sender key || receiver key, address id || address || port).
///
/// The address is 4 octets (IPv4) or 16 (IPv6); the port is 2 big-endian octets, and 2 octets of
/// zero when the option carries no port (RFC 8684 §3.4.1; Linux hashes the same 2 + 0 octets).
/// The announcing host passes its own key as `sender_key`; the receiver checks with the same
/// arguments (the announcer's key first).
pub fn add_addr_hmac(
    sender_key: u64,
    receiver_key: u64,
    addr_id: u8,
    addr: IpAddr,
    port: Option<u16>,
) -> u64 {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&sender_key.to_be_bytes());
    key[8..].copy_from_slice(&receiver_key.to_be_bytes());
    let mut msg = [0u8; 1 + 16 + 2];
    msg[0] = addr_id;
    let n = match addr {
        IpAddr::V4(a) => {
            msg[1..5].copy_from_slice(&a.octets());
            5
        }
        IpAddr::V6(a) => {
            msg[1..17].copy_from_slice(&a.octets());
            17
        }
    };
    msg[n..n + 2].copy_from_slice(&port.unwrap_or(0).to_be_bytes());
    let h = hmac_sha256(&key, &msg[..n + 2]);
    let mut right = [0u8; 8];
    right.copy_from_slice(&h[24..]);
    u64::from_be_bytes(right)
}

/// The operating system's CSPRNG could not be read.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct KeySourceError;

impl std::fmt::Display for KeySourceError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the OS random number generator is unavailable")
    }
}

impl std::error::Error for KeySourceError {}

/// Where MPTCP keys and MP_JOIN nonces come from: secret randomness, kept apart from the public
/// [`crate::rng::Rng`] (initial sequence numbers, ports) so that nothing an observer sees predicts
/// a key.
///
/// - [`KeySource::os`]: the OS CSPRNG (`getrandom`), for real connections.
/// - [`KeySource::deterministic`]: a seeded stream for the simulator, so a seed replays exactly.
///   Not secret: never use it on a real network.
///
/// Keys are drawn blindly: a key whose token collides with one in use (RFC 8684 §3.1 asks that
/// the token be unique on the host) must be redrawn by the engine.
pub struct KeySource {
    inner: Inner,
}

enum Inner {
    Os,
    /// SHA-256 in counter mode over a domain tag, the seed and a counter.
    Deterministic {
        seed: u64,
        counter: u64,
    },
}

impl std::fmt::Debug for KeySource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the seed or the position of a stream of keys.
        let kind = match self.inner {
            Inner::Os => "os",
            Inner::Deterministic { .. } => "deterministic",
        };
        f.debug_struct("KeySource").field("kind", &kind).finish()
    }
}

impl KeySource {
    /// Keys from the OS CSPRNG. Fails when the OS generator cannot be read (checked once here).
    pub fn os() -> Result<Self, KeySourceError> {
        getrandom::u64().map_err(|_| KeySourceError)?;
        Ok(KeySource { inner: Inner::Os })
    }

    /// A reproducible stream of keys for the simulator: the same seed gives the same keys.
    /// Not secret.
    pub fn deterministic(seed: u64) -> Self {
        KeySource {
            inner: Inner::Deterministic { seed, counter: 0 },
        }
    }

    /// True for a [`KeySource::deterministic`] source.
    pub fn is_deterministic(&self) -> bool {
        matches!(self.inner, Inner::Deterministic { .. })
    }

    /// The next 64-bit value, or an error when the OS generator fails.
    pub fn try_next_u64(&mut self) -> Result<u64, KeySourceError> {
        match &mut self.inner {
            Inner::Os => getrandom::u64().map_err(|_| KeySourceError),
            Inner::Deterministic { seed, counter } => {
                let h = Sha256::new()
                    .chain_update(b"braid mptcp key source v1")
                    .chain_update(seed.to_be_bytes())
                    .chain_update(counter.to_be_bytes())
                    .finalize();
                *counter = counter.wrapping_add(1);
                let mut x = [0u8; 8];
                x.copy_from_slice(&h[..8]);
                Ok(u64::from_be_bytes(x))
            }
        }
    }

    /// A fresh 64-bit MPTCP key (RFC 8684 §3.1).
    ///
    /// # Panics
    /// If the OS generator, which answered when the source was made, fails later (on Linux the
    /// `getrandom` system call does not fail once the pool is initialised).
    pub fn next_key(&mut self) -> u64 {
        self.try_next_u64()
            .expect("OS random number generator failed")
    }

    /// A fresh 32-bit MP_JOIN random nonce (RFC 8684 §3.2). Panics as [`KeySource::next_key`].
    pub fn next_nonce(&mut self) -> u32 {
        (self.next_key() >> 32) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::{Ipv4Addr, Ipv6Addr};

    fn hex(bytes: &[u8]) -> String {
        bytes.iter().map(|b| format!("{b:02x}")).collect()
    }

    #[test]
    fn hmac_rfc4231_case_1() {
        // RFC 4231 §4.2: key = 20 × 0x0b, data = "Hi There".
        let h = hmac_sha256(&[0x0b; 20], b"Hi There");
        assert_eq!(
            hex(&h),
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7"
        );
    }

    #[test]
    fn hmac_rfc4231_case_2() {
        // RFC 4231 §4.3: key = "Jefe", data = "what do ya want for nothing?".
        let h = hmac_sha256(b"Jefe", b"what do ya want for nothing?");
        assert_eq!(
            hex(&h),
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn hmac_rfc4231_case_6_key_longer_than_block() {
        // RFC 4231 §4.7: key = 131 × 0xaa (hashed first).
        let h = hmac_sha256(
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
        );
        assert_eq!(
            hex(&h),
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54"
        );
    }

    #[test]
    fn hmac_linux_kernel_vector() {
        // The Linux kernel's MPTCP crypto test: the 16 ASCII bytes "0b0b0b0b0b0b0b0b" as key,
        // the 8 ASCII bytes "48692054" as message.
        let h = hmac_sha256(b"0b0b0b0b0b0b0b0b", b"48692054");
        assert_eq!(
            hex(&h),
            "8385e24fb4235ac37556b6b886db106284a1da671699f46db1f235ec622dcafa"
        );
    }

    #[test]
    fn token_and_idsn_known_answer() {
        // Computed independently with Python:
        //   h = hashlib.sha256((0x0123456789abcdef).to_bytes(8, 'big')).digest()
        //   h.hex() == "55c53f5d490297900cefa825d0c8e8e9532ee8a118abe7d8570762cd38be9818"
        //   token = h[:4] = 0x55c53f5d, idsn = h[-8:] = 0x570762cd38be9818
        assert_eq!(
            token_and_idsn(0x0123_4567_89ab_cdef),
            (0x55c5_3f5d, 0x5707_62cd_38be_9818)
        );
        assert_ne!(token_and_idsn(0).0, token_and_idsn(1).0);
    }

    const KA: u64 = 0x1122_3344_5566_7788;
    const KB: u64 = 0x99aa_bbcc_ddee_ff01;
    const RA: u32 = 0x0102_0304;
    const RB: u32 = 0xa0b0_c0d0;

    #[test]
    fn join_hmacs_known_answers() {
        // Python: hmac.new(kb + ka, rb + ra, sha256).digest()[:8] (responder, SYN/ACK)
        //         hmac.new(ka + kb, ra + rb, sha256).digest()[:20] (initiator, third ACK)
        assert_eq!(join_synack_hmac(KB, KA, RB, RA), 0xf1cb_a18e_88f5_98ec);
        assert_eq!(
            hex(&join_ack_hmac(KA, KB, RA, RB)),
            "2a3b08bb14a9467a65fb18dfb46c20e53e1596f6"
        );
        // The roles matter: swapping them gives different values.
        assert_ne!(
            join_synack_hmac(KA, KB, RA, RB),
            join_synack_hmac(KB, KA, RB, RA)
        );
        assert_eq!(
            &join_ack_hmac(KA, KB, RA, RB)[..8],
            &join_hmac(KA, KB, RA, RB)[..8]
        );
        assert_eq!(
            join_synack_hmac(KA, KB, RA, RB).to_be_bytes(),
            join_hmac(KA, KB, RA, RB)[..8]
        );
    }

    #[test]
    fn add_addr_hmac_known_answers() {
        // Python: msg = bytes([5]) + 192.0.2.1 + (0).to_bytes(2) ; hmac(ka + kb, msg)[-8:]
        let v4 = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1));
        assert_eq!(add_addr_hmac(KA, KB, 5, v4, None), 0xb9ce_465a_b24f_a338);
        // An absent port hashes as port 0.
        assert_eq!(
            add_addr_hmac(KA, KB, 5, v4, None),
            add_addr_hmac(KA, KB, 5, v4, Some(0))
        );
        // Python: msg = bytes([7]) + 2001:db8::42 + (8080).to_bytes(2) ; hmac(kb + ka, msg)[-8:]
        let v6 = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x42));
        assert_eq!(
            add_addr_hmac(KB, KA, 7, v6, Some(8080)),
            0xba2c_d256_caca_bccc
        );
        assert_ne!(
            add_addr_hmac(KB, KA, 7, v6, Some(8080)),
            add_addr_hmac(KB, KA, 7, v6, Some(8081))
        );
    }

    #[test]
    fn deterministic_key_source_replays() {
        let mut a = KeySource::deterministic(42);
        let mut b = KeySource::deterministic(42);
        let mut c = KeySource::deterministic(43);
        let xs: Vec<u64> = (0..8).map(|_| a.next_key()).collect();
        let ys: Vec<u64> = (0..8).map(|_| b.next_key()).collect();
        let zs: Vec<u64> = (0..8).map(|_| c.next_key()).collect();
        assert_eq!(xs, ys);
        assert_ne!(xs, zs);
        let mut distinct = xs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        assert_eq!(distinct.len(), xs.len());
        assert!(a.is_deterministic());
        // Not the public generator's stream for the same seed.
        let mut public = crate::rng::Rng::new(42);
        assert_ne!(KeySource::deterministic(42).next_key(), public.next_u64());
        assert_eq!(format!("{a:?}"), "KeySource { kind: \"deterministic\" }");
    }

    #[test]
    fn os_key_source_draws_distinct_keys() {
        let mut s = KeySource::os().expect("OS RNG available on the test machine");
        assert!(!s.is_deterministic());
        let keys: Vec<u64> = (0..16).map(|_| s.next_key()).collect();
        let mut d = keys.clone();
        d.sort_unstable();
        d.dedup();
        assert_eq!(d.len(), keys.len(), "16 draws from 2^64 should not repeat");
        let _ = s.next_nonce();
    }
}
