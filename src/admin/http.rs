//! A small HTTP/1.1 server for the admin listener: one accepting thread and a thread per
//! connection (at most [`CONNECTIONS_MAX`]; beyond it a connection gets 503 and is
//! closed), keep-alive, bounded requests, timeouts on every read and write. Requests are
//! parsed with `httparse`; what each one gets is the router's business.

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

/// Connections served at once.
pub const CONNECTIONS_MAX: usize = 32;
/// Largest request head (request line and headers).
pub const HEAD_BYTES_MAX: usize = 16 * 1024;
/// Largest request body (no endpoint takes one; a small one is read and ignored).
pub const BODY_BYTES_MAX: usize = 64 * 1024;
/// A connection idle this long between requests, or this slow to send one, is closed.
pub const READ_TIMEOUT: Duration = Duration::from_secs(30);
pub const WRITE_TIMEOUT: Duration = Duration::from_secs(10);
const HEADERS_MAX: usize = 64;

/// A parsed request.
#[derive(Debug)]
pub struct Request {
    pub method: String,
    /// The path, percent-decoded (e.g. `/api/v1/clients/a b`).
    pub path: String,
    /// Query parameters, percent-decoded, in order.
    pub query: Vec<(String, String)>,
    /// Headers (names lower-cased).
    pub headers: Vec<(String, String)>,
}

impl Request {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn param(&self, name: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

/// What a request gets.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub content_type: &'static str,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn new(status: u16, content_type: &'static str, body: impl Into<Vec<u8>>) -> Self {
        Response {
            status,
            content_type,
            headers: Vec::new(),
            body: body.into(),
        }
    }

