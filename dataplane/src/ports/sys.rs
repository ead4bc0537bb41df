//! System-call helpers shared by the kernel ports ([`super::af_packet`], [`super::udp_socket`],
//! [`super::tun`]): descriptors, socket options, errno classification and the
//! `recvmmsg`/`sendmmsg` batch machinery (one system call per burst, arrays kept between calls so
//! a burst does not allocate).

use std::ffi::CString;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};

use pipelines::{HeapBuf, PacketBuf};

use super::{BufPool, PortStats};

/// The error of the last failed system call.
pub(super) fn last_err() -> io::Error {
    io::Error::last_os_error()
}

/// Takes ownership of a descriptor a system call just returned (`raw < 0`: its error).
pub(super) fn owned_fd(raw: RawFd) -> io::Result<OwnedFd> {
    if raw < 0 {
        return Err(last_err());
    }
    // SAFETY: `raw` is a fresh descriptor nothing else owns (the caller just got it from the
    // kernel).
    Ok(unsafe { OwnedFd::from_raw_fd(raw) })
}

/// `setsockopt` for a plain value.
pub(super) fn setsockopt<T>(fd: RawFd, level: i32, name: i32, val: &T) -> io::Result<()> {
    // SAFETY: `val` is a live reference to a `T` and we pass its exact size; the kernel only
    // reads it.
    let r = unsafe {
        libc::setsockopt(
            fd,
            level,
            name,
            (val as *const T).cast(),
            mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if r < 0 {
        Err(last_err())
    } else {
        Ok(())
    }
}

/// `SO_RCVBUF` / `SO_SNDBUF` when given (bytes, clamped to `c_int`).
pub(super) fn set_buffer_sizes(
    fd: RawFd,
    rcvbuf: Option<usize>,
    sndbuf: Option<usize>,
) -> io::Result<()> {
    for (opt, size) in [(libc::SO_RCVBUF, rcvbuf), (libc::SO_SNDBUF, sndbuf)] {
        if let Some(n) = size {
            let v = libc::c_int::try_from(n).unwrap_or(libc::c_int::MAX);
            setsockopt(fd, libc::SOL_SOCKET, opt, &v)?;
        }
    }
    Ok(())
}

/// An interface name as a C string and its index in the calling thread's namespace.
pub(super) fn interface(name: &str) -> io::Result<(CString, u32)> {
    let c = CString::new(name)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "NUL in interface name"))?;
    // SAFETY: `c` is a valid NUL-terminated string.
    let ifindex = unsafe { libc::if_nametoindex(c.as_ptr()) };
    if ifindex == 0 {
        return Err(last_err());
    }
    Ok((c, ifindex))
}

/// `errno` of the last failed system call (0 if none).
pub(super) fn errno() -> i32 {
    last_err().raw_os_error().unwrap_or(0)
}

/// Implements `AsRawFd` and `AsFd` for a port struct with an `fd: OwnedFd` field (for
/// poll/epoll).
macro_rules! impl_as_fd {
    ($t:ty) => {
        impl std::os::fd::AsRawFd for $t {
            fn as_raw_fd(&self) -> std::os::fd::RawFd {
                std::os::fd::AsRawFd::as_raw_fd(&self.fd)
            }
        }

        impl std::os::fd::AsFd for $t {
            fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
                std::os::fd::AsFd::as_fd(&self.fd)
            }
        }
    };
}
pub(super) use impl_as_fd;

/// Plain C types for which all-zero bytes are a valid value.
///
/// # Safety
/// Implement only for C structs and arrays of plain integers, pointers and such structs.
pub(super) unsafe trait Zeroable: Copy {
    fn zeroed() -> Self {
        // SAFETY: the trait's contract.
        unsafe { mem::zeroed() }
    }
}
// SAFETY: plain C structs (integers, arrays and null-able pointers).
unsafe impl Zeroable for libc::mmsghdr {}
// SAFETY: as above.
unsafe impl Zeroable for libc::iovec {}
// SAFETY: as above.
unsafe impl Zeroable for libc::sockaddr_ll {}
// SAFETY: as above.
unsafe impl Zeroable for libc::sockaddr_storage {}
// SAFETY: arrays of integers.
unsafe impl<const N: usize> Zeroable for [u8; N] {}
// SAFETY: arrays of integers.
unsafe impl<const N: usize> Zeroable for [u64; N] {}

