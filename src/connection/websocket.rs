//! MQTT over WebSocket (RFC 6455), on a plain or TLS connection.
//!
//! The HTTP/1.1 Upgrade handshake is done once, before the CONNECT is read. After it the
//! stream carries frames: the client's are masked, binary, and their payloads are simply
//! the MQTT byte stream (a packet may span frames, a frame may hold several packets), so
//! reads hand the unmasked payload bytes to the ordinary MQTT decoder. Each write of the
//! connection goes out as one unmasked binary frame.
//!
//! Control frames are answered from the read side: a ping's pong and the close reply are
//! queued in a small bounded buffer and sent as the socket takes them. Everything the
//! framing holds between reads (bytes read but not yet unmasked, the frame in progress,
//! queued control frames) is [`WsState`], which moves with the connection on a hand-off.

use std::future::poll_fn;
use std::io;
use std::task::{Context, Poll};

use base64::Engine as _;

use super::transport::Transport;

/// The GUID RFC 6455 appends to the client's key before hashing it.
const GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// Most bytes of a handshake request (request line and headers); more is refused.
pub const HANDSHAKE_BYTES_MAX: usize = 8192;

/// Queued control frames beyond this stop the reading of more frames until they are sent:
/// a client that sends pings and does not read the pongs cannot grow the queue.
const CONTROL_QUEUE_MAX: usize = 4096;

/// Larger read and write buffers are freed once empty rather than kept for the next burst.
const BUFFER_KEPT_MAX: usize = 4096;

/// Close status codes (RFC 6455 section 7.4.1).
const CLOSE_NORMAL: u16 = 1000;
const CLOSE_PROTOCOL_ERROR: u16 = 1002;
const CLOSE_UNSUPPORTED_DATA: u16 = 1003;
const CLOSE_TOO_BIG: u16 = 1009;

/// Subprotocols taken, in order of preference: `mqtt` (MQTT 3.1.1 and 5.0), and
/// `mqttv3.1`, which some MQTT 3.1 clients still ask for.
const SUBPROTOCOLS: [&str; 2] = ["mqtt", "mqttv3.1"];

/// The data frame whose payload is being read.
#[derive(Debug, Clone, Copy)]
struct Frame {
    remaining: u64,
    mask: [u8; 4],
    /// Payload bytes of this frame already unmasked (the mask's position).
    done: u64,
}

/// The framing state of a WebSocket connection, between reads.
#[derive(Debug)]
pub struct WsState {
    /// Bytes read from the socket; those from `pos` on are not yet taken apart. Consumed
    /// bytes are skipped, not moved: a read full of tiny frames costs no quadratic copying.
    raw: Vec<u8>,
    pos: usize,
    /// The data frame in progress, if its header has been read.
    frame: Option<Frame>,
    /// Inside a fragmented binary message: the next data frame must be a continuation.
    fragmented: bool,
    /// Control frames (pong, close) waiting to be sent.
    out: Vec<u8>,
    /// A close frame was received or queued: nothing more is read.
    closing: bool,
    close_queued: bool,
    /// Largest data frame payload accepted.
    frame_max: u64,
    /// Scratch for outgoing data frames.
    wbuf: Vec<u8>,
}

impl WsState {
    fn new(frame_max: u64, leftover: Vec<u8>) -> WsState {
        WsState {
            raw: leftover,
            pos: 0,
            frame: None,
            fragmented: false,
            out: Vec::new(),
            closing: false,
            close_queued: false,
            frame_max,
            wbuf: Vec::new(),
        }
    }

    fn queue_close(&mut self, code: u16) {
        if !self.close_queued {
            self.close_queued = true;
            push_header(&mut self.out, 0x8, 2);
            self.out.extend_from_slice(&code.to_be_bytes());
        }
        self.closing = true;
    }

