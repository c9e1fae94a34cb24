//! What the engine thread runs on: the TUN data plane of `braid-io`, or an in-memory loopback
//! (one engine whose packets come straight back to it, for tests and examples without root).
//!
//! Both sleep until a packet, a timer or the wake socket (other threads' requests) is due:
//! nothing polls in a loop.

use crate::control::PathRequest;
use braid_io::{Clock, Driver, PathEvent, PathSpec};
use braid_proto::{Endpoint, Instant};
use std::io::{self, Read};
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream;
use std::time::Duration;

/// One data plane under the engine.
pub(crate) trait Plane: Send {
    fn endpoint(&mut self) -> &mut Endpoint;
    fn endpoint_ref(&self) -> &Endpoint;
    fn now(&self) -> Instant;
    /// Sends what the engine queued, sleeps until a packet, the engine's timer, the wake socket
    /// or `max_wait`, and feeds the engine what arrived. True when SIGINT/SIGTERM arrived.
    fn wait(&mut self, max_wait: Option<Duration>, wake: &UnixStream) -> io::Result<bool>;
    /// Lets the last packets (a FIN, a RST) reach the peer.
    fn drain(&mut self, limit: Duration);
    /// Flushes the capture file, if any.
    fn finish(&mut self) -> io::Result<()>;
    /// The wall-clock time (since the Unix epoch) of an engine instant.
    fn wall(&self, t: Instant) -> Duration;
    /// A `path` request: the path it made, removed or changed.
    fn path(&mut self, req: &PathRequest) -> Result<PathSpec, String> {
        let _ = req;
        Err("a loopback stack has no TUN paths to change".to_string())
    }
    /// The paths now.
    fn paths(&self) -> Vec<PathSpec> {
        Vec::new()
    }
    /// Path changes since the last call.
    fn path_events(&mut self) -> Vec<PathEvent> {
        Vec::new()
    }
    /// The TUN name of a local address.
    fn path_name(&self, ip: IpAddr) -> Option<String> {
        let _ = ip;
        None
    }
}

/// Empties the wake socket (non-blocking).
fn drain_wake(wake: &UnixStream) {
    let mut buf = [0u8; 256];
    let mut r = wake;
    while let Ok(n) = r.read(&mut buf) {
        if n < buf.len() {
            break;
        }
    }
}

/// The TUN devices of `braid-io`.
pub(crate) struct TunPlane {
    pub(crate) driver: Driver,
}

impl Plane for TunPlane {
    fn endpoint(&mut self) -> &mut Endpoint {
        &mut self.driver.endpoint
    }

    fn endpoint_ref(&self) -> &Endpoint {
        &self.driver.endpoint
    }

    fn now(&self) -> Instant {
        self.driver.now()
    }

    fn wait(&mut self, max_wait: Option<Duration>, wake: &UnixStream) -> io::Result<bool> {
        self.driver.set_wake_fd(Some(wake.as_raw_fd()));
        let w = self.driver.wait(max_wait, None)?;
        if w.woken {
            drain_wake(wake);
        }
        Ok(w.interrupted)
    }

    fn drain(&mut self, limit: Duration) {
        let _ = self.driver.drain(limit);
    }

    fn finish(&mut self) -> io::Result<()> {
        self.driver.finish_capture()
    }

    fn wall(&self, t: Instant) -> Duration {
        self.driver.wall(t)
    }

    fn path(&mut self, req: &PathRequest) -> Result<PathSpec, String> {
        crate::control::apply_path(&mut self.driver, req)
    }

    fn paths(&self) -> Vec<PathSpec> {
        self.driver.paths().cloned().collect()
    }

    fn path_events(&mut self) -> Vec<PathEvent> {
        self.driver.take_path_events().collect()
    }

    fn path_name(&self, ip: IpAddr) -> Option<String> {
        self.driver.path_name(ip).map(str::to_string)
    }
}

/// Packets the loopback hands back per wake-up before it looks at timers and requests again.
const LOOP_BATCH: usize = 4096;

/// One engine talking to itself: every packet it sends is delivered back to it at once (so a
/// connection from one of its addresses to another is accepted by its own listener).
pub(crate) struct LoopbackPlane {
    pub(crate) endpoint: Endpoint,
    pub(crate) clock: Clock,
    buf: Vec<u8>,
}

impl LoopbackPlane {
    pub(crate) fn new(endpoint: Endpoint) -> Self {
        LoopbackPlane {
            endpoint,
            clock: Clock::new(),
            buf: Vec::with_capacity(65536),
        }
    }

    /// Delivers queued packets back; returns how many.
    fn cycle(&mut self) -> usize {
        for i in 0..LOOP_BATCH {
            let now = self.clock.now();
            match self.endpoint.poll_transmit(now, &mut self.buf) {
                Some(t) => {
                    let n = t.len.min(self.buf.len());
                    let packet = std::mem::take(&mut self.buf);
                    self.endpoint.handle_packet(now, &packet[..n]);
                    self.buf = packet;
                }
                None => return i,
            }
        }
        LOOP_BATCH
    }
}

impl Plane for LoopbackPlane {
    fn endpoint(&mut self) -> &mut Endpoint {
        &mut self.endpoint
    }

    fn endpoint_ref(&self) -> &Endpoint {
        &self.endpoint
    }

    fn now(&self) -> Instant {
        self.clock.now()
    }

    fn wait(&mut self, max_wait: Option<Duration>, wake: &UnixStream) -> io::Result<bool> {
        // Delivered packets make events: the engine thread handles them before any sleep.
        let busy = self.cycle() > 0;
        let now = self.clock.now();
        let mut deadline = self.endpoint.poll_timeout();
        if let Some(m) = max_wait {
            let d = now + m;
            deadline = Some(deadline.map_or(d, |x| x.min(d)));
        }
        let left = if busy {
            Some(Duration::ZERO)
        } else {
            deadline.map(|d| d.saturating_duration_since(now))
        };
        // Sleep in a blocking read of the wake socket, bounded by the next deadline.
        let mut b = [0u8; 1];
        let mut r = wake;
        match left {
            Some(d) if d.is_zero() => {}
            _ => {
                wake.set_nonblocking(false)?;
                wake.set_read_timeout(left)?;
                let got = r.read(&mut b);
                wake.set_nonblocking(true)?;
                if got.is_ok() {
                    drain_wake(wake);
                }
            }
        }
        let now = self.clock.now();
        if self.endpoint.poll_timeout().is_some_and(|t| t <= now) {
            self.endpoint.handle_timeout(now);
        }
        self.cycle();
        Ok(false)
    }

    fn drain(&mut self, _limit: Duration) {
        self.cycle();
    }

    fn finish(&mut self) -> io::Result<()> {
        Ok(())
    }

    fn wall(&self, t: Instant) -> Duration {
        self.clock.wall(t)
    }
}