/// The arrays of one `recvmmsg`/`sendmmsg` burst: `per` iovecs, one address (`A`) and one extra
/// area (`X`: a gathered header, a control buffer) per message, and the packet buffers.
pub(super) struct MmsgBatch<A, X> {
    pub msgs: Vec<libc::mmsghdr>,
    pub iovs: Vec<libc::iovec>,
    pub addrs: Vec<A>,
    pub extra: Vec<X>,
    pub bufs: Vec<HeapBuf>,
    per: usize,
}

// SAFETY: the raw pointers inside `msgs` and `iovs` point into `iovs`, `addrs`, `extra` and
// packet buffers only during one `rx_burst`/`tx_burst` call; they are rewritten before every
// system call and never dereferenced afterwards, so moving the struct to another thread between
// calls cannot create a dangling access.
unsafe impl<A: Send, X: Send> Send for MmsgBatch<A, X> {}

impl<A: Zeroable, X: Zeroable> MmsgBatch<A, X> {
    /// Empty arrays (nothing allocated) for messages of `per` iovecs.
    pub fn new(per: usize) -> Self {
        MmsgBatch {
            msgs: Vec::new(),
            iovs: Vec::new(),
            addrs: Vec::new(),
            extra: Vec::new(),
            bufs: Vec::new(),
            per,
        }
    }

    /// Moves the arrays out (leaving empty ones), so that the port can use its other fields
    /// while the batch is borrowed; put them back when done.
    pub fn take(&mut self) -> Self {
        let per = self.per;
        mem::replace(self, Self::new(per))
    }

    /// Makes the arrays hold at least `n` messages (grows only).
    pub fn reserve(&mut self, n: usize) {
        if self.msgs.len() < n {
            self.msgs.resize(n, Zeroable::zeroed());
            self.iovs.resize(self.per * n, Zeroable::zeroed());
            self.addrs.resize(n, Zeroable::zeroed());
            self.extra.resize(n, Zeroable::zeroed());
        }
    }

    /// The `k`-th iovec of message `i`.
    pub fn iov_mut(&mut self, i: usize, k: usize) -> &mut libc::iovec {
        &mut self.iovs[self.per * i + k]
    }

    /// Points message `i` at its first `iovlen` iovecs, at `addrs[i]` as its name when `namelen`
    /// is given (else none), and at `extra[i]` as its control buffer when `control`; clears the
    /// received length and flags. Call after [`MmsgBatch::reserve`].
    pub fn prepare(
        &mut self,
        i: usize,
        iovlen: usize,
        namelen: Option<libc::socklen_t>,
        control: bool,
    ) {
        // Pointer arithmetic on the whole array (not a reference to one element): the kernel
        // reads `iovlen` consecutive iovecs from there.
        let iov = self.iovs.as_mut_ptr().wrapping_add(self.per * i);
        let name = (&mut self.addrs[i] as *mut A).cast();
        let ctrl = (&mut self.extra[i] as *mut X).cast();
        let msg = &mut self.msgs[i];
        msg.msg_len = 0;
        let m = &mut msg.msg_hdr;
        m.msg_iov = iov;
        m.msg_iovlen = iovlen;
        (m.msg_name, m.msg_namelen) = match namelen {
            Some(l) => (name, l),
            None => (std::ptr::null_mut(), 0),
        };
        (m.msg_control, m.msg_controllen) = if control {
            (ctrl, mem::size_of::<X>())
        } else {
            (std::ptr::null_mut(), 0)
        };
        m.msg_flags = 0;
    }

    /// Fills `bufs` with up to `max` buffers from `pool` (cleared first) and returns how many. A
    /// buffer whose tailroom is below `min_room` goes back. An empty pool or a useless buffer
    /// ends the burst and counts one `rx_nobuf` (per burst, not per missing buffer: we do not
    /// know how many packets were waiting).
    pub fn alloc_rx(
        &mut self,
        pool: &mut dyn BufPool<HeapBuf>,
        max: usize,
        min_room: usize,
        stats: &mut PortStats,
    ) -> usize {
        self.bufs.clear();
        while self.bufs.len() < max {
            match pool.alloc() {
                Some(b) if b.tailroom() >= min_room => self.bufs.push(b),
                Some(b) => {
                    pool.free(b);
                    stats.rx_nobuf += 1;
                    break;
                }
                None => {
                    stats.rx_nobuf += 1;
                    break;
                }
            }
        }
        self.bufs.len()
    }

