//! One MQTT client connection: framed reads through the project's codec, and a write
//! buffer that collects every packet of a round so that each round costs one write.

use std::fmt;
use std::io;
use std::net::{IpAddr, Shutdown, SocketAddr};
use std::time::Duration;

use bytes::{Buf, BytesMut};
use futures_lite::{future, AsyncReadExt, AsyncWriteExt};
use glommio::net::TcpStream;
use glommio::timer::Timer;
use ringmq::protocol::{
    decode, ConnAck, Connect, DecodeError, Decoded, Disconnect, EncodeError, Packet,
    ProtocolVersion, ReasonCode, MAX_PACKET_BYTES,
};

use crate::clock;
use crate::local::{Local, Slot};
use crate::shared::Phase;
use crate::socket;

/// How long a closing client waits for the broker to close its side after DISCONNECT.
const CLOSE_WAIT: Duration = Duration::from_secs(1);

/// Why a connection failed.
#[derive(Debug)]
pub enum ConnError {
    Io(io::Error),
    Decode(DecodeError),
    Encode(EncodeError),
    /// The broker closed the connection.
    Closed,
    TimedOut(&'static str),
    /// CONNACK with a failure reason code.
    Refused(ReasonCode),
    /// A packet that has no place here.
    Unexpected(String),
    /// The broker refused a request (e.g. a SUBACK failure code).
    Rejected(String),
    /// A connect failure, already counted and reported by the thread.
    Reported,
}

impl fmt::Display for ConnError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ConnError::Io(e) => write!(f, "I/O error: {e}"),
            ConnError::Decode(e) => write!(f, "malformed packet from the broker: {e}"),
            ConnError::Encode(e) => write!(f, "cannot encode: {e}"),
            ConnError::Closed => f.write_str("connection closed by the broker"),
            ConnError::TimedOut(what) => write!(f, "timed out waiting for {what}"),
            ConnError::Refused(r) => write!(f, "CONNECT refused: {r:?}"),
            ConnError::Unexpected(what) => write!(f, "unexpected {what}"),
            ConnError::Rejected(what) => write!(f, "refused: {what}"),
            ConnError::Reported => f.write_str("connect failed"),
        }
    }
}

impl From<io::Error> for ConnError {
    fn from(e: io::Error) -> Self {
        ConnError::Io(e)
    }
}

impl From<glommio::GlommioError<()>> for ConnError {
    fn from(e: glommio::GlommioError<()>) -> Self {
        ConnError::Io(e.into())
    }
}

impl From<DecodeError> for ConnError {
    fn from(e: DecodeError) -> Self {
        ConnError::Decode(e)
    }
}

impl From<EncodeError> for ConnError {
    fn from(e: EncodeError) -> Self {
        ConnError::Encode(e)
    }
}

/// An accepted MQTT connection.
pub struct Conn {
    stream: TcpStream,
    /// Where the socket reads land before they join `rbuf`; its size bounds one read.
    scratch: Box<[u8]>,
    rbuf: BytesMut,
    wbuf: BytesMut,
    pub version: ProtocolVersion,
    /// When the last write went out (keep-alive).
    pub last_write_ns: u64,
}

impl Conn {
    /// Opens TCP from `source`, sends `connect` and waits for a successful CONNACK, all
    /// within `timeout`.
    pub async fn connect(
        target: SocketAddr,
        source: Option<IpAddr>,
        connect: Connect,
        read_bytes: usize,
        timeout: Duration,
    ) -> Result<(Conn, ConnAck), ConnError> {
        let stream = socket::start_connect(target, source)?;
        let mut conn = Conn {
            stream,
            scratch: vec![0u8; read_bytes.max(64)].into_boxed_slice(),
            rbuf: BytesMut::new(),
            wbuf: BytesMut::with_capacity(256),
            version: connect.protocol,
            last_write_ns: 0,
        };
        conn.push(&Packet::Connect(Box::new(connect)))?;
        let handshake = async {
            conn.flush().await?;
            match conn.recv().await? {
                Packet::ConnAck(ack) if ack.reason.is_success() => Ok(*ack),
                Packet::ConnAck(ack) => Err(ConnError::Refused(ack.reason)),
                other => Err(ConnError::Unexpected(format!(
                    "{} before CONNACK",
                    other.packet_type()
                ))),
            }
        };
        let ack = with_timeout(timeout, "CONNACK", handshake).await?;
        Ok((conn, ack))
    }

    /// Appends `packet` to the write buffer; nothing is sent until [`Conn::flush`].
    pub fn push(&mut self, packet: &Packet) -> Result<(), ConnError> {
        packet.encode(self.version, &mut self.wbuf)?;
        Ok(())
    }