    /// Takes apart the frames in `raw` until payload bytes are ready (`Ok(true)`), more
    /// bytes are needed (`Ok(false)`), or the client broke the protocol (`Err`: a close
    /// frame is queued).
    fn advance(&mut self) -> Result<bool, ()> {
        loop {
            if let Some(f) = &self.frame {
                if f.remaining == 0 {
                    self.frame = None;
                    continue;
                }
                return Ok(self.pos < self.raw.len());
            }
            if self.closing || self.out.len() > CONTROL_QUEUE_MAX {
                return Ok(false);
            }
            let Some(header) = parse_header(self.unread()) else {
                return Ok(false);
            };
            let header = match header {
                Ok(h) => h,
                Err(code) => {
                    self.queue_close(code);
                    return Err(());
                }
            };
            match header.opcode {
                0x0 | 0x2 => {
                    // A continuation outside a fragmented message, or a new message inside
                    // one, breaks the protocol.
                    if (header.opcode == 0x0) != self.fragmented {
                        self.queue_close(CLOSE_PROTOCOL_ERROR);
                        return Err(());
                    }
                    if header.len > self.frame_max {
                        self.queue_close(CLOSE_TOO_BIG);
                        return Err(());
                    }
                    self.fragmented = !header.fin;
                    self.consume(header.header_len);
                    self.frame = Some(Frame {
                        remaining: header.len,
                        mask: header.mask,
                        done: 0,
                    });
                }
                0x1 => {
                    // MQTT is binary: text frames are refused [MQTT-6.0.0-1].
                    self.queue_close(CLOSE_UNSUPPORTED_DATA);
                    return Err(());
                }
                0x8..=0xA => {
                    // Control frames are short (checked by parse_header) and taken whole.
                    let total = header.header_len + header.len as usize;
                    let Some(payload) = self.unread().get(header.header_len..total) else {
                        return Ok(false);
                    };
                    let mut payload = payload.to_vec();
                    unmask(&mut payload, header.mask, 0);
                    self.consume(total);
                    match header.opcode {
                        0x9 => {
                            push_header(&mut self.out, 0xA, payload.len());
                            self.out.extend_from_slice(&payload);
                        }
                        0x8 => {
                            // Echo the status code, if any; then nothing more is read.
                            let code = match payload.get(..2) {
                                Some(&[a, b]) => u16::from_be_bytes([a, b]),
                                _ => CLOSE_NORMAL,
                            };
                            self.queue_close(code);
                        }
                        _ => {} // an unsolicited pong needs no answer
                    }
                }
                _ => {
                    self.queue_close(CLOSE_PROTOCOL_ERROR);
                    return Err(());
                }
            }
        }
    }

    /// Copies unmasked payload bytes of the frame in progress into `buf`.
    fn take_payload(&mut self, buf: &mut [u8]) -> usize {
        let Some(f) = &mut self.frame else {
            return 0;
        };
        let n = buf
            .len()
            .min(self.raw.len() - self.pos)
            .min(usize::try_from(f.remaining).unwrap_or(usize::MAX));
        let unread = self.raw.get(self.pos..).unwrap_or_default();
        let (Some(dst), Some(src)) = (buf.get_mut(..n), unread.get(..n)) else {
            return 0;
        };
        dst.copy_from_slice(src);
        unmask(dst, f.mask, f.done);
        f.remaining -= n as u64;
        f.done += n as u64;
        self.consume(n);
        n
    }

    fn unread(&self) -> &[u8] {
        self.raw.get(self.pos..).unwrap_or_default()
    }

    fn consume(&mut self, n: usize) {
        self.pos += n;
        if self.pos >= self.raw.len() {
            self.pos = 0;
            // An idle connection keeps no large buffer.
            if self.raw.capacity() > BUFFER_KEPT_MAX {
                self.raw = Vec::new();
            } else {
                self.raw.clear();
            }
        }
    }

    /// Appends bytes read from the socket (moving the unread rest to the front first).
    fn append(&mut self, bytes: &[u8]) {
        if self.pos > 0 {
            self.raw.drain(..self.pos);
            self.pos = 0;
        }
        self.raw.extend_from_slice(bytes);
    }
}

/// A frame header read off the wire.
struct Header {
    fin: bool,
    opcode: u8,
    mask: [u8; 4],
    len: u64,
    header_len: usize,
}

/// The frame header at the start of `raw`: `None` if incomplete, `Err(close code)` if it
/// breaks the protocol.
fn parse_header(raw: &[u8]) -> Option<Result<Header, u16>> {
    let (&b0, &b1) = (raw.first()?, raw.get(1)?);
    let fin = b0 & 0x80 != 0;
    let opcode = b0 & 0x0F;
    // No extension was negotiated: the reserved bits must be clear. Client frames must be
    // masked (RFC 6455 section 5.1).
    if b0 & 0x70 != 0 || b1 & 0x80 == 0 {
        return Some(Err(CLOSE_PROTOCOL_ERROR));
    }
    let (len, at) = match b1 & 0x7F {
        126 => (
            u64::from(u16::from_be_bytes([*raw.get(2)?, *raw.get(3)?])),
            4,
        ),
        127 => {
            let bytes: [u8; 8] = raw.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), 10)
        }
        n => (u64::from(n), 2),
    };
    if opcode >= 0x8 && (!fin || len > 125) {
        return Some(Err(CLOSE_PROTOCOL_ERROR));
    }
    let mask: [u8; 4] = raw.get(at..at + 4)?.try_into().ok()?;
    Some(Ok(Header {
        fin,
        opcode,
        mask,
        len,
        header_len: at + 4,
    }))
}