    /// One non-blocking `recvmmsg` of the first `n` prepared messages. Returns how many
    /// arrived; a failure whose errno is not in `benign` counts one `rx_errors`.
    pub fn recv(&mut self, fd: &OwnedFd, n: usize, benign: &[i32], stats: &mut PortStats) -> usize {
        // SAFETY: the caller prepared `msgs[..n]`: every iovec points into a live buffer or
        // area owned by `self` for the duration of the call, with its exact length; names and
        // control buffers point at `addrs[i]` and `extra[i]` with their sizes. Non-blocking, no
        // timeout.
        let r = unsafe {
            libc::recvmmsg(
                fd.as_raw_fd(),
                self.msgs.as_mut_ptr(),
                n as libc::c_uint,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
            )
        };
        if r < 0 {
            if !benign.contains(&errno()) {
                stats.rx_errors += 1;
            }
            0
        } else {
            r as usize
        }
    }

    /// Hands the received buffers (the first `got` of `bufs`) to `keep`, which trims them and
    /// says whether to keep each: kept ones go to `out` and are counted in `rx_packets` and
    /// `rx_bytes`, the others and the buffers nothing arrived in go back to `pool`. Returns how
    /// many were kept.
    pub fn deliver(
        &mut self,
        got: usize,
        pool: &mut dyn BufPool<HeapBuf>,
        out: &mut Vec<HeapBuf>,
        stats: &mut PortStats,
        mut keep: impl FnMut(&libc::mmsghdr, &A, &X, &mut HeapBuf) -> bool,
    ) -> usize {
        let mut kept = 0;
        for (i, mut b) in self.bufs.drain(..).enumerate() {
            if i < got && keep(&self.msgs[i], &self.addrs[i], &self.extra[i], &mut b) {
                stats.rx_bytes += b.len() as u64;
                out.push(b);
                kept += 1;
            } else {
                pool.free(b);
            }
        }
        stats.rx_packets += kept as u64;
        kept
    }

    /// Sends the prepared messages of every buffer in `bufs` with `sendmmsg`, then frees the
    /// buffers to `pool`. A failure whose errno is in `fatal` (queue full, device gone) drops
    /// the rest of the burst; any other drops one message and goes on; `EINTR` is retried up to
    /// four times. Counts `tx_packets`, `tx_bytes`, `tx_errors` (one per failed call) and
    /// `tx_dropped`. Returns how many were sent.
    pub fn send(
        &mut self,
        fd: &OwnedFd,
        fatal: &[i32],
        pool: &mut dyn BufPool<HeapBuf>,
        stats: &mut PortStats,
    ) -> usize {
        let n = self.bufs.len();
        let mut sent = 0usize;
        let mut i = 0usize;
        let mut eintr = 0;
        // Each pass sends at least one message or drops at least one, or is one of at most
        // four EINTR retries: at most n + 4 system calls.
        while i < n {
            // SAFETY: `msgs[i..n]` were prepared by the caller and point at live iovecs,
            // headers, addresses and buffer data owned by `self` for the duration of the call.
            let r = unsafe {
                libc::sendmmsg(
                    fd.as_raw_fd(),
                    self.msgs.as_mut_ptr().add(i),
                    (n - i) as libc::c_uint,
                    libc::MSG_DONTWAIT,
                )
            };
            if r > 0 {
                for b in &self.bufs[i..i + r as usize] {
                    stats.tx_bytes += b.len() as u64;
                }
                sent += r as usize;
                i += r as usize;
                continue;
            }
            let e = errno();
            if e == libc::EINTR && eintr < 4 {
                eintr += 1;
                continue;
            }
            stats.tx_errors += 1;
            if fatal.contains(&e) {
                stats.tx_dropped += (n - i) as u64;
                break;
            }
            stats.tx_dropped += 1;
            i += 1;
        }
        stats.tx_packets += sent as u64;
        for b in self.bufs.drain(..) {
            pool.free(b);
        }
        sent
    }
}

/// Appends the whole tailroom of `b` to its data (so the kernel writes at the headroom; the
/// caller trims back to what was received) and returns it with the length appended.
pub(super) fn grow_to_tailroom(b: &mut HeapBuf) -> (&mut [u8], usize) {
    let room = b.tailroom();
    (b.append(room).unwrap_or_default(), room)
}
