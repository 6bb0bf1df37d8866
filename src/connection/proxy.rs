//! The PROXY protocol (v1 text and v2 binary, as HAProxy specifies it): a load balancer in
//! front of a listener with `proxy_protocol = true` sends one header before the client's
//! bytes, and the header's source address is the client's address from then on.
//!
//! The parser is a pure function over the bytes read so far, so that it can be tested (and
//! fuzzed) without a socket; [`read_header`] drives it over a TCP stream and takes exactly
//! the header's bytes from the socket, never more: what follows (MQTT, or a TLS handshake)
//! is left for the transport.

use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use futures_lite::AsyncReadExt;
use glommio::net::TcpStream;

/// A v1 header is at most 107 bytes, CR LF included (the protocol's own bound).
pub const V1_MAX: usize = 107;
/// The v2 signature.
const V2_SIG: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";
const V1_PREFIX: &[u8; 6] = b"PROXY ";
/// The v2 address-and-TLV part we accept: the addresses (at most 216 bytes, Unix sockets)
/// and room for the TLVs load balancers add (AWS VPC endpoint id, Azure link id, TLS
/// details). Bigger is refused rather than buffered: a header costs at most this much.
pub const V2_BODY_MAX: usize = 2048;

/// What a complete header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Header {
    /// The client's address: `None` for a v2 LOCAL command (the balancer's own health
    /// check), a v1 `UNKNOWN`, or a v2 family other than TCP over IPv4/IPv6; the socket's
    /// own peer address is used then.
    pub source: Option<SocketAddr>,
}

/// How far parsing got.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed {
    /// A complete header of `len` bytes (the bytes after it are not the header's).
    Done { header: Header, len: usize },
    /// More is needed: exactly this many more bytes (v2, or the start of either version).
    Exactly(usize),
    /// More of a v1 line is needed, up to and including its LF, at most `V1_MAX` in all.
    Line,
}

/// Why the bytes are no PROXY header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ProxyError {
    #[error("the connection does not start with a PROXY protocol signature")]
    NoSignature,
    #[error("PROXY v1 header longer than {V1_MAX} bytes")]
    V1TooLong,
    #[error("malformed PROXY v1 header")]
    V1Malformed,
    #[error("PROXY v2 header with version {0} (only 2 is defined)")]
    V2Version(u8),
    #[error("PROXY v2 header with command {0} (only LOCAL and PROXY are defined)")]
    V2Command(u8),
    #[error("PROXY v2 address block of {0} bytes (more than {V2_BODY_MAX})")]
    V2TooLong(usize),
    #[error("PROXY v2 address block shorter than its address family needs")]
    V2Short,
}

/// Parses the header at the start of `buf`.
pub fn parse(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let start = buf.len().min(V1_PREFIX.len());
    let v1 = buf.get(..start) == V1_PREFIX.get(..start);
    let v2 = buf.get(..buf.len().min(V2_SIG.len())) == V2_SIG.get(..buf.len().min(V2_SIG.len()));
    if !v1 && !v2 {
        return Err(ProxyError::NoSignature);
    }
    if buf.len() < V1_PREFIX.len() {
        return Ok(Parsed::Exactly(V1_PREFIX.len() - buf.len()));
    }
    if v1 {
        parse_v1(buf)
    } else {
        parse_v2(buf)
    }
}

