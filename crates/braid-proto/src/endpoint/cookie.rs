//! SYN cookies: when a listener's queue of half-open connections is full (a SYN flood, perhaps
//! from spoofed sources), a SYN is answered without keeping any state. What the connection needs
//! later is folded into our initial sequence number; the client's ACK of it proves that the
//! client saw the SYN/ACK, and the connection is rebuilt from that ACK. This is the classic
//! scheme (RFC 4987 §3.6), as Linux's `tcp_syncookies=1`: cookies only on overflow, so an
//! unloaded listener keeps every option exactly.
//!
//! The 32-bit cookie (our ISS):
//! - bits 31..12: 20 bits of HMAC-SHA256 under a per-endpoint secret, over both addresses and
//!   ports, the client's ISN, the time slot and the low 12 bits below. A blind attacker must
//!   guess them: one chance in 2^20 per forged ACK.
//! - bits 11..10: the time slot (64 s) modulo 4. The current and the previous slot are accepted,
//!   so a cookie lives 64–128 s.
//! - bits 9..8: the peer's MSS, as an index into [`MSS_TABLE`] (rounded down).
//! - bits 7..4: the peer's window scale (15: it sent none).
//! - bit 3: the peer offered SACK; bit 2: timestamps.
//! - bit 1: the SYN carried MP_CAPABLE v1; bit 0: it asked for DSS checksums.
//!
//! Timestamps. Our timestamp clock restarts at the ACK, from its echo of our SYN/ACK's value, so
//! our values never go backwards (PAWS at the peer).
//!
//! MPTCP v1 (RFC 8684 §3.1). The client's SYN carries no key; our key goes in the SYN/ACK and is
//! then forgotten. The third ACK carries both keys, so the connection level is rebuilt with the
//! receiver key the ACK echoes. This is what Linux does with cookies. A token already in use
//! refuses the ACK. An ACK that lost its MP_CAPABLE falls back to plain TCP.

use super::{Endpoint, PendingCookie, DSS_RESERVE};
use crate::conn::{with_hooks, Conn, Subflow};
use crate::mptcp::conn::{MpLevel, SubflowMp};
use crate::mptcp::crypto::{hmac_sha256, token_and_idsn};
use crate::tcp::tcb::Tcb;
use crate::time::Instant;
use braid_wire::mptcp::{CapableFlags, MpCapable, MptcpOption, MPTCP_VERSION};
use braid_wire::tcp::{TcpOptions, Timestamps};
use braid_wire::TcpRepr;
use std::net::SocketAddr;

/// The MSS values a cookie can name (the peer's MSS is rounded down to one of them).
pub(super) const MSS_TABLE: [u16; 4] = [536, 1220, 1440, 1460];
/// Seconds per time slot.
const SLOT_SECS: u64 = 64;
/// Most cookie SYN/ACKs waiting to be sent (more are dropped and counted).
pub(super) const MAX_PENDING_COOKIES: usize = 256;

/// What a cookie carries besides its MAC.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Bits {
    slot: u8,
    mss: u8,
    wscale: Option<u8>,
    sack: bool,
    ts: bool,
    mpc: bool,
    csum: bool,
}

impl Bits {
    fn low(self) -> u32 {
        (u32::from(self.slot & 3) << 10)
            | (u32::from(self.mss & 3) << 8)
            | (u32::from(self.wscale.map_or(15, |w| w.min(14))) << 4)
            | (u32::from(self.sack) << 3)
            | (u32::from(self.ts) << 2)
            | (u32::from(self.mpc) << 1)
            | u32::from(self.csum)
    }

    fn from_low(v: u32) -> Self {
        let ws = ((v >> 4) & 15) as u8;
        Bits {
            slot: ((v >> 10) & 3) as u8,
            mss: ((v >> 8) & 3) as u8,
            wscale: (ws != 15).then_some(ws),
            sack: v & 8 != 0,
            ts: v & 4 != 0,
            mpc: v & 2 != 0,
            csum: v & 1 != 0,
        }
    }
}

fn slot_of(now: Instant) -> u64 {
    now.as_nanos() / 1_000_000_000 / SLOT_SECS
}

/// The 20-bit MAC of a cookie, in bits 31..12.
fn mac(
    secret: &[u8; 32],
    local: SocketAddr,
    remote: SocketAddr,
    client_isn: u32,
    slot: u64,
    low: u32,
) -> u32 {
    let mut msg = Vec::with_capacity(64);
    for a in [local, remote] {
        match a.ip() {
            std::net::IpAddr::V4(v) => msg.extend_from_slice(&v.octets()),
            std::net::IpAddr::V6(v) => msg.extend_from_slice(&v.octets()),
        }
        msg.extend_from_slice(&a.port().to_be_bytes());
    }
    msg.extend_from_slice(&client_isn.to_be_bytes());
    msg.extend_from_slice(&slot.to_be_bytes());
    msg.extend_from_slice(&low.to_be_bytes());
    let h = hmac_sha256(secret, &msg);
    u32::from_be_bytes([h[0], h[1], h[2], h[3]]) & !0xfff
}