    pub fn with_header(mut self, name: &'static str, value: impl Into<String>) -> Self {
        self.headers.push((name, value.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        401 => "Unauthorized",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        411 => "Length Required",
        413 => "Payload Too Large",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "Unknown",
    }
}

/// The router: what each request gets. Runs on the connection's thread.
pub type Handler = Arc<dyn Fn(&Request) -> Response + Send + Sync>;

/// A running server; [`Server::stop`] (or dropping it) ends the accepting thread.
pub struct Server {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Binds `addr` now (so that a bad address is an error at start-up) and serves it on
    /// a thread of its own.
    pub fn start(addr: SocketAddr, handler: Handler) -> io::Result<Server> {
        let listener = TcpListener::bind(addr)?;
        let addr = listener.local_addr()?;
        let stop = Arc::new(AtomicBool::new(false));
        let stopping = stop.clone();
        let thread = std::thread::Builder::new()
            .name("ringmq-admin".into())
            .spawn(move || accept_loop(listener, handler, stopping))?;
        Ok(Server {
            addr,
            stop,
            thread: Some(thread),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting (connections being served finish their request and close).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept.
        let _ = TcpStream::connect_timeout(&self.addr, Duration::from_secs(1));
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

fn accept_loop(listener: TcpListener, handler: Handler, stop: Arc<AtomicBool>) {
    let active = Arc::new(AtomicUsize::new(0));
    for stream in listener.incoming() {
        if stop.load(Ordering::SeqCst) {
            return;
        }
        let Ok(stream) = stream else {
            // EMFILE and the like: do not spin.
            std::thread::sleep(Duration::from_millis(10));
            continue;
        };
        let _ = stream.set_read_timeout(Some(READ_TIMEOUT));
        let _ = stream.set_write_timeout(Some(WRITE_TIMEOUT));
        let _ = stream.set_nodelay(true);
        if active.fetch_add(1, Ordering::SeqCst) >= CONNECTIONS_MAX {
            active.fetch_sub(1, Ordering::SeqCst);
            let busy = Response::new(
                503,
                "text/plain; charset=utf-8",
                "too many admin connections\n",
            );
            let _ = write_response(&stream, &busy, false, false);
            continue;
        }
        let (handler, stop, done) = (handler.clone(), stop.clone(), active.clone());
        let spawned = std::thread::Builder::new()
            .name("ringmq-admin-conn".into())
            .spawn(move || {
                serve_connection(stream, &*handler, &stop);
                done.fetch_sub(1, Ordering::SeqCst);
            });
        if spawned.is_err() {
            active.fetch_sub(1, Ordering::SeqCst);
        }
    }
}

/// Serves one connection's requests until it closes, asks to close, errs or idles out.
fn serve_connection(
    mut stream: TcpStream,
    handler: &dyn Fn(&Request) -> Response,
    stop: &AtomicBool,
) {
    let mut buf: Vec<u8> = Vec::with_capacity(1024);
    loop {
        let (request, keep_alive) = match read_request(&mut stream, &mut buf) {
            Ok(Some(r)) => r,
            Ok(None) => return,
            Err(status) => {
                let r = Response::new(
                    status,
                    "text/plain; charset=utf-8",
                    format!("{}\n", reason(status)),
                );
                let _ = write_response(&stream, &r, false, false);
                let _ = stream.shutdown(Shutdown::Both);
                return;
            }
        };
        let response = handler(&request);
        let keep = keep_alive && !stop.load(Ordering::SeqCst);
        let head_only = request.method == "HEAD";
        if write_response(&stream, &response, keep, head_only).is_err() || !keep {
            let _ = stream.shutdown(Shutdown::Both);
            return;
        }
    }
}

/// Reads one request from `stream` (bytes after it stay in `buf`): `Ok(None)` when the
/// peer closed (or idled out) between requests, `Err(status)` for a request to refuse.
fn read_request(stream: &mut TcpStream, buf: &mut Vec<u8>) -> Result<Option<(Request, bool)>, u16> {
    loop {
        let mut headers = [httparse::EMPTY_HEADER; HEADERS_MAX];
        let mut parsed = httparse::Request::new(&mut headers);
        match parsed.parse(buf) {
            Ok(httparse::Status::Complete(head_len)) => {
                let request = to_request(&parsed).ok_or(400u16)?;
                let keep_alive = keeps_alive(&parsed, &request);
                if request.header("transfer-encoding").is_some() {
                    return Err(411);
                }
                let body = match request.header("content-length") {
                    None => 0,
                    Some(v) => v.trim().parse::<usize>().map_err(|_| 400u16)?,
                };
                if body > BODY_BYTES_MAX {
                    return Err(413);
                }
                while buf.len() < head_len + body {
                    if read_more(stream, buf) == 0 {
                        return Ok(None);
                    }
                }
                buf.drain(..head_len + body);
                return Ok(Some((request, keep_alive)));
            }
            Ok(httparse::Status::Partial) => {
                if buf.len() >= HEAD_BYTES_MAX {
                    return Err(431);
                }
                if read_more(stream, buf) == 0 {
                    // Closed (or timed out) between requests: nothing to answer. Half a
                    // request: the peer gave up on it.
                    return Ok(None);
                }
            }
            Err(httparse::Error::TooManyHeaders) => return Err(431),
            Err(_) => return Err(400),
        }
    }
}

/// Reads what the socket has into `buf`; 0 at end of stream, on a timeout or an error.
fn read_more(stream: &mut TcpStream, buf: &mut Vec<u8>) -> usize {
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(n) => {
                buf.extend_from_slice(&chunk[..n]);
                return n;
            }
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(_) => return 0,
        }
    }
}

fn keeps_alive(parsed: &httparse::Request<'_, '_>, request: &Request) -> bool {
    let connection = request
        .header("connection")
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match parsed.version {
        // HTTP/1.0: only when asked.
        Some(0) => connection.contains("keep-alive"),
        _ => !connection.contains("close"),
    }
}

fn to_request(parsed: &httparse::Request<'_, '_>) -> Option<Request> {
    let method = parsed.method?.to_owned();
    let target = parsed.path?;
    let (path, query) = match target.split_once('?') {
        Some((p, q)) => (p, q),
        None => (target, ""),
    };
    let path = percent_decode(path, false)?;
    let query = query
        .split('&')
        .filter(|kv| !kv.is_empty())
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap_or((kv, ""));
            Some((percent_decode(k, true)?, percent_decode(v, true)?))
        })
        .collect::<Option<Vec<_>>>()?;
    let headers = parsed
        .headers
        .iter()
        .map(|h| {
            (
                h.name.to_ascii_lowercase(),
                String::from_utf8_lossy(h.value).into_owned(),
            )
        })
        .collect();
    Some(Request {
        method,
        path,
        query,
        headers,
    })
}

/// Decodes `%XX` escapes (and, in a query, `+` as a space); `None` for a bad escape or a
/// result that is not UTF-8.
pub fn percent_decode(text: &str, plus_is_space: bool) -> Option<String> {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' => {
                let hex = bytes.get(i + 1..i + 3)?;
                let hex = std::str::from_utf8(hex).ok()?;
                out.push(u8::from_str_radix(hex, 16).ok()?);
                i += 3;
            }
            b'+' if plus_is_space => {
                out.push(b' ');
                i += 1;
            }
            b => {
                out.push(b);
                i += 1;
            }
        }
    }
    String::from_utf8(out).ok()
}