fn parse_v1(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(lf) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() >= V1_MAX {
            Err(ProxyError::V1TooLong)
        } else {
            Ok(Parsed::Line)
        };
    };
    let len = lf + 1;
    if len > V1_MAX {
        return Err(ProxyError::V1TooLong);
    }
    let line = buf
        .get(V1_PREFIX.len()..lf)
        .and_then(|l| l.strip_suffix(b"\r"))
        .ok_or(ProxyError::V1Malformed)?;
    let line = std::str::from_utf8(line).map_err(|_| ProxyError::V1Malformed)?;
    let mut words = line.split(' ');
    let family = words.next().ok_or(ProxyError::V1Malformed)?;
    if family == "UNKNOWN" {
        // The sender may add anything after UNKNOWN; it is not used.
        return Ok(Parsed::Done {
            header: Header { source: None },
            len,
        });
    }
    let fields: Vec<&str> = words.collect();
    let [src, dst, sport, dport] = fields.as_slice() else {
        return Err(ProxyError::V1Malformed);
    };
    let (src, dst): (IpAddr, IpAddr) = match family {
        "TCP4" => (
            IpAddr::V4(src.parse().map_err(|_| ProxyError::V1Malformed)?),
            IpAddr::V4(dst.parse().map_err(|_| ProxyError::V1Malformed)?),
        ),
        "TCP6" => (
            IpAddr::V6(src.parse().map_err(|_| ProxyError::V1Malformed)?),
            IpAddr::V6(dst.parse().map_err(|_| ProxyError::V1Malformed)?),
        ),
        _ => return Err(ProxyError::V1Malformed),
    };
    let _ = dst;
    let sport = port(sport)?;
    port(dport)?;
    Ok(Parsed::Done {
        header: Header {
            source: Some(SocketAddr::new(src, sport)),
        },
        len,
    })
}

/// A v1 port: decimal, no sign, no leading zero (the specification's form).
fn port(s: &str) -> Result<u16, ProxyError> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) || (s.len() > 1 && s.starts_with('0'))
    {
        return Err(ProxyError::V1Malformed);
    }
    s.parse().map_err(|_| ProxyError::V1Malformed)
}

fn parse_v2(buf: &[u8]) -> Result<Parsed, ProxyError> {
    let Some(fixed) = buf.get(..16) else {
        return Ok(Parsed::Exactly(16 - buf.len()));
    };
    let [ver_cmd, fam, hi, lo] = [fixed[12], fixed[13], fixed[14], fixed[15]];
    if ver_cmd >> 4 != 2 {
        return Err(ProxyError::V2Version(ver_cmd >> 4));
    }
    let command = ver_cmd & 0x0f;
    if command > 1 {
        return Err(ProxyError::V2Command(command));
    }
    let body_len = usize::from(u16::from_be_bytes([hi, lo]));
    if body_len > V2_BODY_MAX {
        return Err(ProxyError::V2TooLong(body_len));
    }
    let len = 16 + body_len;
    let Some(body) = buf.get(16..len) else {
        return Ok(Parsed::Exactly(len - buf.len()));
    };
    // LOCAL: the balancer speaks for itself; the address block, if any, is ignored.
    if command == 0 {
        return Ok(Parsed::Done {
            header: Header { source: None },
            len,
        });
    }
    // Family in the high nibble, transport in the low one; only STREAM (1) is TCP.
    let source = match (fam >> 4, fam & 0x0f) {
        (1, 1) => {
            let a = body.get(..12).ok_or(ProxyError::V2Short)?;
            let ip = Ipv4Addr::new(a[0], a[1], a[2], a[3]);
            Some(SocketAddr::new(ip.into(), u16::from_be_bytes([a[8], a[9]])))
        }
        (2, 1) => {
            let a = body.get(..36).ok_or(ProxyError::V2Short)?;
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&a[..16]);
            let ip = Ipv6Addr::from(octets);
            Some(SocketAddr::new(
                ip.into(),
                u16::from_be_bytes([a[32], a[33]]),
            ))
        }
        // UNSPEC, UDP, Unix sockets: no client address to use; the TLVs are skipped.
        _ => None,
    };
    Ok(Parsed::Done {
        header: Header { source },
        len,
    })
}

