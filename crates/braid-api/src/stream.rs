//! [`MptcpStream`] and [`MptcpListener`]: blocking, like `std::net::TcpStream`/`TcpListener`.

use crate::core::{Cmd, ConnCore, ConnState, ListenCore, Phase, StackShared};
use crate::info::StreamInfo;
use crate::stack::REPLY_TIMEOUT;
use std::io::{self, Read, Write};
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What every clone of one stream shares; the connection is released when it is dropped.
#[derive(Debug)]
pub(crate) struct StreamInner {
    pub core: Arc<ConnCore>,
    pub shared: Arc<StackShared>,
    pub timeouts: Mutex<(Option<Duration>, Option<Duration>)>,
}

impl Drop for StreamInner {
    fn drop(&mut self) {
        self.shared.send(Cmd::Release(self.core.id));
    }
}

/// A connection over braid's paths: MPTCP when the peer speaks it, plain TCP (fallback)
/// otherwise — the same type either way ([`MptcpStream::info`] tells which).
///
/// `Read`/`Write` block like a socket's (with optional time-outs); `shutdown(Write)` sends a
/// FIN (DATA_FIN) after the queued bytes. Dropping the last clone closes the connection like
/// `close(2)`: queued bytes are still sent, then a FIN; unread received bytes make it a reset.
#[derive(Debug, Clone)]
pub struct MptcpStream {
    pub(crate) inner: Arc<StreamInner>,
}

/// Copies from `rx` into `buf`; kicks the engine when it had stopped for room.
pub(crate) fn take_rx(st: &mut ConnState, buf: &mut [u8], shared: &StackShared, id: u64) -> usize {
    let n = buf.len().min(st.rx.len());
    let (a, b) = st.rx.as_slices();
    let k = n.min(a.len());
    buf[..k].copy_from_slice(&a[..k]);
    if n > k {
        buf[k..n].copy_from_slice(&b[..n - k]);
    }
    st.rx.drain(..n);
    if st.rx_starved && st.rx_cap - st.rx.len() >= st.rx_cap / 4 {
        st.rx_starved = false;
        shared.send(Cmd::Kick(id));
    }
    n
}

/// What a read sees now: `Some(result)` when it need not wait.
pub(crate) fn read_ready(
    st: &mut ConnState,
    buf: &mut [u8],
    shared: &StackShared,
    id: u64,
) -> Option<io::Result<usize>> {
    if buf.is_empty() || st.rx_shut {
        return Some(Ok(0));
    }
    if !st.rx.is_empty() {
        return Some(Ok(take_rx(st, buf, shared, id)));
    }
    if st.rx_eof {
        return Some(Ok(0));
    }
    if let Some(e) = &st.error {
        return Some(Err(e.to_io()));
    }
    if st.phase == Phase::Closed && !st.rx_after_close {
        return Some(Ok(0));
    }
    None
}

/// What a write sees now: `Some(result)` when it need not wait.
pub(crate) fn write_ready(
    st: &mut ConnState,
    buf: &[u8],
    shared: &StackShared,
    id: u64,
) -> Option<io::Result<usize>> {
    if let Some(e) = &st.error {
        return Some(Err(e.to_io()));
    }
    if st.tx_shut {
        return Some(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            "write after shutdown(Write)",
        )));
    }
    if st.phase == Phase::Closed {
        return Some(Err(io::Error::new(
            io::ErrorKind::BrokenPipe,
            format!("connection with {} is closed", st.remote),
        )));
    }
    if buf.is_empty() {
        return Some(Ok(0));
    }
    let free = st.tx_cap.saturating_sub(st.tx.len());
    if free == 0 {
        return None;
    }
    let n = free.min(buf.len());
    let was_empty = st.tx.is_empty();
    st.tx.extend(&buf[..n]);
    if was_empty {
        shared.send(Cmd::Kick(id));
    }
    Some(Ok(n))
}

