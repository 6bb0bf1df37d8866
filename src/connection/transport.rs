//! What a connection's bytes travel over: the plain socket, or TLS on it.
//!
//! An enum rather than a trait object: the plain path is a match away from glommio's own
//! calls (no extra copy, allocation or indirection), and the TLS state is boxed so that a
//! plain connection's task stays as small as before.

use std::future::poll_fn;
use std::io;
use std::net::SocketAddr;
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use futures_lite::{future, AsyncRead, AsyncWriteExt};
use glommio::net::TcpStream;

use crate::protocol::{Connect, MqttString};
use crate::shard::Shard;
use crate::tls::{CertUsername, TlsAcceptor, TlsState, TlsStream};

use super::websocket::{self, WsState, WsStream};

/// A listener that takes the user name from client certificates got one without a usable
/// identity.
#[derive(Debug, thiserror::Error)]
#[error(
    "the client certificate has no identity (CN, or DNS / e-mail / URI name) to use as user name"
)]
pub struct NoCertIdentity;

/// A connection's byte stream.
pub enum Transport {
    Tcp(TcpStream),
    Tls(Box<TlsStream>),
    /// MQTT over WebSocket, itself over TCP or TLS.
    Ws(Box<WsStream>),
}

impl Transport {
    /// Reads into `buf` (`Ready(Ok(0))`: end of stream). Nothing is kept across `Pending`.
    #[inline]
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        match self {
            Transport::Tcp(s) => Pin::new(s).poll_read(cx, buf),
            Transport::Tls(s) => s.poll_read(cx, buf),
            Transport::Ws(s) => s.poll_read(cx, buf),
        }
    }

    /// Writes some of `buf` without waiting (`Ready(Ok(n))`: `n` bytes taken).
    pub(super) fn poll_write_some(
        &mut self,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self {
            Transport::Tcp(s) => futures_lite::AsyncWrite::poll_write(Pin::new(s), cx, buf),
            Transport::Tls(s) => {
                let mut rest = buf;
                match s.poll_write_all(cx, &mut rest) {
                    Poll::Ready(Ok(())) => Poll::Ready(Ok(buf.len())),
                    Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
                    Poll::Pending if rest.len() < buf.len() => {
                        Poll::Ready(Ok(buf.len() - rest.len()))
                    }
                    Poll::Pending => Poll::Pending,
                }
            }
            // A WebSocket is never under another one.
            Transport::Ws(_) => Poll::Ready(Err(io::ErrorKind::Unsupported.into())),
        }
    }

    /// Writes all of `buf`: on the socket, or encrypted and sent.
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        match self {
            Transport::Tcp(s) => s.write_all(buf).await,
            Transport::Tls(s) => {
                let mut rest = buf;
                poll_fn(|cx| s.poll_write_all(cx, &mut rest)).await
            }
            Transport::Ws(s) => s.write_all(buf).await,
        }
    }

    /// Sends what TLS still holds (records rustls produced while reading, such as a key
    /// update's answer). Plain TCP holds nothing.
    pub async fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Tcp(_) => Ok(()),
            Transport::Tls(s) => poll_fn(|cx| s.poll_flush(cx)).await,
            Transport::Ws(s) => s.flush().await,
        }
    }

    /// `flush` as a poll, for the transport under a WebSocket.
    pub(super) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self {
            Transport::Tcp(_) => Poll::Ready(Ok(())),
            Transport::Tls(s) => s.poll_flush(cx),
            Transport::Ws(_) => Poll::Ready(Err(io::ErrorKind::Unsupported.into())),
        }
    }

    /// Shuts the connection down for writing (TLS: after a close_notify, if the socket
    /// takes it at once). Never waits on the peer.
    pub async fn close(&mut self) {
        match self {
            Transport::Tcp(s) => {
                let _ = s.close().await;
            }
            Transport::Tls(s) => s.close().await,
            // Boxed: the inner transport's close is this function (once per connection).
            Transport::Ws(s) => Box::pin(s.close()).await,
        }
    }

    fn tcp(&self) -> &TcpStream {
        match self {
            Transport::Tcp(s) => s,
            Transport::Tls(s) => s.tcp(),
            Transport::Ws(s) => s.inner().tcp(),
        }
    }

    /// The MQTT user name the client certificate gave this connection, if the listener
    /// takes it from there (`use_identity_as_username`). Such a client was authenticated by
    /// its certificate: its CONNECT's User Name and Password are not used.
    pub fn cert_username(&self) -> Option<&str> {
        match self {
            Transport::Ws(s) => s.inner().cert_username(),
            Transport::Tls(s) => match s.cert_username() {
                CertUsername::Name(n) => Some(n),
                _ => None,
            },
            Transport::Tcp(_) => None,
        }
    }

    /// Puts the certificate's identity in the CONNECT's User Name (and drops its Password:
    /// the certificate is the credential), where the listener says so. An error when the
    /// listener needs an identity and the certificate has none, or it is no MQTT string:
    /// the connection is then refused.
    pub fn apply_cert_username(&self, connect: &mut Connect) -> Result<(), NoCertIdentity> {
        let s = match self {
            Transport::Tls(s) => s,
            Transport::Ws(s) => return s.inner().apply_cert_username(connect),
            Transport::Tcp(_) => return Ok(()),
        };
        match s.cert_username() {
            CertUsername::NotUsed => Ok(()),
            CertUsername::Missing => Err(NoCertIdentity),
            CertUsername::Name(n) => {
                let name = MqttString::try_from(n.clone()).map_err(|_| NoCertIdentity)?;
                connect.username = Some(name);
                connect.password = None;
                Ok(())
            }
        }
    }

    /// Gives the connection up for a hand-off: a duplicate of its socket descriptor (this
    /// handle is dropped), its TLS state and its WebSocket state.
    pub fn into_handoff(self) -> io::Result<(OwnedFd, Option<TlsState>, Option<Box<WsState>>)> {
        let (inner, ws) = match self {
            Transport::Ws(s) => {
                let (inner, state) = s.into_parts();
                (inner, Some(state))
            }
            other => (other, None),
        };
        let (tcp, tls) = match inner {
            Transport::Tcp(s) => (s, None),
            Transport::Tls(s) => {
                let (tcp, state) = s.into_parts();
                (tcp, Some(state))
            }
            Transport::Ws(_) => return Err(io::ErrorKind::Unsupported.into()),
        };
        let fd = crate::shard::dup_fd(tcp.as_raw_fd())?;
        drop(tcp);
        Ok((fd, tls, ws))
    }

    /// The connection on the shard it was handed to.
    pub fn adopt(fd: OwnedFd, tls: Option<TlsState>, ws: Option<Box<WsState>>) -> Transport {
        // SAFETY: the fd was dup'ed for this hand-off and is owned by `fd`; the glommio
        // stream takes that ownership.
        let tcp = unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) };
        let inner = match tls {
            None => Transport::Tcp(tcp),
            Some(state) => Transport::Tls(Box::new(TlsStream::from_parts(tcp, state))),
        };
        match ws {
            None => inner,
            Some(state) => Transport::Ws(Box::new(WsStream::from_parts(inner, state))),
        }
    }
}

