//! Full mesh (braid's default, after Linux's in-kernel path manager with `subflow` and
//! `signal` endpoints):
//!
//! * server: once fully established it announces each of its other addresses (ADD_ADDR);
//! * client: it opens a subflow from each of its other addresses — to an announced address of
//!   the same subnet (IPv4 /24, IPv6 /64) when there is one, else, when no such announcement
//!   came within 2·SRTT of full establishment, to the server's initial address.

use super::{announce_others, PathManager, PmAction, PmContext, PmEvent};
use crate::time::Instant;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

#[derive(Debug, Default)]
pub struct FullMesh {
    /// Local addresses a subflow was opened from.
    tried: Vec<IpAddr>,
    /// Local addresses that came back at run time: joined again, the initial one included.
    again: Vec<IpAddr>,
    /// Subflows that failed, to open again: (local, remote, tries, when; None once opened).
    retry: Vec<Retry>,
    /// From when joins to the initial address may go (time for ADD_ADDR to arrive).
    join_at: Option<Instant>,
    /// Announced addresses (id, at their ports) joined because no subflow reached them.
    announced_joined: Vec<(u8, SocketAddr)>,
}

#[derive(Debug, Clone, Copy)]
struct Retry {
    local: IpAddr,
    remote: SocketAddr,
    tries: u32,
    due: Option<Instant>,
    last: Instant,
}

/// First wait before a failed subflow is opened again; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(16);
/// A subflow that lived this long after its re-creation starts the backoff afresh.
const RETRY_RESET: Duration = Duration::from_secs(60);
/// Most pairs remembered for re-creation.
const RETRY_PAIRS: usize = 16;

impl FullMesh {
    /// Opens the failed subflows whose wait is over (when no subflow from their address
    /// lives); asks to be woken for the next.
    fn retries(&mut self, cx: &PmContext<'_>, out: &mut Vec<PmAction>) {
        let mut opened = 0;
        for r in self.retry.iter_mut() {
            let Some(due) = r.due else { continue };
            if cx.gone.contains(&r.local) || cx.live_locals.contains(&r.local) {
                r.due = None;
                continue;
            }
            if due <= cx.now {
                if cx.subflows + opened >= cx.max_subflows * 4 {
                    continue;
                }
                r.due = None;
                r.last = cx.now;
                opened += 1;
                out.push(PmAction::Join {
                    local: r.local,
                    remote: r.remote,
                });
            } else {
                out.push(PmAction::WakeAt(due));
            }
        }
    }

    fn failed(&mut self, local: IpAddr, remote: SocketAddr, cx: &PmContext<'_>) {
        let i = match self
            .retry
            .iter()
            .position(|r| r.local == local && r.remote == remote)
        {
            Some(i) => i,
            None => {
                if self.retry.len() >= RETRY_PAIRS {
                    self.retry.remove(0);
                }
                self.retry.push(Retry {
                    local,
                    remote,
                    tries: 0,
                    due: None,
                    last: cx.now,
                });
                self.retry.len() - 1
            }
        };
        let r = &mut self.retry[i];
        if r.tries > 0 && cx.now >= r.last + RETRY_RESET {
            r.tries = 0;
        }
        let wait = RETRY_FIRST
            .checked_mul(1 << r.tries.min(6))
            .unwrap_or(RETRY_MAX)
            .min(RETRY_MAX);
        r.tries += 1;
        r.due = Some(cx.now + wait);
    }
}

impl FullMesh {
    fn joins(&mut self, cx: &PmContext<'_>, out: &mut Vec<PmAction>) {
        let first = cx.first_local.ip();
        let late = self.join_at.is_some_and(|t| cx.now >= t);
        let mut opened = 0;
        for &a in cx.local_addrs {
            let skip_first = a == first && !self.again.contains(&a);
            if skip_first
                || a.is_ipv4() != first.is_ipv4()
                || self.tried.contains(&a)
                || cx.gone.contains(&a)
                || cx.live_locals.contains(&a)
            {
                continue;
            }
            if cx.subflows + opened >= cx.max_subflows {
                break;
            }
            let target = cx
                .remote_addrs
                .iter()
                .find(|r| same_subnet(a, r.1))
                .map(|r| cx.announced(r.0, r.1));
            let remote = match target {
                Some(t) => t,
                None if late || a == first => cx.first_remote,
                None => continue,
            };
            self.tried.push(a);
            opened += 1;
            out.push(PmAction::Join { local: a, remote });
        }
        let more = cx
            .local_addrs
            .iter()
            .any(|a| *a != first && !self.tried.contains(a) && !cx.gone.contains(a));
        if let Some(at) = self.join_at.filter(|&t| t > cx.now && more) {
            out.push(PmAction::WakeAt(at));
        }
    }
}