/// Unmasks `data`, the payload bytes from offset `from` on.
fn unmask(data: &mut [u8], mask: [u8; 4], from: u64) {
    let start = (from % 4) as usize;
    for (i, b) in data.iter_mut().enumerate() {
        *b ^= mask[(start + i) % 4];
    }
}

/// Appends the header of an unmasked, final server frame.
fn push_header(out: &mut Vec<u8>, opcode: u8, len: usize) {
    out.push(0x80 | opcode);
    if len < 126 {
        out.push(len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// A WebSocket connection over a plain or TLS transport.
pub struct WsStream {
    inner: Transport,
    state: Box<WsState>,
}

impl WsStream {
    /// Sends queued control frames as far as the socket takes them now.
    fn poll_send_control(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !self.state.out.is_empty() {
            match self.inner.poll_write_some(cx, &self.state.out) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Poll::Ready(Ok(n)) => {
                    self.state.out.drain(..n);
                }
                Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                Poll::Pending => return Poll::Pending,
            }
        }
        Poll::Ready(Ok(()))
    }

    /// Reads MQTT bytes (unmasked frame payload) into `buf`; `Ready(Ok(0))` at the end of
    /// the stream or after a close frame.
    pub fn poll_read(&mut self, cx: &mut Context<'_>, buf: &mut [u8]) -> Poll<io::Result<usize>> {
        if buf.is_empty() {
            return Poll::Ready(Ok(0));
        }
        loop {
            if let Poll::Ready(Err(e)) = self.poll_send_control(cx) {
                return Poll::Ready(Err(e));
            }
            match self.state.advance() {
                Err(()) => {
                    let _ = self.poll_send_control(cx);
                    return Poll::Ready(Err(io::Error::new(
                        io::ErrorKind::InvalidData,
                        "WebSocket protocol error",
                    )));
                }
                Ok(true) => return Poll::Ready(Ok(self.state.take_payload(buf))),
                Ok(false) => {
                    if let Poll::Ready(Err(e)) = self.poll_send_control(cx) {
                        return Poll::Ready(Err(e));
                    }
                }
            }
            if self.state.closing {
                let _ = self.poll_send_control(cx);
                return Poll::Ready(Ok(0));
            }
            if self.state.out.len() > CONTROL_QUEUE_MAX {
                // Waits for the socket to take the queued control frames.
                return Poll::Pending;
            }
            match self.inner.poll_read(cx, buf) {
                Poll::Ready(Ok(0)) => return Poll::Ready(Ok(0)),
                Poll::Ready(Ok(n)) => {
                    self.state.append(buf.get(..n).unwrap_or_default());
                }
                other => return other,
            }
        }
    }

    /// Sends `buf` as one binary frame (after any queued control frames).
    pub async fn write_all(&mut self, buf: &[u8]) -> io::Result<()> {
        let state = &mut *self.state;
        state.wbuf.clear();
        state.wbuf.append(&mut state.out);
        push_header(&mut state.wbuf, 0x2, buf.len());
        state.wbuf.extend_from_slice(buf);
        let inner = &mut self.inner;
        let mut sent = 0;
        let result = poll_fn(|cx| {
            while let Some(rest) = state.wbuf.get(sent..).filter(|r| !r.is_empty()) {
                match inner.poll_write_some(cx, rest) {
                    Poll::Ready(Ok(0)) => {
                        return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
                    }
                    Poll::Ready(Ok(n)) => sent += n,
                    Poll::Ready(Err(e)) => return Poll::Ready(Err(e)),
                    Poll::Pending => return Poll::Pending,
                }
            }
            inner.poll_flush(cx)
        })
        .await;
        if state.wbuf.capacity() > BUFFER_KEPT_MAX {
            state.wbuf = Vec::new();
        }
        result
    }

    pub async fn flush(&mut self) -> io::Result<()> {
        poll_fn(|cx| self.poll_send_control(cx)).await?;
        poll_fn(|cx| self.inner.poll_flush(cx)).await
    }

    /// Sends a close frame if the socket takes it at once, then closes the transport.
    pub async fn close(&mut self) {
        self.state.queue_close(CLOSE_NORMAL);
        poll_fn(|cx| {
            let _ = self.poll_send_control(cx);
            Poll::Ready(())
        })
        .await;
        self.inner.close().await;
    }

    pub fn inner(&self) -> &Transport {
        &self.inner
    }

    pub fn into_parts(self) -> (Transport, Box<WsState>) {
        (self.inner, self.state)
    }

    pub fn from_parts(inner: Transport, state: Box<WsState>) -> WsStream {
        WsStream { inner, state }
    }
}

/// Why a handshake was refused (answered with HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum HandshakeError {
    #[error("connection error: {0}")]
    Io(#[from] io::Error),
    #[error("bad WebSocket handshake: {0}")]
    Bad(&'static str),
}

/// Reads the client's Upgrade request and answers it: a WebSocket stream on success; a
/// `400 Bad Request` (and the error) if the request is no valid WebSocket handshake for
/// MQTT. `frame_max` bounds the data frames the client may send.
pub async fn accept(mut inner: Transport, frame_max: u64) -> Result<WsStream, HandshakeError> {
    let mut request = Vec::new();
    let mut chunk = [0u8; 1024];
    let end = loop {
        if let Some(at) = find(&request, b"\r\n\r\n") {
            break at + 4;
        }
        if request.len() >= HANDSHAKE_BYTES_MAX {
            return Err(refuse(&mut inner, "request headers too long").await);
        }
        let room = (HANDSHAKE_BYTES_MAX - request.len()).min(chunk.len());
        let buf = chunk.get_mut(..room).unwrap_or_default();
        let n = poll_fn(|cx| inner.poll_read(cx, buf)).await?;
        if n == 0 {
            return Err(io::Error::from(io::ErrorKind::UnexpectedEof).into());
        }
        request.extend_from_slice(buf.get(..n).unwrap_or_default());
    };
    let leftover = request.split_off(end);
    let response = match respond(&request) {
        Ok(r) => r,
        Err(why) => return Err(refuse(&mut inner, why).await),
    };
    inner.write_all(response.as_bytes()).await?;
    inner.flush().await?;
    Ok(WsStream {
        inner,
        state: Box::new(WsState::new(frame_max, leftover)),
    })
}

async fn refuse(inner: &mut Transport, why: &'static str) -> HandshakeError {
    let body = format!("{why}\n");
    let response = format!(
        "HTTP/1.1 400 Bad Request\r\nConnection: close\r\nContent-Type: text/plain\r\n\
         Sec-WebSocket-Version: 13\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    let _ = inner.write_all(response.as_bytes()).await;
    let _ = inner.flush().await;
    inner.close().await;
    HandshakeError::Bad(why)
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// The `101 Switching Protocols` answer to a request (the bytes up to its blank line).
fn respond(request: &[u8]) -> Result<String, &'static str> {
    let text = std::str::from_utf8(request).map_err(|_| "request is not UTF-8")?;
    let mut lines = text.split("\r\n");
    let request_line = lines.next().unwrap_or_default();
    let mut parts = request_line.split(' ');
    if parts.next() != Some("GET") {
        return Err("method must be GET");
    }
    // Any request path is taken.
    if parts.next().map_or(true, str::is_empty) || parts.next() != Some("HTTP/1.1") {
        return Err("request line must be GET <path> HTTP/1.1");
    }
    let (mut upgrade, mut connection, mut version) = (false, false, false);
    let mut key = None;
    let mut protocols: Vec<&str> = Vec::new();
    for line in lines.filter(|l| !l.is_empty()) {
        let (name, value) = line.split_once(':').ok_or("malformed header line")?;
        let value = value.trim();
        let tokens = || value.split(',').map(str::trim);
        match name.trim().to_ascii_lowercase().as_str() {
            "upgrade" => upgrade |= tokens().any(|t| t.eq_ignore_ascii_case("websocket")),
            "connection" => connection |= tokens().any(|t| t.eq_ignore_ascii_case("upgrade")),
            "sec-websocket-version" => version = value == "13",
            "sec-websocket-key" => key = Some(value),
            "sec-websocket-protocol" => protocols.extend(tokens()),
            _ => {}
        }
    }
    if !upgrade || !connection {
        return Err("needs Upgrade: websocket and Connection: Upgrade");
    }
    if !version {
        return Err("needs Sec-WebSocket-Version: 13");
    }
    let key = key.ok_or("needs Sec-WebSocket-Key")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|_| "Sec-WebSocket-Key is not base64")?;
    if decoded.len() != 16 {
        return Err("Sec-WebSocket-Key must encode 16 bytes");
    }
    let protocol = SUBPROTOCOLS
        .iter()
        .find(|p| protocols.contains(p))
        .ok_or("needs Sec-WebSocket-Protocol: mqtt")?;
    Ok(format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\nSec-WebSocket-Protocol: {protocol}\r\n\r\n",
        accept_key(key)
    ))
}

/// `Sec-WebSocket-Accept` for a client's key: base64(SHA-1(key + GUID)).
pub fn accept_key(key: &str) -> String {
    let mut input = key.as_bytes().to_vec();
    input.extend_from_slice(GUID);
    base64::engine::general_purpose::STANDARD.encode(sha1(&input))
}

/// SHA-1 (FIPS 180-4). Only for the handshake's accept key, where RFC 6455 names it; it
/// protects nothing.
fn sha1(data: &[u8]) -> [u8; 20] {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let mut msg = data.to_vec();
    msg.push(0x80);
    while msg.len() % 64 != 56 {
        msg.push(0);
    }
    msg.extend_from_slice(&((data.len() as u64) * 8).to_be_bytes());
    for block in msg.chunks_exact(64) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(*wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (x, y) in h.iter_mut().zip([a, b, c, d, e]) {
            *x = x.wrapping_add(y);
        }
    }
    let mut out = [0u8; 20];
    for (o, x) in out.chunks_exact_mut(4).zip(h) {
        o.copy_from_slice(&x.to_be_bytes());
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_sample() {
        // RFC 6455 section 1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn sha1_known_answers() {
        let hex = |d: [u8; 20]| d.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(hex(sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        let long = vec![b'a'; 1000];
        assert_eq!(hex(sha1(&long)), "291e9a6c66994949b57ba5e650361e98fc36b1ba");
    }

    fn masked(opcode: u8, fin: bool, payload: &[u8]) -> Vec<u8> {
        let mask = [1, 2, 3, 4];
        let mut out = vec![(u8::from(fin) << 7) | opcode];
        assert!(payload.len() < 126);
        out.push(0x80 | payload.len() as u8);
        out.extend_from_slice(&mask);
        out.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        out
    }

    fn read_all(state: &mut WsState) -> Result<Vec<u8>, ()> {
        let mut got = Vec::new();
        let mut buf = [0u8; 3];
        while state.advance()? {
            let n = state.take_payload(&mut buf);
            got.extend_from_slice(&buf[..n]);
        }
        Ok(got)
    }

    #[test]
    fn fragments_and_pings_between_them() {
        let mut raw = masked(0x2, false, b"hello ");
        raw.extend(masked(0x9, true, b"p"));
        raw.extend(masked(0x0, true, b"world"));
        let mut state = WsState::new(100, raw);
        assert_eq!(read_all(&mut state).unwrap(), b"hello world");
        assert_eq!(state.out, [0x8A, 1, b'p']);
    }

    #[test]
    fn many_small_frames_in_one_read() {
        let mut raw = Vec::new();
        for i in 0..1000u16 {
            raw.extend(masked(0x2, true, &i.to_be_bytes()));
        }
        let mut state = WsState::new(100, raw);
        let want: Vec<u8> = (0..1000u16).flat_map(u16::to_be_bytes).collect();
        assert_eq!(read_all(&mut state).unwrap(), want);
        assert_eq!((state.pos, state.raw.len()), (0, 0));
    }

    #[test]
    fn protocol_errors_queue_a_close() {
        for (raw, code) in [
            (masked(0x1, true, b"text"), 1003u16),
            (masked(0x0, true, b"x"), 1002),
            (vec![0x82, 0x01, b'x'], 1002),
            (masked(0x2, true, &[0; 101]), 1009),
            (masked(0x9, false, b""), 1002),
        ] {
            let mut state = WsState::new(100, raw);
            assert!(read_all(&mut state).is_err());
            assert_eq!(state.out[..2], [0x88, 2]);
            assert_eq!(state.out[2..4], code.to_be_bytes());
        }
    }

    #[test]
    fn incomplete_header_waits() {
        let full = masked(0x2, true, b"abc");
        for cut in 0..full.len() {
            let mut state = WsState::new(100, full[..cut].to_vec());
            let got = read_all(&mut state).unwrap();
            assert!(b"abc".starts_with(&got));
        }
    }
}