impl AsRawFd for Transport {
    fn as_raw_fd(&self) -> RawFd {
        self.tcp().as_raw_fd()
    }
}

/// The connection over the listener's transport: `tcp` itself, or TLS, and with
/// `websocket` a WebSocket over either, after handshakes that must end within `timeout`
/// and before shutdown. `None`: a handshake failed (logged at debug level) and the socket
/// is closed.
pub async fn open(
    shard: &Shard,
    tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
    websocket: bool,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<Transport> {
    if !websocket {
        return open_tls(shard, tcp, tls, peer, timeout).await;
    }
    let deadline = std::time::Instant::now() + timeout;
    let inner = open_tls(shard, tcp, tls, peer, timeout).await?;
    // A frame holds at most one largest packet and its fixed header (documented).
    let frame_max = u64::from(shard.config.limits.packet_bytes_max) + 5;
    let shutdown = shard.shutdown.clone();
    let handshake = crate::shard::with_timeout(
        websocket::accept(inner, frame_max),
        deadline.saturating_duration_since(std::time::Instant::now()),
    );
    let stopped = async {
        shutdown.wait().await;
        None
    };
    match future::or(handshake, stopped).await {
        Some(Ok(s)) => Some(Transport::Ws(Box::new(s))),
        Some(Err(e)) => {
            tracing::debug!(%peer, error = %e, "WebSocket handshake failed");
            None
        }
        None => {
            if !shard.shutdown.is_triggered() {
                shard.limit_stats.hit(crate::limit::Limit::ConnectTimeout);
            }
            tracing::debug!(%peer, "WebSocket handshake not done within connect_timeout_secs");
            None
        }
    }
}

async fn open_tls(
    shard: &Shard,
    tcp: TcpStream,
    tls: Option<&TlsAcceptor>,
    peer: SocketAddr,
    timeout: Duration,
) -> Option<Transport> {
    let Some(acceptor) = tls else {
        return Some(Transport::Tcp(tcp));
    };
    let shutdown = shard.shutdown.clone();
    let handshake =
        crate::shard::with_timeout(TlsStream::accept(tcp, acceptor.server_config()), timeout);
    let stopped = async {
        shutdown.wait().await;
        None
    };
    match future::or(handshake, stopped).await {
        Some(Ok(mut s)) => {
            acceptor.count_handshake();
            if acceptor.use_identity_as_username() {
                s.use_cert_identity();
            }
            tracing::debug!(
                %peer, shard = %shard.id, listener = %acceptor.bind(), version = ?s.protocol_version(),
                user = ?s.cert_username(), "TLS handshake done"
            );
            Some(Transport::Tls(Box::new(s)))
        }
        Some(Err(e)) => {
            acceptor.count_failure();
            tracing::debug!(%peer, listener = %acceptor.bind(), error = %e, "TLS handshake failed");
            None
        }
        None => {
            acceptor.count_failure();
            if !shard.shutdown.is_triggered() {
                shard.limit_stats.hit(crate::limit::Limit::ConnectTimeout);
            }
            tracing::debug!(
                %peer, listener = %acceptor.bind(),
                "TLS handshake not done within connect_timeout_secs (or shutdown)"
            );
            None
        }
    }
}