impl FullMesh {
    /// An address the peer announced at any time that no subflow reaches (say a server
    /// endpoint made at run time, with a port, after our addresses were all in use): joined
    /// once, at its announced port, from our address of its subnet, else from the initial one
    /// — as Linux's in-kernel path manager does on ADD_ADDR. Never more subflows than
    /// `max_subflows`; again after the peer removed the address and announced it anew.
    fn join_announced(
        &mut self,
        id: u8,
        addr: IpAddr,
        cx: &PmContext<'_>,
        out: &mut Vec<PmAction>,
    ) {
        let remote = cx.announced(id, addr);
        let first = cx.first_local.ip();
        let opening = out
            .iter()
            .filter(|a| matches!(a, PmAction::Join { .. }))
            .count();
        if cx.live_remotes.contains(&remote)
            || addr.is_ipv4() != first.is_ipv4()
            || self.announced_joined.iter().any(|j| j.1 == remote)
            || out
                .iter()
                .any(|a| matches!(a, PmAction::Join { remote: r, .. } if *r == remote))
            || cx.subflows + opening >= cx.max_subflows
        {
            return;
        }
        let local = cx
            .local_addrs
            .iter()
            .copied()
            .find(|&a| same_subnet(a, addr) && !cx.gone.contains(&a))
            .unwrap_or(first);
        if cx.gone.contains(&local) {
            return;
        }
        if self.announced_joined.len() >= RETRY_PAIRS {
            self.announced_joined.remove(0);
        }
        self.announced_joined.push((id, remote));
        out.push(PmAction::Join { local, remote });
    }
}

impl PathManager for FullMesh {
    fn name(&self) -> &'static str {
        "fullmesh"
    }
    fn on_event(&mut self, ev: &PmEvent, cx: &PmContext<'_>, out: &mut Vec<PmAction>) {
        if cx.server {
            match *ev {
                PmEvent::FullyEstablished => announce_others(cx, out),
                PmEvent::LocalAddressAdded { addr }
                    if addr.is_ipv4() == cx.first_local.ip().is_ipv4() =>
                {
                    out.push(PmAction::Announce {
                        id: cx.local_id(addr),
                        addr,
                    })
                }
                _ => {}
            }
            return;
        }
        match ev {
            PmEvent::FullyEstablished => {
                let srtt = cx.srtt.unwrap_or(Duration::from_millis(100));
                self.join_at = Some(cx.now + (srtt * 2).max(Duration::from_millis(10)));
                self.joins(cx, out);
            }
            &PmEvent::AddressAnnounced { id, addr } => {
                self.joins(cx, out);
                self.join_announced(id, addr, cx, out);
            }
            PmEvent::Timer => {
                self.joins(cx, out);
                self.retries(cx, out);
            }
            &PmEvent::LocalAddressAdded { addr } => {
                self.tried.retain(|a| *a != addr);
                if !self.again.contains(&addr) {
                    self.again.push(addr);
                }
                if self.join_at.is_some() {
                    self.joins(cx, out);
                }
            }
            &PmEvent::LocalAddressRemoved { addr } => self.tried.retain(|a| *a != addr),
            &PmEvent::SubflowClosed {
                local,
                remote,
                recreate: true,
            } => {
                self.failed(local.ip(), remote, cx);
                self.retries(cx, out);
            }
            &PmEvent::AddressRemoved { id } => self.announced_joined.retain(|j| j.0 != id),
            PmEvent::SubflowClosed { .. } => {}
        }
    }
}

