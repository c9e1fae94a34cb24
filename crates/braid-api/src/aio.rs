//! tokio twins (feature `tokio`): [`AsyncMptcpStream`] (`AsyncRead`/`AsyncWrite`) and
//! [`AsyncMptcpListener`], over the same connections as the blocking types. The engine thread
//! wakes a task's waker when its connection changes; nothing polls.

use crate::core::{Phase, StackShared};
use crate::info::StreamInfo;
use crate::stack::Stack;
use crate::stream::{
    do_shutdown, read_ready, write_ready, MptcpListener, MptcpStream, StreamInner,
};
use std::future::Future;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

/// An [`MptcpStream`] for tokio.
#[derive(Debug)]
pub struct AsyncMptcpStream {
    pub(crate) inner: Arc<StreamInner>,
}

impl AsyncMptcpStream {
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
    /// Resets the connection at once.
    pub fn abort(&self) {
        MptcpStream {
            inner: self.inner.clone(),
        }
        .abort()
    }
    /// See [`MptcpStream::info`] (it blocks briefly for the engine's answer).
    pub fn info(&self) -> io::Result<StreamInfo> {
        MptcpStream {
            inner: self.inner.clone(),
        }
        .info()
    }
    /// shutdown(Read/Write/Both) as for the blocking stream.
    pub fn shutdown_std(&self, how: Shutdown) -> io::Result<()> {
        MptcpStream {
            inner: self.inner.clone(),
        }
        .shutdown(how)
    }
    /// Back to the blocking type.
    pub fn into_std(self) -> MptcpStream {
        MptcpStream { inner: self.inner }
    }
}

impl AsyncRead for AsyncMptcpStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let inner = &self.inner;
        let mut st = inner.core.lock();
        let dst = buf.initialize_unfilled();
        match read_ready(&mut st, dst, &inner.shared, inner.core.id) {
            Some(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Some(Err(e)) => Poll::Ready(Err(e)),
            None => {
                st.read_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }
}

impl AsyncWrite for AsyncMptcpStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let inner = &self.inner;
        let mut st = inner.core.lock();
        match write_ready(&mut st, buf, &inner.shared, inner.core.id) {
            Some(r) => Poll::Ready(r),
            None => {
                st.write_waker = Some(cx.waker().clone());
                Poll::Pending
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let mut st = self.inner.core.lock();
        if let Some(e) = &st.error {
            return Poll::Ready(Err(e.to_io()));
        }
        if st.tx.is_empty() || st.phase == Phase::Closed {
            return Poll::Ready(Ok(()));
        }
        st.write_waker = Some(cx.waker().clone());
        Poll::Pending
    }

    /// shutdown(Write): the FIN follows the queued bytes (returns at once, like a socket's).
    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let inner = &self.inner;
        let mut st = inner.core.lock();
        do_shutdown(&mut st, Shutdown::Write, &inner.shared, inner.core.id);
        Poll::Ready(Ok(()))
    }
}

/// Waits for an outgoing handshake to end.
struct ConnectFuture {
    core: Option<Arc<crate::core::ConnCore>>,
    shared: Arc<StackShared>,
}

impl Drop for ConnectFuture {
    /// Given up before the handshake ended (e.g. the task was cancelled): the attempt is
    /// released like a stream.
    fn drop(&mut self) {
        if let Some(core) = self.core.take() {
            self.shared.send(crate::core::Cmd::Release(core.id));
        }
    }
}

impl Future for ConnectFuture {
    type Output = io::Result<AsyncMptcpStream>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Some(core) = self.core.clone() else {
            return Poll::Ready(Err(io::Error::other("polled after completion")));
        };
        let mut st = core.lock();
        if st.phase == Phase::Connecting {
            st.write_waker = Some(cx.waker().clone());
            return Poll::Pending;
        }
        let err = st.error.as_ref().map(|e| e.to_io());
        drop(st);
        self.core = None; // the stream below owns the release from here
                          // A failed connect still owns an engine entry (refused, timed out): the stream's drop
                          // releases it either way.
        let stream = MptcpStream::new(core, self.shared.clone());
        match err {
            Some(e) => Poll::Ready(Err(e)),
            None => Poll::Ready(Ok(stream.into_async())),
        }
    }
}

impl Stack {
    /// [`Stack::connect`] for tokio: resolves when the handshake completed or failed.
    pub fn connect_async(
        &self,
        remote: SocketAddr,
    ) -> impl Future<Output = io::Result<AsyncMptcpStream>> + Send + 'static {
        let t = self.shared().connect_timeout;
        self.connect_async_from(remote, None, t)
    }

    /// Connect from a chosen local address, with a time limit of its own.
    pub fn connect_async_from(
        &self,
        remote: SocketAddr,
        local: Option<IpAddr>,
        timeout: Duration,
    ) -> impl Future<Output = io::Result<AsyncMptcpStream>> + Send + 'static {
        let core = self.start_connect(remote, local, timeout);
        ConnectFuture {
            core: Some(core),
            shared: self.shared().clone(),
        }
    }
}

/// An [`MptcpListener`] for tokio.
#[derive(Debug)]
pub struct AsyncMptcpListener {
    pub(crate) listener: MptcpListener,
}

impl AsyncMptcpListener {
    pub fn port(&self) -> u16 {
        self.listener.port()
    }

    pub fn local_addrs(&self) -> Vec<SocketAddr> {
        self.listener.local_addrs()
    }

    /// The next established connection.
    pub async fn accept(&self) -> io::Result<(AsyncMptcpStream, SocketAddr)> {
        std::future::poll_fn(|cx| self.poll_accept(cx)).await
    }

    pub fn poll_accept(
        &self,
        cx: &mut Context<'_>,
    ) -> Poll<io::Result<(AsyncMptcpStream, SocketAddr)>> {
        let l = &self.listener;
        let mut st = l.core.lock();
        if let Some(c) = st.queue.pop_front() {
            let remote = c.lock().remote;
            let s = MptcpStream::new(c, l.shared.clone()).into_async();
            return Poll::Ready(Ok((s, remote)));
        }
        if let Some(e) = &st.error {
            return Poll::Ready(Err(e.to_io()));
        }
        st.waker = Some(cx.waker().clone());
        Poll::Pending
    }
}
