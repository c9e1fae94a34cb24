//! Per-path network emulation in braid itself (these machines have no `netem`): a fixed one-way
//! delay, independent random loss and a rate limit, applied to each direction of a path.
//!
//! Each direction is a FIFO: a packet that survives the loss draw is serialised at `rate` behind
//! the packets before it (a drop-tail queue of `queue` bytes waits for the link), then travels
//! for `delay`. Since delay is constant and serialisation is in order, due times never decrease
//! and one `VecDeque` per direction holds everything in flight.

use braid_proto::rng::Rng;
use braid_proto::Instant;
use std::collections::VecDeque;
use std::time::Duration;

/// Smallest drop-tail queue, whatever the bandwidth-delay product.
const MIN_QUEUE: u64 = 64 * 1024;
/// Hard bound on the bytes one direction keeps in flight (delay line plus queue).
const MAX_IN_FLIGHT: usize = 64 << 20;

/// What a path should look like.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct EmuSpec {
    /// One-way delay added in each direction.
    pub delay: Duration,
    /// Drop probability in each direction, 0..=1.
    pub loss: f64,
    /// Bits per second of each direction; `None` is unlimited.
    pub rate: Option<u64>,
    /// Drop-tail queue in bytes in front of the rate limit; `None` is one bandwidth-delay
    /// product (rate × twice the delay), at least 64 KiB.
    pub queue: Option<u64>,
}

impl EmuSpec {
    /// Nothing to emulate: packets pass straight through.
    pub fn is_passthrough(&self) -> bool {
        self.delay.is_zero() && self.loss <= 0.0 && self.rate.is_none()
    }

    /// The drop-tail queue size in bytes.
    pub fn queue_bytes(&self) -> u64 {
        if let Some(q) = self.queue {
            return q;
        }
        let Some(rate) = self.rate else {
            return u64::MAX;
        };
        let rtt = (self.delay * 2).as_secs_f64();
        ((rate as f64 / 8.0 * rtt) as u64).max(MIN_QUEUE)
    }
}

/// The two directions of a path.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dir {
    /// braid → kernel.
    Egress = 0,
    /// kernel → braid.
    Ingress = 1,
}

/// Why the emulation dropped packets, per path.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EmuStats {
    pub lost: u64,
    pub queue_drops: u64,
}

#[derive(Debug, Default)]
struct Line {
    /// Packets in flight with the time they come out.
    queue: VecDeque<(Instant, Vec<u8>)>,
    bytes: usize,
    /// When the rate-limited link finishes serialising what it has.
    link_free_at: Instant,
}

/// One path's emulation stage.
#[derive(Debug)]
pub struct Emulator {
    spec: EmuSpec,
    queue_limit: u64,
    rng: Rng,
    lines: [Line; 2],
    pub stats: EmuStats,
}

impl Emulator {
    pub fn new(spec: EmuSpec, seed: u64) -> Self {
        Emulator {
            queue_limit: spec.queue_bytes(),
            spec,
            rng: Rng::new(seed),
            lines: [Line::default(), Line::default()],
            stats: EmuStats::default(),
        }
    }

    pub fn spec(&self) -> &EmuSpec {
        &self.spec
    }

    pub fn is_passthrough(&self) -> bool {
        self.spec.is_passthrough()
    }

    /// Offers a packet; `take` supplies a buffer (from a pool) to copy it into when it is kept.
    /// Returns false when the packet was dropped.
    pub fn offer(
        &mut self,
        dir: Dir,
        now: Instant,
        packet: &[u8],
        take: impl FnOnce() -> Vec<u8>,
    ) -> bool {
        if self.spec.loss > 0.0 && self.rng.chance(self.spec.loss) {
            self.stats.lost += 1;
            return false;
        }
        let line = &mut self.lines[dir as usize];
        if line.bytes + packet.len() > MAX_IN_FLIGHT {
            self.stats.queue_drops += 1;
            return false;
        }
        let mut out = now;
        if let Some(rate) = self.spec.rate {
            let start = line.link_free_at.max(now);
            // Bytes still waiting for the link at `now`.
            let backlog = (start - now).as_secs_f64() * rate as f64 / 8.0;
            if backlog as u64 + packet.len() as u64 > self.queue_limit {
                self.stats.queue_drops += 1;
                return false;
            }
            let ser = Duration::from_secs_f64(packet.len() as f64 * 8.0 / rate as f64);
            line.link_free_at = start + ser;
            out = line.link_free_at;
        }
        let due = out + self.spec.delay;
        let mut buf = take();
        buf.clear();
        buf.extend_from_slice(packet);
        line.bytes += buf.len();
        line.queue.push_back((due, buf));
        true
    }