/// Why [`read_header`] failed.
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    #[error(transparent)]
    Bad(#[from] ProxyError),
    #[error("connection closed before the PROXY header ended")]
    Eof,
    #[error("{0}")]
    Io(#[from] io::Error),
}

/// Reads the PROXY header off `tcp`, taking exactly its bytes from the socket. The caller
/// bounds the time it may take.
pub async fn read_header(tcp: &mut TcpStream) -> Result<Header, ReadError> {
    let mut buf = Vec::with_capacity(64);
    loop {
        match parse(&buf)? {
            Parsed::Done { header, .. } => return Ok(header),
            Parsed::Exactly(n) => {
                let at = buf.len();
                buf.resize(at + n, 0);
                tcp.read_exact(&mut buf[at..]).await.map_err(eof)?;
            }
            Parsed::Line => {
                // Peek at what has arrived, and take it up to the line's end: bytes after
                // the LF belong to the client's protocol and must stay in the socket.
                let mut peeked = [0u8; V1_MAX];
                let room = V1_MAX - buf.len();
                let n = tcp
                    .peek(&mut peeked[..room])
                    .await
                    .map_err(io::Error::from)?;
                if n == 0 {
                    return Err(ReadError::Eof);
                }
                let take = peeked[..n]
                    .iter()
                    .position(|&b| b == b'\n')
                    .map_or(n, |lf| lf + 1);
                let at = buf.len();
                buf.resize(at + take, 0);
                tcp.read_exact(&mut buf[at..]).await.map_err(eof)?;
            }
        }
    }
}

fn eof(e: io::Error) -> ReadError {
    if e.kind() == io::ErrorKind::UnexpectedEof {
        ReadError::Eof
    } else {
        ReadError::Io(e)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn done(buf: &[u8]) -> (Option<SocketAddr>, usize) {
        match parse(buf) {
            Ok(Parsed::Done { header, len }) => (header.source, len),
            other => panic!("not a complete header: {other:?}"),
        }
    }

    fn v2(cmd: u8, fam: u8, body: &[u8]) -> Vec<u8> {
        let mut h = V2_SIG.to_vec();
        h.push(0x20 | cmd);
        h.push(fam);
        h.extend_from_slice(&u16::try_from(body.len()).unwrap_or(0).to_be_bytes());
        h.extend_from_slice(body);
        h
    }

    #[test]
    fn v1_tcp4_and_tcp6() {
        let h = b"PROXY TCP4 192.0.2.7 10.0.0.1 51234 1883\r\nMQTT";
        assert_eq!(
            done(h),
            (Some("192.0.2.7:51234".parse().unwrap()), h.len() - 4)
        );
        let h = b"PROXY TCP6 2001:db8::5 ::1 4000 1883\r\n";
        assert_eq!(
            done(h),
            (Some("[2001:db8::5]:4000".parse().unwrap()), h.len())
        );
    }

    #[test]
    fn v1_unknown_has_no_address() {
        assert_eq!(done(b"PROXY UNKNOWN\r\n"), (None, 15));
        assert_eq!(done(b"PROXY UNKNOWN ff 1.2.3.4 1 2\r\n").0, None);
    }

    #[test]
    fn v1_incomplete_asks_for_the_line() {
        assert_eq!(parse(b""), Ok(Parsed::Exactly(6)));
        assert_eq!(parse(b"PRO"), Ok(Parsed::Exactly(3)));
        assert_eq!(parse(b"PROXY TCP4 1.2.3.4"), Ok(Parsed::Line));
    }

    #[test]
    fn v1_malformed_is_refused() {
        for bad in [
            &b"PROXY TCP4 1.2.3.4 5.6.7.8 1 2\n"[..],
            b"PROXY TCP4 1.2.3.4 5.6.7.8 1\r\n",
            b"PROXY TCP4 ::1 ::1 1 2\r\n",
            b"PROXY TCP6 1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 65536 2\r\n",
            b"PROXY TCP4 1.2.3.4 5.6.7.8 01 2\r\n",
            b"PROXY TCP4  1.2.3.4 5.6.7.8 1 2\r\n",
            b"PROXY UDP4 1.2.3.4 5.6.7.8 1 2\r\n",
        ] {
            assert_eq!(parse(bad), Err(ProxyError::V1Malformed), "{bad:?}");
        }
        assert_eq!(parse(&[b'P'; 7]), Err(ProxyError::NoSignature));
        assert_eq!(parse(b"\x10\x0c\x00\x04MQTT"), Err(ProxyError::NoSignature));
        let mut long = b"PROXY UNKNOWN ".to_vec();
        long.resize(V1_MAX, b'x');
        assert_eq!(parse(&long), Err(ProxyError::V1TooLong));
    }

    #[test]
    fn v2_ipv4_ipv6_with_tlvs_skipped() {
        let mut body = vec![192, 0, 2, 9, 10, 0, 0, 1, 0xc3, 0x50, 0x07, 0x5b];
        body.extend_from_slice(&[0x04, 0x00, 0x02, b'h', b'i']); // a NOOP TLV
        let h = v2(1, 0x11, &body);
        assert_eq!(
            done(&h),
            (Some("192.0.2.9:50000".parse().unwrap()), h.len())
        );
        let mut body = vec![0u8; 36];
        body[0] = 0x20;
        body[1] = 0x01;
        body[15] = 7;
        body[32..34].copy_from_slice(&4242u16.to_be_bytes());
        let h = v2(1, 0x21, &body);
        assert_eq!(done(&h), (Some("[2001::7]:4242".parse().unwrap()), h.len()));
    }

    #[test]
    fn v2_local_and_other_families_have_no_address() {
        assert_eq!(done(&v2(0, 0x00, &[])), (None, 16));
        assert_eq!(done(&v2(0, 0x11, &[1; 12])).0, None);
        assert_eq!(done(&v2(1, 0x12, &[1; 12])).0, None); // UDP
        assert_eq!(done(&v2(1, 0x31, &[0; 216])).0, None); // Unix socket
    }

    #[test]
    fn v2_incomplete_asks_for_exactly_what_is_missing() {
        let h = v2(1, 0x11, &[1; 12]);
        assert_eq!(parse(&h[..6]), Ok(Parsed::Exactly(10)));
        assert_eq!(parse(&h[..16]), Ok(Parsed::Exactly(12)));
        assert_eq!(parse(&h[..20]), Ok(Parsed::Exactly(8)));
    }

    #[test]
    fn v2_bad_headers_are_refused() {
        let mut h = v2(1, 0x11, &[1; 12]);
        h[12] = 0x11;
        assert_eq!(parse(&h), Err(ProxyError::V2Version(1)));
        h[12] = 0x22;
        assert_eq!(parse(&h), Err(ProxyError::V2Command(2)));
        assert_eq!(parse(&v2(1, 0x11, &[1; 8])), Err(ProxyError::V2Short));
        assert_eq!(parse(&v2(1, 0x21, &[1; 12])), Err(ProxyError::V2Short));
        let mut h = v2(1, 0x11, &[]);
        h[14..16].copy_from_slice(&4000u16.to_be_bytes());
        assert_eq!(parse(&h), Err(ProxyError::V2TooLong(4000)));
    }

    proptest! {
        /// Any bytes: an answer, never a panic; a complete header never claims more bytes
        /// than were given, and "more needed" always asks for at least one.
        #[test]
        fn never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300), v in 0u8..3) {
            let mut buf = match v {
                0 => V1_PREFIX.to_vec(),
                1 => V2_SIG.to_vec(),
                _ => Vec::new(),
            };
            buf.extend_from_slice(&bytes);
            match parse(&buf) {
                Ok(Parsed::Done { len, .. }) => prop_assert!(len <= buf.len()),
                Ok(Parsed::Exactly(n)) => prop_assert!(n > 0),
                Ok(Parsed::Line) => prop_assert!(buf.len() < V1_MAX),
                Err(_) => {}
            }
        }
    }
}