    /// The write buffer, for callers that patch what they just encoded.
    pub fn wbuf_mut(&mut self) -> &mut BytesMut {
        &mut self.wbuf
    }

    pub fn has_output(&self) -> bool {
        !self.wbuf.is_empty()
    }

    /// Writes everything buffered, in one write when the socket takes it. Unbounded: for
    /// the handshakes, which run under a time-out; the run's loops use [`flush`].
    pub async fn flush(&mut self) -> Result<(), ConnError> {
        while self.has_output() {
            self.write_some().await?;
        }
        Ok(())
    }

    /// Writes what the socket takes of the buffered output. Cancel-safe: what was written
    /// leaves the buffer, the rest stays for the next call.
    pub async fn write_some(&mut self) -> Result<(), ConnError> {
        let n = self.stream.write(&self.wbuf).await?;
        if n == 0 {
            return Err(ConnError::Closed);
        }
        self.wbuf.advance(n);
        if self.wbuf.is_empty() {
            self.last_write_ns = clock::now_ns();
        }
        Ok(())
    }

    /// Reads what the socket has (waiting for at least one byte). Cancel-safe: bytes are
    /// only taken from the socket when the read completes.
    pub async fn fill(&mut self) -> Result<(), ConnError> {
        let n = self.stream.read(&mut self.scratch).await?;
        let data = self.scratch.get(..n).unwrap_or_default();
        if data.is_empty() {
            return Err(ConnError::Closed);
        }
        self.rbuf.extend_from_slice(data);
        Ok(())
    }

    /// Reads without waiting: `Ok(false)` when nothing was there.
    pub async fn try_fill(&mut self) -> Result<bool, ConnError> {
        match future::poll_once(self.fill()).await {
            Some(r) => r.map(|()| true),
            None => Ok(false),
        }
    }

    /// The next whole packet already read, if any.
    pub fn next_packet(&mut self) -> Result<Option<Packet>, ConnError> {
        match decode(&mut self.rbuf, Some(self.version), MAX_PACKET_BYTES)? {
            Decoded::Packet(p) => Ok(Some(p)),
            Decoded::Incomplete { .. } => Ok(None),
        }
    }

    /// The next packet, reading as long as needed.
    pub async fn recv(&mut self) -> Result<Packet, ConnError> {
        loop {
            if let Some(p) = self.next_packet()? {
                return Ok(p);
            }
            self.fill().await?;
        }
    }

    /// Sends DISCONNECT (normal), closes the write side and waits briefly for the broker to
    /// close too, so that the broker sees a clean end and not a reset. Bounded by
    /// `CLOSE_WAIT` however slowly the broker reads.
    pub async fn disconnect(mut self) {
        if self
            .push(&Packet::Disconnect(Disconnect::new(ReasonCode::Success)))
            .is_err()
        {
            return;
        }
        let close = async {
            self.flush().await?;
            let _ = self.stream.shutdown(Shutdown::Write).await;
            loop {
                self.fill().await?;
                self.rbuf.clear();
            }
        };
        let _: Result<(), ConnError> = with_timeout(CLOSE_WAIT, "close", close).await;
    }
}

/// Writes `conn`'s buffered output unless the run reaches `Finish` or `deadline_ns` passes
/// first: `Ok(true)` when everything was written, `Ok(false)` when the rest is still
/// buffered (the broker stopped reading). A write that completes at once costs no timer.
pub async fn flush(
    local: &Local,
    slot: &Slot,
    conn: &mut Conn,
    deadline_ns: u64,
) -> Result<bool, ConnError> {
    loop {
        if !conn.has_output() {
            return Ok(true);
        }
        if let Some(r) = future::poll_once(conn.write_some()).await {
            r?;
            continue;
        }
        if local.phase() >= Phase::Finish || clock::now_ns() >= deadline_ns {
            return Ok(false);
        }
        let wake = async {
            if deadline_ns == u64::MAX {
                slot.wait().await;
            } else {
                let until = clock::until(deadline_ns);
                future::or(slot.wait(), async {
                    Timer::new(until).await;
                })
                .await;
            }
            Ok(())
        };
        future::or(conn.write_some(), wake).await?;
    }
}

/// `fut`, or `TimedOut(what)` after `timeout`.
pub async fn with_timeout<T>(
    timeout: Duration,
    what: &'static str,
    fut: impl std::future::Future<Output = Result<T, ConnError>>,
) -> Result<T, ConnError> {
    future::or(fut, async {
        Timer::new(timeout).await;
        Err(ConnError::TimedOut(what))
    })
    .await
}
