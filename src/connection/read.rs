//! Reading without a buffer per connection.
//!
//! glommio's socket reads are readiness-based: `poll_read` tries a non-blocking `recv` into
//! the caller's buffer and, when nothing is there, waits on a poll of the socket; the buffer
//! is not touched while it waits. So one scratch buffer per shard (thread) serves every
//! connection on it: each read borrows it for the `recv` only and copies what came into the
//! connection's read buffer, and an idle connection holds no read chunk at all. A TLS
//! connection reads the same way: rustls keeps the records it has read, and gives out the
//! decrypted bytes into the scratch buffer.

use std::cell::RefCell;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::BytesMut;

use super::transport::Transport;
use crate::session::Outbox;

thread_local! {
    /// The shard's read scratch buffer; grows to the largest read asked for
    /// (`limits.read_buffer_bytes` at most).
    static SCRATCH: RefCell<Vec<u8>> = const { RefCell::new(Vec::new()) };
}

/// Reads up to `len` bytes from `stream` and appends them to `rbuf`; `Ready(Ok(0))` is end
/// of stream.
pub fn poll_read(
    stream: &mut Transport,
    cx: &mut Context<'_>,
    len: usize,
    rbuf: &mut BytesMut,
) -> Poll<io::Result<usize>> {
    SCRATCH.with(|scratch| {
        // Borrowed for this call only: glommio does not keep the buffer past `poll_read`,
        // and nothing in it calls back into connection code.
        let mut scratch = scratch.borrow_mut();
        if scratch.len() < len {
            scratch.resize(len, 0);
        }
        let Some(buf) = scratch.get_mut(..len) else {
            return Poll::Ready(Ok(0));
        };
        let result = stream.poll_read(cx, buf);
        if let Poll::Ready(Ok(n)) = &result {
            rbuf.extend_from_slice(buf.get(..*n).unwrap_or_default());
        }
        result
    })
}

/// What ends a connection's wait.
pub enum Event {
    /// Bytes read into the read buffer (0: end of stream).
    Read(io::Result<usize>),
    /// Something was pushed to the outbox, or a close was asked for.
    Woken,
}

/// Waits for readable bytes (read into `rbuf`, at most `len`; not while `paused`) or a
/// wake-up of `outbox`.
///
/// If the wait does not end at once, the connection is idle: before it sleeps, the empty
/// read buffer, write buffer and outbox buffer give their memory back (they are allocated
/// again by the next burst; a busy connection rarely gets here).
pub async fn next_event(
    stream: &mut Transport,
    outbox: &Outbox,
    paused: bool,
    len: usize,
    rbuf: &mut BytesMut,
    wbuf: &mut BytesMut,
) -> Event {
    let mut idle = false;
    futures_lite::future::poll_fn(|cx| {
        if !paused {
            if let Poll::Ready(r) = poll_read(stream, cx, len, rbuf) {
                return Poll::Ready(Event::Read(r));
            }
        }
        if std::future::Future::poll(Pin::new(&mut outbox.wait()), cx).is_ready() {
            return Poll::Ready(Event::Woken);
        }
        if !idle {
            idle = true;
            if rbuf.is_empty() {
                *rbuf = BytesMut::new();
            }
            *wbuf = BytesMut::new();
            outbox.release_idle();
        }
        Poll::Pending
    })
    .await
}