    /// The earliest time a packet comes out of either direction.
    pub fn next_due(&self) -> Option<Instant> {
        self.lines
            .iter()
            .filter_map(|l| l.queue.front().map(|(t, _)| *t))
            .min()
    }

    /// The next packet of `dir` that is due at `now`.
    pub fn pop_due(&mut self, dir: Dir, now: Instant) -> Option<Vec<u8>> {
        let line = &mut self.lines[dir as usize];
        if line.queue.front().is_some_and(|(t, _)| *t <= now) {
            let (_, buf) = line.queue.pop_front()?;
            line.bytes -= buf.len();
            return Some(buf);
        }
        None
    }

    /// Nothing in flight in either direction.
    pub fn is_idle(&self) -> bool {
        self.lines.iter().all(|l| l.queue.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(v: u64) -> Instant {
        Instant::from_nanos(v * 1_000_000)
    }

    #[test]
    fn delay_holds_packets_until_due() {
        let mut e = Emulator::new(
            EmuSpec {
                delay: Duration::from_millis(10),
                ..Default::default()
            },
            1,
        );
        assert!(e.offer(Dir::Egress, ms(0), &[1, 2, 3], Vec::new));
        assert!(e.offer(Dir::Ingress, ms(5), &[4], Vec::new));
        assert_eq!(e.next_due(), Some(ms(10)));
        assert_eq!(e.pop_due(Dir::Egress, ms(9)), None);
        assert_eq!(e.pop_due(Dir::Egress, ms(10)), Some(vec![1, 2, 3]));
        assert_eq!(e.next_due(), Some(ms(15)));
        assert_eq!(e.pop_due(Dir::Ingress, ms(15)), Some(vec![4]));
        assert!(e.is_idle());
    }

    #[test]
    fn rate_serialises_and_queue_drops_tail() {
        // 8 Mbit/s: 1000 bytes take 1 ms. Queue of 3000 bytes.
        let mut e = Emulator::new(
            EmuSpec {
                rate: Some(8_000_000),
                queue: Some(3000),
                ..Default::default()
            },
            1,
        );
        let p = [0u8; 1000];
        for _ in 0..3 {
            assert!(e.offer(Dir::Egress, ms(0), &p, Vec::new));
        }
        // 3000 bytes wait for the link: the fourth does not fit.
        assert!(!e.offer(Dir::Egress, ms(0), &p, Vec::new));
        assert_eq!(e.stats.queue_drops, 1);
        assert_eq!(e.next_due(), Some(ms(1)));
        assert!(e.pop_due(Dir::Egress, ms(1)).is_some());
        assert!(e.pop_due(Dir::Egress, ms(1)).is_none());
        assert!(e.pop_due(Dir::Egress, ms(3)).is_some());
        assert!(e.pop_due(Dir::Egress, ms(3)).is_some());
        // The other direction has its own link.
        assert!(e.offer(Dir::Ingress, ms(0), &p, Vec::new));
    }

    #[test]
    fn loss_is_seeded_and_close_to_the_rate() {
        let spec = EmuSpec {
            loss: 0.1,
            ..Default::default()
        };
        let run = |seed| {
            let mut e = Emulator::new(spec.clone(), seed);
            let kept: Vec<bool> = (0..10_000)
                .map(|_| {
                    let k = e.offer(Dir::Egress, ms(0), &[0], Vec::new);
                    e.pop_due(Dir::Egress, ms(0));
                    k
                })
                .collect();
            (kept, e.stats.lost)
        };
        let (a, lost) = run(7);
        assert_eq!(run(7).0, a);
        assert!((800..1200).contains(&lost), "lost {lost}");
    }

    #[test]
    fn default_queue_is_one_bdp() {
        let s = EmuSpec {
            delay: Duration::from_millis(10),
            rate: Some(100_000_000),
            ..Default::default()
        };
        assert_eq!(s.queue_bytes(), 250_000);
        assert!(!s.is_passthrough());
        assert!(EmuSpec::default().is_passthrough());
    }
}