/// Two addresses of one subnet (IPv4 /24, IPv6 /64).
fn same_subnet(a: IpAddr, b: IpAddr) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => a.octets()[..3] == b.octets()[..3],
        (IpAddr::V6(a), IpAddr::V6(b)) => a.octets()[..8] == b.octets()[..8],
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::{cx, ip};
    use super::*;

    /// A client path manager whose second address (ip(1, 1)) has already joined.
    fn second_address_joined() -> FullMesh {
        FullMesh {
            tried: vec![ip(1, 1)],
            ..FullMesh::default()
        }
    }

    fn joins_of(out: &[PmAction]) -> Vec<(IpAddr, SocketAddr)> {
        out.iter()
            .filter_map(|a| match *a {
                PmAction::Join { local, remote } => Some((local, remote)),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn an_address_announced_late_with_a_port_is_joined_at_that_port() {
        // Linux's `ip mptcp endpoint add 10.0.1.2 port 5999 signal` mid-connection: both our
        // addresses are in use (the second joined the initial address, nothing was announced
        // in time), then ADD_ADDR 10.0.1.2 port 5999 comes.
        let local = [ip(0, 1), ip(1, 1)];
        let live = [ip(0, 1), ip(1, 1)];
        let first = SocketAddr::new(ip(0, 2), 5000);
        let live_remotes = [first, first];
        let ann = [(7, ip(1, 2))];
        let ports = [(7, 5999)];
        let mut c = cx(false, &local, &ann, 100);
        c.live_locals = &live;
        c.live_remotes = &live_remotes;
        c.remote_ports = &ports;
        c.subflows = 2;
        let mut pm = second_address_joined();
        let mut out = Vec::new();
        let ev = PmEvent::AddressAnnounced {
            id: 7,
            addr: ip(1, 2),
        };
        pm.on_event(&ev, &c, &mut out);
        // From our address of its subnet, at the announced port.
        let to = SocketAddr::new(ip(1, 2), 5999);
        assert_eq!(joins_of(&out), [(ip(1, 1), to)]);
        // Announced again (a retransmitted ADD_ADDR): not joined twice.
        out.clear();
        pm.on_event(&ev, &c, &mut out);
        assert_eq!(joins_of(&out), []);
        // Removed, then announced anew: joined again.
        pm.on_event(&PmEvent::AddressRemoved { id: 7 }, &c, &mut out);
        pm.on_event(&ev, &c, &mut out);
        assert_eq!(joins_of(&out), [(ip(1, 1), to)]);
    }

    #[test]
    fn an_announced_address_is_joined_from_the_first_address_without_one_of_its_subnet() {
        let local = [ip(0, 1), ip(1, 1)];
        let live = [ip(0, 1), ip(1, 1)];
        let first = SocketAddr::new(ip(0, 2), 5000);
        let live_remotes = [first, SocketAddr::new(ip(1, 2), 5000)];
        let ann = [(1, ip(1, 2)), (7, ip(2, 2))];
        let mut c = cx(false, &local, &ann, 100);
        c.live_locals = &live;
        c.live_remotes = &live_remotes;
        c.subflows = 2;
        let mut pm = second_address_joined();
        let mut out = Vec::new();
        let ev = PmEvent::AddressAnnounced {
            id: 7,
            addr: ip(2, 2),
        };
        pm.on_event(&ev, &c, &mut out);
        assert_eq!(
            joins_of(&out),
            [(ip(0, 1), SocketAddr::new(ip(2, 2), 5000))]
        );
    }

    #[test]
    fn an_announced_address_already_reached_or_over_the_limit_is_not_joined() {
        let local = [ip(0, 1), ip(1, 1)];
        let live = [ip(0, 1), ip(1, 1)];
        let first = SocketAddr::new(ip(0, 2), 5000);
        let ann = [(7, ip(1, 2))];
        let ports = [(7, 5999)];
        let ev = PmEvent::AddressAnnounced {
            id: 7,
            addr: ip(1, 2),
        };
        // A subflow already goes to that address and port.
        let reached = [first, SocketAddr::new(ip(1, 2), 5999)];
        let mut c = cx(false, &local, &ann, 100);
        c.live_locals = &live;
        c.live_remotes = &reached;
        c.remote_ports = &ports;
        c.subflows = 2;
        let mut pm = second_address_joined();
        let mut out = Vec::new();
        pm.on_event(&ev, &c, &mut out);
        assert_eq!(joins_of(&out), []);
        // Not reached, but the connection has all the subflows it may have.
        let unreached = [first, first];
        c.live_remotes = &unreached;
        c.max_subflows = 2;
        pm.on_event(&ev, &c, &mut out);
        assert_eq!(joins_of(&out), []);
        // A server never joins.
        c.max_subflows = 8;
        c.server = true;
        pm.on_event(&ev, &c, &mut out);
        assert_eq!(joins_of(&out), []);
    }

    #[test]
    fn client_pairs_announced_subnets_then_joins_the_initial_address_late() {
        let local = [ip(0, 1), ip(1, 1), ip(2, 1)];
        let mut pm = FullMesh::default();
        let mut out = Vec::new();
        // Established at 0 ms with a 20 ms SRTT: joins to the initial address wait until 40 ms.
        pm.on_event(
            &PmEvent::FullyEstablished,
            &cx(false, &local, &[], 0),
            &mut out,
        );
        let at = Instant::ZERO + Duration::from_millis(40);
        assert_eq!(out, [PmAction::WakeAt(at)]);
        out.clear();
        // The server announces 10.0.1.2: 10.0.1.1 pairs with it at once.
        let ann = [(5, ip(1, 2))];
        pm.on_event(
            &PmEvent::AddressAnnounced {
                id: 5,
                addr: ip(1, 2),
            },
            &cx(false, &local, &ann, 10),
            &mut out,
        );
        assert_eq!(
            out,
            [
                PmAction::Join {
                    local: ip(1, 1),
                    remote: SocketAddr::new(ip(1, 2), 5000)
                },
                PmAction::WakeAt(at)
            ]
        );
        out.clear();
        // At 40 ms the last address joins the server's initial address.
        pm.on_event(&PmEvent::Timer, &cx(false, &local, &ann, 40), &mut out);
        assert_eq!(
            out,
            [PmAction::Join {
                local: ip(2, 1),
                remote: SocketAddr::new(ip(0, 2), 5000)
            }]
        );
        out.clear();
        pm.on_event(&PmEvent::Timer, &cx(false, &local, &ann, 50), &mut out);
        assert!(out.is_empty());
    }
}