impl Endpoint {
    fn cookie_secret(&mut self) -> [u8; 32] {
        if let Some(s) = self.cookie_secret {
            return s;
        }
        let mut s = [0u8; 32];
        for c in s.chunks_exact_mut(8) {
            c.copy_from_slice(&self.keys.next_key().to_be_bytes());
        }
        self.cookie_secret = Some(s);
        s
    }

    /// Answers `syn` with a SYN/ACK whose ISS is a cookie, keeping no state.
    pub(super) fn send_syn_cookie(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        syn: &TcpRepr<'_>,
        mpc: Option<MpCapable>,
    ) {
        if self.cookie_tx.len() >= MAX_PENDING_COOKIES {
            self.counters.listen_overflows += 1;
            return;
        }
        let o = &syn.options;
        let peer_mss = o.mss.unwrap_or(536);
        let mss = MSS_TABLE.iter().rposition(|&m| m <= peer_mss).unwrap_or(0) as u8;
        let mpc = mpc.filter(|m| m.version == MPTCP_VERSION && self.config.mptcp.enabled);
        let slot = slot_of(now);
        let bits = Bits {
            slot: (slot & 3) as u8,
            mss,
            wscale: o.window_scale,
            sack: o.sack_permitted,
            ts: o.timestamps.is_some(),
            mpc: mpc.is_some(),
            csum: mpc.is_some_and(|m| m.flags.checksum_required()),
        };
        let low = bits.low();
        let secret = self.cookie_secret();
        let iss = mac(&secret, local, remote, syn.seq, slot, low) | low;
        let ts = self.rng.next_u32();
        // The SYN/ACK is the one a normal passive open would send, from a connection that lives
        // only for this call.
        let Some(mut tcb) = Tcb::accept_syn(&self.config.tcp, local, remote, iss, ts, now, syn)
        else {
            return;
        };
        let (mp, level) = match mpc {
            Some(m) => {
                tcb.reserve_option_room(DSS_RESERVE);
                let key = self.fresh_key();
                let lv = MpLevel::server(key, &self.config.mptcp, &m, &self.config.tcp);
                (Some(SubflowMp::initial()), Some(Box::new(lv)))
            }
            None => (None, None),
        };
        let mut conn = Conn::new(Subflow::new(tcb, mp), level, None, None, None);
        let mut packet = Vec::new();
        if with_hooks(&mut conn, 0, |t, hk| t.poll_transmit(now, &mut packet, hk)) {
            self.counters.syncookies_sent += 1;
            self.cookie_tx.push_back(PendingCookie {
                src: local.ip(),
                dst: remote.ip(),
                packet,
            });
        }
    }

    /// An ACK to a listening port for no connection: if it carries a valid cookie, the
    /// connection is rebuilt in SYN-RECEIVED (and the caller hands it the ACK).
    pub(super) fn accept_syn_cookie(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ack: &TcpRepr<'_>,
    ) -> CookieAck {
        match self.cookie_ack(now, local, remote, ack) {
            Ok(h) => CookieAck::Connection(h),
            Err(a) => a,
        }
    }