/// Applies shutdown(how) to the shared state.
pub(crate) fn do_shutdown(st: &mut ConnState, how: Shutdown, shared: &StackShared, id: u64) {
    if matches!(how, Shutdown::Read | Shutdown::Both) {
        st.rx_shut = true;
        st.rx.clear();
        if st.rx_starved {
            st.rx_starved = false;
            shared.send(Cmd::Kick(id));
        }
    }
    if matches!(how, Shutdown::Write | Shutdown::Both) && !st.tx_shut {
        st.tx_shut = true;
        shared.send(Cmd::Kick(id));
    }
}

impl MptcpStream {
    pub(crate) fn new(core: Arc<ConnCore>, shared: Arc<StackShared>) -> Self {
        MptcpStream {
            inner: Arc::new(StreamInner {
                core,
                shared,
                timeouts: Mutex::new((None, None)),
            }),
        }
    }

    /// The stack's number for this connection (as `braid status` lists it).
    pub fn id(&self) -> u64 {
        self.inner.core.id
    }

    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.inner.core.lock().remote)
    }

    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.inner
            .core
            .lock()
            .local
            .ok_or_else(|| io::Error::new(io::ErrorKind::NotConnected, "not connected"))
    }

    /// Time-out for reads (`None`: block forever); a zero duration is refused, as by std.
    pub fn set_read_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.timeouts().0 = t;
        Ok(())
    }

    pub fn set_write_timeout(&self, t: Option<Duration>) -> io::Result<()> {
        check_timeout(t)?;
        self.timeouts().1 = t;
        Ok(())
    }

    pub fn read_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts().0)
    }

    pub fn write_timeout(&self) -> io::Result<Option<Duration>> {
        Ok(self.timeouts().1)
    }

    fn timeouts(&self) -> std::sync::MutexGuard<'_, (Option<Duration>, Option<Duration>)> {
        self.inner
            .timeouts
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// `Write`: a FIN (MPTCP: DATA_FIN) after the bytes already written; `Read`: later reads
    /// return 0 and arriving bytes are dropped; `Both`: the two.
    pub fn shutdown(&self, how: Shutdown) -> io::Result<()> {
        let core = &self.inner.core;
        let mut st = core.lock();
        if st.phase == Phase::Closed && st.error.is_some() && how != Shutdown::Read {
            return Err(io::Error::new(io::ErrorKind::NotConnected, "not connected"));
        }
        do_shutdown(&mut st, how, &self.inner.shared, core.id);
        core.notify(&mut st);
        Ok(())
    }

    /// Resets the connection at once (RST; MPTCP: MP_FASTCLOSE), dropping queued bytes.
    pub fn abort(&self) {
        self.inner.shared.send(Cmd::Abort(self.inner.core.id));
    }

    /// Another handle to the same connection (e.g. one thread reads, another writes).
    pub fn try_clone(&self) -> io::Result<MptcpStream> {
        Ok(self.clone())
    }

    /// Addresses, totals, MPTCP outcome (fallback or not) and every subflow with its bytes,
    /// srtt, cwnd and backup flag.
    pub fn info(&self) -> io::Result<StreamInfo> {
        let (tx, rx) = sync_channel(1);
        self.inner.shared.send(Cmd::Info(self.inner.core.id, tx));
        match rx.recv_timeout(REPLY_TIMEOUT) {
            Ok(Some(i)) => Ok(i),
            Ok(None) => Err(io::Error::new(
                io::ErrorKind::NotConnected,
                "the connection is gone",
            )),
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the engine did not answer",
            )),
        }
    }

    /// The error that ended the connection, if any (like `SO_ERROR`).
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        Ok(self.inner.core.lock().error.as_ref().map(|e| e.to_io()))
    }

    /// The async twin of this stream (same connection), for tokio.
    #[cfg(feature = "tokio")]
    pub fn into_async(self) -> crate::aio::AsyncMptcpStream {
        crate::aio::AsyncMptcpStream { inner: self.inner }
    }
}

fn check_timeout(t: Option<Duration>) -> io::Result<()> {
    if t.is_some_and(|d| d.is_zero()) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "cannot set a 0 duration timeout",
        ));
    }
    Ok(())
}