fn write_response(
    mut stream: &TcpStream,
    r: &Response,
    keep_alive: bool,
    head_only: bool,
) -> io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nCache-Control: no-store\r\n\
         X-Content-Type-Options: nosniff\r\nConnection: {}\r\n",
        r.status,
        reason(r.status),
        r.content_type,
        r.body.len(),
        if keep_alive { "keep-alive" } else { "close" }
    );
    for (name, value) in &r.headers {
        head.push_str(name);
        head.push_str(": ");
        head.push_str(value);
        head.push_str("\r\n");
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    if !head_only {
        out.extend_from_slice(&r.body);
    }
    stream.write_all(&out)?;
    stream.flush()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding() {
        assert_eq!(percent_decode("a%20b%2Fc", false).as_deref(), Some("a b/c"));
        assert_eq!(percent_decode("a+b", true).as_deref(), Some("a b"));
        assert_eq!(percent_decode("a+b", false).as_deref(), Some("a+b"));
        assert_eq!(
            percent_decode("%E2%82%AC", false).as_deref(),
            Some("\u{20ac}")
        );
        assert_eq!(percent_decode("%00", false).as_deref(), Some("\0"));
        assert_eq!(percent_decode("%4", false), None);
        assert_eq!(percent_decode("%zz", false), None);
        assert_eq!(percent_decode("%ff", false), None);
    }

    fn exchange(server: &Server, raw: &[u8]) -> String {
        let mut s = TcpStream::connect(server.local_addr()).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(raw).expect("write");
        let mut out = String::new();
        let _ = s.read_to_string(&mut out);
        out
    }

    fn echo_server() -> Server {
        let handler: Handler = Arc::new(|r: &Request| {
            let q: Vec<String> = r.query.iter().map(|(k, v)| format!("{k}={v}")).collect();
            Response::new(
                200,
                "text/plain",
                format!("{} {} {}", r.method, r.path, q.join("&")),
            )
        });
        Server::start("127.0.0.1:0".parse().expect("addr"), handler).expect("start")
    }

    #[test]
    fn keep_alive_serves_pipelined_requests_in_order_then_closes_on_request() {
        let server = echo_server();
        let out = exchange(
            &server,
            b"GET /a%20b?x=1&y=%2F HTTP/1.1\r\nHost: h\r\n\r\nGET /two HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        let first = out.find("GET /a b x=1&y=/").expect("first answer");
        let second = out.find("GET /two ").expect("second answer");
        assert!(first < second, "{out}");
        assert!(out.contains("Connection: keep-alive") && out.contains("Connection: close"));
    }

    #[test]
    fn bad_requests_get_a_status_and_the_connection_closes() {
        let server = echo_server();
        assert!(exchange(&server, b"NOT HTTP\r\n\r\n").starts_with("HTTP/1.1 400 "));
        let huge = format!(
            "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
            "a".repeat(HEAD_BYTES_MAX)
        );
        assert!(exchange(&server, huge.as_bytes()).starts_with("HTTP/1.1 431 "));
        let chunked = b"POST / HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n";
        assert!(exchange(&server, chunked).starts_with("HTTP/1.1 411 "));
        let big = format!(
            "POST / HTTP/1.1\r\nContent-Length: {}\r\n\r\n",
            BODY_BYTES_MAX + 1
        );
        assert!(exchange(&server, big.as_bytes()).starts_with("HTTP/1.1 413 "));
        // A small body is read past: the next request is served.
        let out = exchange(
            &server,
            b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabcGET /q HTTP/1.1\r\nConnection: close\r\n\r\n",
        );
        assert!(out.contains("POST /p") && out.contains("GET /q"), "{out}");
        // HEAD: the headers only.
        let out = exchange(&server, b"HEAD /h HTTP/1.0\r\n\r\n");
        assert!(
            out.starts_with("HTTP/1.1 200 ") && out.ends_with("\r\n\r\n"),
            "{out}"
        );
    }
}
