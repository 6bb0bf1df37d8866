//! A server-side TLS connection over a glommio socket.
//!
//! rustls does no I/O itself: it takes TLS records through `read_tls` and gives them out
//! through `write_tls`, on any `std::io::Read` / `Write`. Here those are the socket's
//! readiness-based polls, with `Pending` turned into `WouldBlock` (glommio has registered
//! the task's waker by then), so every step is non-blocking and the waits are the task's.
//! glommio never holds a buffer across `Pending`, so plain slices can be used.

use std::future::poll_fn;
use std::io::{self, Read, Write};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};

use futures_lite::{AsyncRead, AsyncWrite, AsyncWriteExt};
use glommio::net::TcpStream;
use rustls::{ProtocolVersion, ServerConfig, ServerConnection};

/// The TLS side of a connection: what moves with it when it is handed to its home shard
/// (rustls' state is `Send`; records read and not yet decrypted move with it).
#[derive(Debug)]
pub struct TlsState {
    conn: Box<ServerConnection>,
    /// The user name taken from the client certificate, when the listener uses it.
    cert_username: CertUsername,
}

/// Whether a connection's MQTT user name comes from its client certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertUsername {
    /// The listener does not use the certificate's identity.
    NotUsed,
    /// The identity of the verified client certificate.
    Name(String),
    /// The listener uses the identity, and the certificate has none.
    Missing,
}

/// A connection after a completed TLS handshake.
pub struct TlsStream {
    tcp: TcpStream,
    state: TlsState,
}

/// The socket as the blocking reader and writer rustls expects, for one poll.
struct Polled<'a, 'b> {
    tcp: &'a mut TcpStream,
    cx: &'a mut Context<'b>,
}

impl Read for Polled<'_, '_> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_read(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }
}

impl Write for Polled<'_, '_> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match Pin::new(&mut *self.tcp).poll_write(self.cx, buf) {
            Poll::Ready(r) => r,
            Poll::Pending => Err(io::ErrorKind::WouldBlock.into()),
        }
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// `Pending` for `WouldBlock`, the rest as it is.
fn pending_if_blocked<T>(r: io::Result<T>) -> Poll<io::Result<T>> {
    match r {
        Err(e) if e.kind() == io::ErrorKind::WouldBlock => Poll::Pending,
        r => Poll::Ready(r),
    }
}

impl TlsStream {
    /// Runs the server side of the handshake on `tcp`. An error closes nothing by itself:
    /// the caller drops the socket. A failure alert rustls queued is sent if the socket
    /// takes it at once.
    pub async fn accept(tcp: TcpStream, config: Arc<ServerConfig>) -> io::Result<TlsStream> {
        let conn = ServerConnection::new(config).map_err(io::Error::other)?;
        let mut stream = TlsStream {
            tcp,
            state: TlsState {
                conn: Box::new(conn),
                cert_username: CertUsername::NotUsed,
            },
        };
        poll_fn(|cx| stream.poll_handshake(cx)).await?;
        Ok(stream)
    }

    fn poll_handshake(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        loop {
            // What rustls has to say first (its flight, or the tickets after the last one).
            ready!(self.poll_flush(cx))?;
            if !self.state.conn.is_handshaking() {
                return Poll::Ready(Ok(()));
            }
            let n = ready!(pending_if_blocked(self.read_tls(cx)))?;
            if n == 0 {
                return Poll::Ready(Err(io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "the client closed the connection during the TLS handshake",
                )));
            }
            if let Err(e) = self.state.conn.process_new_packets() {
                // The alert rustls queued for the client (e.g. bad certificate), if the
                // socket takes it now; the connection ends either way.
                let _ = self.poll_flush(cx);
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
    }

    fn read_tls(&mut self, cx: &mut Context<'_>) -> io::Result<usize> {
        let mut io = Polled {
            tcp: &mut self.tcp,
            cx,
        };
        self.state.conn.read_tls(&mut io)
    }

    /// Reads decrypted bytes into `buf`; `Ready(Ok(0))` is the end of the stream (a
    /// close_notify, or the socket closed without one: MQTT treats both as a close).
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        loop {
            match self.state.conn.reader().read(buf) {
                Ok(n) => return Poll::Ready(Ok(n)),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Poll::Ready(Ok(0)),
                Err(e) => return Poll::Ready(Err(e)),
            }
            // Nothing decrypted is waiting (so rustls' plaintext buffer has room): more
            // records from the socket.
            if ready!(pending_if_blocked(self.read_tls(cx)))? == 0 {
                return Poll::Ready(Ok(0));
            }
            let processed = self.state.conn.process_new_packets();
            // Records rustls answers by itself (a TLS 1.3 key update, an alert) go now if
            // the socket takes them, else with the next write or flush.
            if self.state.conn.wants_write() {
                let _ = self.poll_flush(cx);
            }
            if let Err(e) = processed {
                return Poll::Ready(Err(io::Error::new(io::ErrorKind::InvalidData, e)));
            }
        }
    }

    /// Sends every TLS record rustls holds.
    pub fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while self.state.conn.wants_write() {
            let mut io = Polled {
                tcp: &mut self.tcp,
                cx,
            };
            let n = ready!(pending_if_blocked(self.state.conn.write_tls(&mut io)))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Encrypts and sends all of `rest`, advancing it as it goes: the whole write is done
    /// when this returns `Ready(Ok(()))`. rustls buffers at most 64 KiB of records (its
    /// default limit), so a large write goes out in steps of that size.
    pub fn poll_write_all(
        &mut self,
        cx: &mut Context<'_>,
        rest: &mut &[u8],
    ) -> Poll<io::Result<()>> {
        loop {
            ready!(self.poll_flush(cx))?;
            if rest.is_empty() {
                return Poll::Ready(Ok(()));
            }
            let n = self.state.conn.writer().write(rest)?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *rest = rest.get(n..).unwrap_or_default();
        }
    }

    /// Sends close_notify if the socket takes it at once (a peer that stopped reading must
    /// not hold the close up), then shuts the socket down for writing.
    pub async fn close(&mut self) {
        self.state.conn.send_close_notify();
        poll_fn(|cx| {
            let _ = self.poll_flush(cx);
            Poll::Ready(())
        })
        .await;
        let _ = self.tcp.close().await;
    }

    /// The socket.
    pub fn tcp(&self) -> &TcpStream {
        &self.tcp
    }

    /// The negotiated TLS version.
    pub fn protocol_version(&self) -> Option<ProtocolVersion> {
        self.state.conn.protocol_version()
    }

    /// Takes the client certificate's identity as the connection's user name (see
    /// [`super::identity`]): [`CertUsername::Missing`] when the certificate has none.
    pub fn use_cert_identity(&mut self) {
        let name = self
            .state
            .conn
            .peer_certificates()
            .and_then(|chain| chain.first())
            .and_then(|cert| super::identity::of(cert.as_ref()));
        self.state.cert_username = match name {
            Some(n) => CertUsername::Name(n),
            None => CertUsername::Missing,
        };
    }

    /// Where the connection's user name comes from.
    pub fn cert_username(&self) -> &CertUsername {
        &self.state.cert_username
    }

    /// The socket and the TLS state, to hand the connection to another shard.
    pub fn into_parts(self) -> (TcpStream, TlsState) {
        (self.tcp, self.state)
    }

    /// A connection from its socket and TLS state (after a hand-off).
    pub fn from_parts(tcp: TcpStream, state: TlsState) -> TlsStream {
        TlsStream { tcp, state }
    }
}