    fn cookie_ack(
        &mut self,
        now: Instant,
        local: SocketAddr,
        remote: SocketAddr,
        ack: &TcpRepr<'_>,
    ) -> Result<super::ConnHandle, CookieAck> {
        let Some(secret) = self.cookie_secret else {
            return Err(CookieAck::Invalid);
        };
        let iss = ack.ack.wrapping_sub(1);
        let client_isn = ack.seq.wrapping_sub(1);
        let low = iss & 0xfff;
        let bits = Bits::from_low(low);
        let cur = slot_of(now);
        let valid = [cur, cur.wrapping_sub(1)].into_iter().any(|s| {
            (s & 3) as u8 == bits.slot
                && mac(&secret, local, remote, client_isn, s, low) == iss & !0xfff
        });
        if !valid {
            self.counters.syncookies_failed += 1;
            return Err(CookieAck::Invalid);
        }
        let port = local.port();
        let Some(l) = self.listeners.get(&port) else {
            return Err(CookieAck::Invalid);
        };
        if l.accept_queue.len() >= self.config.backlog
            || self.conns.len() >= self.config.max_connections
        {
            // As Linux with a full accept queue: drop the ACK; the client sends again and the
            // cookie still holds then.
            self.counters.listen_overflows += 1;
            return Err(CookieAck::Dropped);
        }
        // Our timestamp clock goes on from the value the ACK echoes.
        let ts_echo = ack.options.timestamps;
        if bits.ts && ts_echo.is_none() {
            self.counters.syncookies_failed += 1;
            return Err(CookieAck::Invalid);
        }
        let ts_offset = ts_echo.map_or(0, |t| {
            t.tsecr.wrapping_sub((now.as_nanos() / 1_000_000) as u32)
        });
        let keys = if bits.mpc {
            MptcpOption::parse_list(ack.options.mptcp)
                .flatten()
                .find_map(|o| match o {
                    MptcpOption::MpCapable(m) => m.sender_key.zip(m.receiver_key),
                    _ => None,
                })
        } else {
            None
        };
        if let Some((_, ours)) = keys {
            if self.tokens.contains_key(&token_and_idsn(ours).0) {
                self.counters.syncookies_failed += 1;
                return Err(CookieAck::Invalid);
            }
        } else if bits.mpc {
            // RFC 8684 §3.1: a third ACK without MP_CAPABLE falls back to TCP.
            self.counters.mp_capable_fallback_ack += 1;
        }
        // The SYN, as far as the cookie remembers it.
        let syn = TcpRepr {
            src_port: ack.src_port,
            dst_port: ack.dst_port,
            seq: client_isn,
            window: ack.window,
            options: TcpOptions {
                mss: Some(MSS_TABLE[bits.mss as usize]),
                window_scale: bits.wscale,
                sack_permitted: bits.sack,
                timestamps: ts_echo.filter(|_| bits.ts).map(|t| Timestamps {
                    tsval: t.tsval,
                    tsecr: 0,
                }),
                ..Default::default()
            },
            ..Default::default()
        };
        let Some(mut tcb) =
            Tcb::accept_syn(&self.config.tcp, local, remote, iss, ts_offset, now, &syn)
        else {
            return Err(CookieAck::Invalid);
        };
        let (mp, level) = match keys {
            Some((_, ours)) => {
                tcb.reserve_option_room(DSS_RESERVE);
                let mut flags = CapableFlags::HMAC_SHA256;
                if bits.csum {
                    flags |= CapableFlags::CHECKSUM_REQUIRED;
                }
                let m = MpCapable::syn(CapableFlags(flags));
                let lv = MpLevel::server(ours, &self.config.mptcp, &m, &self.config.tcp);
                self.counters.mp_capable_syn_rx += 1;
                (Some(SubflowMp::initial()), Some(Box::new(lv)))
            }
            None => (None, None),
        };
        self.counters.syncookies_recv += 1;
        self.counters.passive_opens += 1;
        if let Some(l) = self.listeners.get_mut(&port) {
            l.half_open += 1;
        }
        Ok(self.insert(Subflow::new(tcb, mp), level, Some(port), false))
    }
}

/// What became of an ACK that may carry a cookie.
pub(super) enum CookieAck {
    /// A connection rebuilt from it.
    Connection(super::ConnHandle),
    /// A valid cookie, but no room: dropped without an answer.
    Dropped,
    /// No cookie of ours (answered with a RST by the caller).
    Invalid,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cookie_bits_round_trip() {
        for wscale in [None, Some(0), Some(7), Some(14)] {
            for (sack, ts, mpc, csum) in [
                (false, false, false, false),
                (true, true, true, true),
                (true, false, true, false),
            ] {
                for slot in 0..4 {
                    for mss in 0..4 {
                        let b = Bits {
                            slot,
                            mss,
                            wscale,
                            sack,
                            ts,
                            mpc,
                            csum,
                        };
                        assert_eq!(Bits::from_low(b.low()), b);
                        assert_eq!(b.low() & !0xfff, 0);
                    }
                }
            }
        }
    }

    #[test]
    fn mac_depends_on_every_input() {
        let s = [7u8; 32];
        let a: SocketAddr = "10.0.0.1:80".parse().unwrap();
        let b: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        let c: SocketAddr = "10.0.0.2:4001".parse().unwrap();
        let m = mac(&s, a, b, 1, 5, 0x123);
        assert_eq!(m & 0xfff, 0);
        assert_eq!(m, mac(&s, a, b, 1, 5, 0x123));
        assert_ne!(m, mac(&s, a, c, 1, 5, 0x123));
        assert_ne!(m, mac(&s, a, b, 2, 5, 0x123));
        assert_ne!(m, mac(&s, a, b, 1, 6, 0x123));
        assert_ne!(m, mac(&s, a, b, 1, 5, 0x124));
        assert_ne!(m, mac(&[8u8; 32], a, b, 1, 5, 0x123));
    }
}