/// Waits on `core` until `ready` gives an answer or `timeout` passes.
fn block_on<T>(
    core: &ConnCore,
    timeout: Option<Duration>,
    mut ready: impl FnMut(&mut ConnState) -> Option<io::Result<T>>,
) -> io::Result<T> {
    let end = timeout.map(|t| crate::core::mono_now() + t);
    let mut st = core.lock();
    loop {
        if let Some(r) = ready(&mut st) {
            return r;
        }
        let left = match end {
            None => None,
            Some(end) => {
                let left = end.saturating_duration_since(crate::core::mono_now());
                if left.is_zero() {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "timed out waiting on the connection",
                    ));
                }
                Some(left)
            }
        };
        st = core.wait(st, left).0;
    }
}

impl Read for &MptcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let inner = &self.inner;
        let t = self.timeouts().0;
        block_on(&inner.core, t, |st| {
            read_ready(st, buf, &inner.shared, inner.core.id)
        })
    }
}

impl Write for &MptcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let inner = &self.inner;
        let t = self.timeouts().1;
        block_on(&inner.core, t, |st| {
            write_ready(st, buf, &inner.shared, inner.core.id)
        })
    }

    /// Returns once every written byte is in the engine's send buffer.
    fn flush(&mut self) -> io::Result<()> {
        let t = self.timeouts().1;
        block_on(&self.inner.core, t, |st| {
            if let Some(e) = &st.error {
                return Some(Err(e.to_io()));
            }
            (st.tx.is_empty() || st.phase == Phase::Closed).then_some(Ok(()))
        })
    }
}

impl Read for MptcpStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        (&*self).read(buf)
    }
}

impl Write for MptcpStream {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        (&*self).write(buf)
    }
    fn flush(&mut self) -> io::Result<()> {
        (&*self).flush()
    }
}

/// Accepts connections on one port at every path's address: MPTCP clients and plain TCP ones
/// alike. Dropping it stops accepting (connections waiting in its queue are closed).
#[derive(Debug)]
pub struct MptcpListener {
    pub(crate) core: Arc<ListenCore>,
    pub(crate) shared: Arc<StackShared>,
    locals: Vec<IpAddr>,
}

impl Drop for MptcpListener {
    fn drop(&mut self) {
        self.shared.send(Cmd::CloseListener(self.core.port));
    }
}

impl MptcpListener {
    pub(crate) fn new(
        core: Arc<ListenCore>,
        shared: Arc<StackShared>,
        locals: Vec<IpAddr>,
    ) -> Self {
        MptcpListener {
            core,
            shared,
            locals,
        }
    }

    pub fn port(&self) -> u16 {
        self.core.port
    }

    /// The addresses it accepts on (one per path), with its port.
    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.locals
            .iter()
            .map(|&ip| SocketAddr::new(ip, self.core.port))
            .collect()
    }

    /// Waits for the next established connection.
    pub fn accept(&self) -> io::Result<(MptcpStream, SocketAddr)> {
        let mut st = self.core.lock();
        loop {
            if let Some(c) = st.queue.pop_front() {
                let remote = c.lock().remote;
                return Ok((MptcpStream::new(c, self.shared.clone()), remote));
            }
            if let Some(e) = &st.error {
                return Err(e.to_io());
            }
            st = self.core.cv.wait(st).unwrap_or_else(|e| e.into_inner());
        }
    }

    /// Connections as they come (each `accept`).
    pub fn incoming(&self) -> Incoming<'_> {
        Incoming { listener: self }
    }

    /// The async twin of this listener, for tokio.
    #[cfg(feature = "tokio")]
    pub fn into_async(self) -> crate::aio::AsyncMptcpListener {
        crate::aio::AsyncMptcpListener { listener: self }
    }
}

/// The iterator of [`MptcpListener::incoming`]; it never returns `None`.
#[derive(Debug)]
pub struct Incoming<'a> {
    listener: &'a MptcpListener,
}

impl Iterator for Incoming<'_> {
    type Item = io::Result<MptcpStream>;
    fn next(&mut self) -> Option<Self::Item> {
        Some(self.listener.accept().map(|(s, _)| s))
    }
}
