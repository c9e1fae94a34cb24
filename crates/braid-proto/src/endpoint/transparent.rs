//! Transparent listening: the endpoint takes SYNs to *any* address and port (a capture device
//! routes other hosts' traffic into it) and holds each one until the application decides whether
//! to answer it. The application is told with [`Event::PendingSyn`], which names the original
//! destination; it then calls [`Endpoint::accept_pending`] (the SYN/ACK goes out and the
//! connection proceeds as a passive open), [`Endpoint::refuse_pending`] (a RST goes out, so the
//! client's `connect()` reports "connection refused") or [`Endpoint::forget_pending`] (nothing
//! is sent: the client times out as it would against a silent host).
//!
//! A relay uses this to answer the client's SYN only once its upstream connection exists, so the
//! client sees the upstream's verdict. A retransmitted SYN for a pair already pending is dropped
//! (the decision is on its way); beyond `EndpointConfig::backlog` pending SYNs new ones are
//! dropped and counted as `listen_overflows`. Listeners on a port still take their SYNs first.

use super::{ConnHandle, Endpoint, Error, Event};
use crate::tcp::tcb::Tcb;
use crate::time::Instant;
use braid_wire::{IpRepr, TcpRepr};
use std::collections::HashMap;
use std::net::SocketAddr;

/// Names a SYN waiting for the application's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PendingId(pub u64);

#[derive(Debug)]
struct Held {
    local: SocketAddr,
    remote: SocketAddr,
    /// The SYN without payload (its IP packet), parsed again when it is accepted.
    packet: Vec<u8>,
    /// Sequence space the original SYN occupied (1 + payload), for a RST's ACK.
    seg_len: u32,
}

/// The SYNs of a transparent endpoint that wait for a decision.
#[derive(Debug, Default)]
pub(super) struct Transparent {
    next: u64,
    held: HashMap<PendingId, Held>,
    by_pair: HashMap<(SocketAddr, SocketAddr), PendingId>,
}

impl Transparent {
    fn take(&mut self, id: PendingId) -> Option<Held> {
        let h = self.held.remove(&id)?;
        self.by_pair.remove(&(h.local, h.remote));
        Some(h)
    }
}

impl Endpoint {
    /// Makes this endpoint transparent: packets to any address are taken, and a SYN to a port
    /// nobody listens on becomes an [`Event::PendingSyn`] instead of being refused.
    pub fn listen_transparent(&mut self) {
        if self.transparent.is_none() {
            self.transparent = Some(Box::default());
        }
    }

    /// A SYN (no ACK, no RST) that matched no connection and no listener. Returns false when
    /// the endpoint is not transparent (the caller refuses it as usual).
    pub(super) fn hold_syn(
        &mut self,
        ip: &IpRepr,
        seg: &TcpRepr<'_>,
        local: SocketAddr,
        remote: SocketAddr,
    ) -> bool {
        let backlog = self.config.backlog;
        let Some(t) = self.transparent.as_deref_mut() else {
            return false;
        };
        if t.by_pair.contains_key(&(local, remote)) {
            return true; // a retransmission: the decision is on its way
        }
        if t.held.len() >= backlog {
            self.counters.listen_overflows += 1;
            return true;
        }
        let Some(ip) = IpRepr::new_tcp(ip.src(), ip.dst(), 0) else {
            return true;
        };
        let mut bare = *seg;
        bare.payload = &[];
        let mut packet = Vec::new();
        braid_wire::emit_ip_tcp(&ip, &bare, &mut packet);
        t.next += 1;
        let id = PendingId(t.next);
        t.by_pair.insert((local, remote), id);
        t.held.insert(
            id,
            Held {
                local,
                remote,
                packet,
                seg_len: 1 + seg.payload.len() as u32 + seg.flags.fin() as u32,
            },
        );
        self.events
            .push_back(Event::PendingSyn { id, local, remote });
        true
    }

    /// Answers the pending SYN `id` with a SYN/ACK: the connection proceeds as a passive open
    /// and is known to the application at once (it gets `Connected` when the handshake
    /// completes, then `Readable`/`Writable`/`Closed` as any other).
    pub fn accept_pending(&mut self, now: Instant, id: PendingId) -> Result<ConnHandle, Error> {
        let held = self
            .transparent
            .as_deref_mut()
            .and_then(|t| t.take(id))
            .ok_or(Error::UnknownConnection)?;
        let Ok((_, seg)) = braid_wire::parse_ip_tcp(&held.packet) else {
            return Err(Error::UnknownConnection);
        };
        if self.conns.len() >= self.config.max_connections {
            self.counters.listen_overflows += 1;
            self.refuse_held(&held, seg.seq);
            return Err(Error::AddrInUse);
        }
        let (iss, ts) = (self.rng.next_u32(), self.rng.next_u32());
        let tcb = Tcb::accept_syn(
            &self.config.tcp,
            held.local,
            held.remote,
            iss,
            ts,
            now,
            &seg,
        )
        .ok_or(Error::AddrNotAvailable)?;
        self.counters.passive_opens += 1;
        Ok(self.insert(tcb, None, None, true))
    }

    /// Refuses the pending SYN `id` with a RST (RFC 9293 §3.10.7.1, as for a closed port).
    pub fn refuse_pending(&mut self, id: PendingId) -> Result<(), Error> {
        let held = self
            .transparent
            .as_deref_mut()
            .and_then(|t| t.take(id))
            .ok_or(Error::UnknownConnection)?;
        if let Ok((_, seg)) = braid_wire::parse_ip_tcp(&held.packet) {
            self.counters.no_socket += 1;
            self.refuse_held(&held, seg.seq);
        }
        Ok(())
    }

    /// Drops the pending SYN `id` without an answer (a later retransmission of it is held
    /// again, as a new pending SYN).
    pub fn forget_pending(&mut self, id: PendingId) -> Result<(), Error> {
        self.transparent
            .as_deref_mut()
            .and_then(|t| t.take(id))
            .map(|_| ())
            .ok_or(Error::UnknownConnection)
    }

    /// SYNs waiting for a decision.
    pub fn pending_count(&self) -> usize {
        self.transparent.as_ref().map_or(0, |t| t.held.len())
    }

    fn refuse_held(&mut self, held: &Held, seq: u32) {
        let ack = seq.wrapping_add(held.seg_len);
        self.queue_rst(held.local, held.remote, 0, ack, true);
    }
}
