//! A TCP connection started with a chosen source address, handed to glommio.
//!
//! glommio's `TcpStream::connect` cannot bind a source address, which a load generator needs
//! for more than ~28k connections to one port (each source address has its own ephemeral
//! ports). So the socket is made here: non-blocking, TCP_NODELAY, bound to the source
//! address with IP_BIND_ADDRESS_NO_PORT (the port is picked at connect time, per 4-tuple),
//! and connected without waiting. glommio then owns it: the first write waits for the
//! handshake through io_uring's poll, and a refused connection fails that write.

use std::io;
use std::mem;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, FromRawFd, IntoRawFd, OwnedFd};

use glommio::net::TcpStream;

/// Starts connecting to `target` from `source` (any address when `None`).
pub fn start_connect(target: SocketAddr, source: Option<IpAddr>) -> io::Result<TcpStream> {
    let domain = match target {
        SocketAddr::V4(_) => libc::AF_INET,
        SocketAddr::V6(_) => libc::AF_INET6,
    };
    // SAFETY: socket(2) takes no pointers; a non-negative result is a new descriptor that
    // the OwnedFd below owns and closes.
    let fd = unsafe {
        libc::socket(
            domain,
            libc::SOCK_STREAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
            0,
        )
    };
    if fd < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `fd` was just returned by socket(2) and is owned by nobody else.
    let fd = unsafe { OwnedFd::from_raw_fd(fd) };
    set_int_option(&fd, libc::IPPROTO_TCP, libc::TCP_NODELAY, 1)?;
    if let Some(ip) = source {
        if ip.is_ipv4() != target.is_ipv4() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source address {ip} and broker address {target} differ in family"),
            ));
        }
        // Best effort: without it bind() reserves a port per source address for good.
        let _ = set_int_option(&fd, libc::IPPROTO_IP, libc::IP_BIND_ADDRESS_NO_PORT, 1);
        let (addr, len) = sockaddr(SocketAddr::new(ip, 0));
        // SAFETY: `addr` is a properly initialised sockaddr of `len` bytes that outlives
        // the call.
        let rc = unsafe { libc::bind(fd.as_raw_fd(), addr_ptr(&addr), len) };
        if rc < 0 {
            let e = io::Error::last_os_error();
            return Err(io::Error::new(e.kind(), format!("bind to {ip}: {e}")));
        }
    }
    let (addr, len) = sockaddr(target);
    // SAFETY: as for bind above.
    let rc = unsafe { libc::connect(fd.as_raw_fd(), addr_ptr(&addr), len) };
    if rc < 0 {
        let e = io::Error::last_os_error();
        if e.raw_os_error() != Some(libc::EINPROGRESS) {
            return Err(e);
        }
    }
    // SAFETY: glommio takes over the descriptor, which nothing else owns any more.
    Ok(unsafe { TcpStream::from_raw_fd(fd.into_raw_fd()) })
}

fn set_int_option(fd: &OwnedFd, level: i32, name: i32, value: libc::c_int) -> io::Result<()> {
    // SAFETY: the option value is a c_int of the size passed, alive for the call.
    let rc = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            level,
            name,
            (&value as *const libc::c_int).cast(),
            mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc < 0 {
        return Err(io::Error::last_os_error());
    }
    Ok(())
}

fn addr_ptr(storage: &libc::sockaddr_storage) -> *const libc::sockaddr {
    (storage as *const libc::sockaddr_storage).cast()
}

/// `addr` as a sockaddr_in / sockaddr_in6 inside a sockaddr_storage, with its length.
fn sockaddr(addr: SocketAddr) -> (libc::sockaddr_storage, libc::socklen_t) {
    // SAFETY: sockaddr_storage is plain old data; all-zero is a valid value.
    let mut storage: libc::sockaddr_storage = unsafe { mem::zeroed() };
    match addr {
        SocketAddr::V4(a) => {
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: a.port().to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(a.ip().octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in>()
                    .write(sin)
            };
            (
                storage,
                mem::size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        }
        SocketAddr::V6(a) => {
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: a.port().to_be(),
                sin6_flowinfo: a.flowinfo(),
                sin6_addr: libc::in6_addr {
                    s6_addr: a.ip().octets(),
                },
                sin6_scope_id: a.scope_id(),
            };
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            unsafe {
                (&mut storage as *mut libc::sockaddr_storage)
                    .cast::<libc::sockaddr_in6>()
                    .write(sin6)
            };
            (
                storage,
                mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t,
            )
        }
    }
}
