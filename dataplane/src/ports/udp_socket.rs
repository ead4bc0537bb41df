//! UDP socket ports: one kernel UDP socket per access interface as a [`Port`] (the C-MADP's
//! delivery side, where the client has no raw access to the links), one `recvmmsg`/`sendmmsg`
//! system call per burst.
//!
//! The data plane works on whole outer packets, as on a raw port, so the port translates:
//!
//! - receive: each datagram is placed after a synthesized outer IPv4 (or IPv6) + UDP header:
//!   source = the sender's address and port, destination = the address the datagram was sent
//!   to (from `IP_PKTINFO`/`IPV6_PKTINFO`, so a wildcard bind works) and the socket's port,
//!   lengths matching, DSCP/ECN from `IP_TOS`/`IPV6_TCLASS`, TTL 64, DF set, the IPv4 header
//!   checksum filled, the UDP checksum 0 over IPv4 (RFC 768: none) and computed over IPv6
//!   (RFC 8200 §8.1 forbids 0). The header starts at the pool's headroom, the payload follows
//!   it: nothing is moved.
//! - transmit: each packet must start with an outer IPv4/IPv6 + UDP header of the socket's
//!   family; the port strips it and sends the UDP payload to (outer destination address, UDP
//!   destination port). The kernel chooses the source: a packet whose outer source differs from
//!   the socket's local address/port is still sent, and counted in
//!   [`UdpSocketExtraStats::tx_src_mismatch`]. Malformed outer headers are dropped and counted
//!   in [`UdpSocketExtraStats::tx_malformed`].
//!
//! IPv6 sockets are `IPV6_V6ONLY`: an IPv4 peer never shows up as a v4-mapped address, so the
//! synthesized header always has the socket's family.

use std::io;
use std::mem;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr, SocketAddrV4, SocketAddrV6};
use std::os::fd::{AsRawFd, OwnedFd};

use pipelines::wire::{ipv4, ipv6, udp};
use pipelines::{HeapBuf, PacketBuf};

use super::sys::{self, last_err, setsockopt, MmsgBatch};
use super::{BufPool, Port, PortStats};

/// IP protocol number of UDP.
const PROTO_UDP: u8 = 17;
/// Synthesized outer header lengths.
const V4_HDR: usize = 20 + 8;
const V6_HDR: usize = 40 + 8;
/// Largest UDP payload an outer header can describe (IPv4 total length is 16 bits).
const V4_MAX_PAYLOAD: usize = 65535 - V4_HDR;
/// IPv6 payload length (UDP header + data) is 16 bits.
const V6_MAX_PAYLOAD: usize = 65535 - 8;
/// Control buffer per received message: room for a pktinfo and a TOS/TCLASS message.
const CTRL_WORDS: usize = 16;

/// Options of [`UdpSocketPort::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UdpSocketConfig {
    /// Local address to bind (port 0: ephemeral; unspecified address: any, the real
    /// destination of each datagram is still reported).
    pub local: SocketAddr,
    /// Interface to bind to (`SO_BINDTODEVICE`): only datagrams arriving on it are received and
    /// everything is sent through it.
    pub device: Option<String>,
    /// `SO_REUSEADDR`, e.g. for several sockets on one port bound to different devices after a
    /// restart.
    pub reuse_addr: bool,
    /// `SO_RCVBUF` in bytes (kernel default when `None`).
    pub rcvbuf: Option<usize>,
    /// `SO_SNDBUF` in bytes (kernel default when `None`).
    pub sndbuf: Option<usize>,
}

impl UdpSocketConfig {
    /// A socket bound to `local` (and to `device` if given), kernel buffer sizes.
    pub fn new(local: SocketAddr, device: Option<&str>) -> Self {
        UdpSocketConfig {
            local,
            device: device.map(str::to_string),
            reuse_addr: false,
            rcvbuf: None,
            sndbuf: None,
        }
    }
}

/// Counters beyond [`PortStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UdpSocketExtraStats {
    /// Packets sent whose outer source address or port was not the socket's (the kernel chose
    /// the source). Included in `tx_packets` when sent.
    pub tx_src_mismatch: u64,
    /// Packets dropped on transmit because the outer header was not a well-formed IPv4/IPv6 +
    /// UDP header of the socket's family (truncated, bad lengths, not UDP, a fragment, IPv6
    /// extension headers, destination port 0). Included in `tx_dropped`.
    pub tx_malformed: u64,
    /// Datagrams larger than the buffer (`MSG_TRUNC`) or than an outer header can describe,
    /// dropped on receive.
    pub rx_truncated: u64,
}

/// Per-burst arrays: one iovec, one address and one control buffer (room for a pktinfo and a
/// TOS/TCLASS message) per message.
type Scratch = MmsgBatch<libc::sockaddr_storage, [u64; CTRL_WORDS]>;

/// A UDP socket as a [`Port`] carrying whole outer packets.
pub struct UdpSocketPort {
    name: String,
    fd: OwnedFd,
    local: SocketAddr,
    /// Interface index of the bound device (scope of link-local IPv6 destinations), 0 if none.
    ifindex: u32,
    stats: PortStats,
    extra: UdpSocketExtraStats,
    scratch: Scratch,
}

/// Writes `addr` into `st` and returns the length to pass to the kernel.
fn to_sockaddr(addr: &SocketAddr, st: &mut libc::sockaddr_storage) -> libc::socklen_t {
    match addr {
        SocketAddr::V4(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in.
            let sin =
                unsafe { &mut *(st as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            sin.sin_family = libc::AF_INET as libc::sa_family_t;
            sin.sin_port = a.port().to_be();
            sin.sin_addr = libc::in_addr {
                s_addr: u32::from_ne_bytes(a.ip().octets()),
            };
            sin.sin_zero = [0; 8];
            mem::size_of::<libc::sockaddr_in>() as libc::socklen_t
        }
        SocketAddr::V6(a) => {
            // SAFETY: sockaddr_storage is larger than and aligned for sockaddr_in6.
            let sin6 =
                unsafe { &mut *(st as *mut libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            sin6.sin6_family = libc::AF_INET6 as libc::sa_family_t;
            sin6.sin6_port = a.port().to_be();
            sin6.sin6_flowinfo = a.flowinfo();
            sin6.sin6_addr = libc::in6_addr {
                s6_addr: a.ip().octets(),
            };
            sin6.sin6_scope_id = a.scope_id();
            mem::size_of::<libc::sockaddr_in6>() as libc::socklen_t
        }
    }
}

/// Reads a socket address the kernel wrote into `st`.
fn from_sockaddr(st: &libc::sockaddr_storage) -> Option<SocketAddr> {
    match i32::from(st.ss_family) {
        libc::AF_INET => {
            // SAFETY: the family says the storage holds a sockaddr_in.
            let sin =
                unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in>() };
            Some(SocketAddr::V4(SocketAddrV4::new(
                Ipv4Addr::from(sin.sin_addr.s_addr.to_ne_bytes()),
                u16::from_be(sin.sin_port),
            )))
        }
        libc::AF_INET6 => {
            // SAFETY: the family says the storage holds a sockaddr_in6.
            let sin6 =
                unsafe { &*(st as *const libc::sockaddr_storage).cast::<libc::sockaddr_in6>() };
            Some(SocketAddr::V6(SocketAddrV6::new(
                Ipv6Addr::from(sin6.sin6_addr.s6_addr),
                u16::from_be(sin6.sin6_port),
                sin6.sin6_flowinfo,
                sin6.sin6_scope_id,
            )))
        }
        _ => None,
    }
}

/// What the control messages of one received datagram told: its destination address and its
/// traffic class (DSCP << 2 | ECN).
fn parse_cmsgs(hdr: &libc::msghdr) -> (Option<IpAddr>, u8) {
    let mut dst = None;
    let mut tos = 0u8;
    // SAFETY: `hdr` is a msghdr filled in by recvmmsg: msg_control points at our control buffer
    // and msg_controllen is the length the kernel used, so CMSG_FIRSTHDR/NXTHDR stay inside it,
    // and each data read is bounded by the cmsg's own length.
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(hdr);
        while !c.is_null() {
            let level = (*c).cmsg_level;
            let ty = (*c).cmsg_type;
            let data = libc::CMSG_DATA(c);
            let len = ((*c).cmsg_len as usize).saturating_sub(libc::CMSG_LEN(0) as usize);
            if level == libc::IPPROTO_IP
                && ty == libc::IP_PKTINFO
                && len >= mem::size_of::<libc::in_pktinfo>()
            {
                let pi: libc::in_pktinfo = std::ptr::read_unaligned(data.cast());
                dst = Some(IpAddr::V4(Ipv4Addr::from(pi.ipi_addr.s_addr.to_ne_bytes())));
            } else if level == libc::IPPROTO_IPV6
                && ty == libc::IPV6_PKTINFO
                && len >= mem::size_of::<libc::in6_pktinfo>()
            {
                let pi: libc::in6_pktinfo = std::ptr::read_unaligned(data.cast());
                dst = Some(IpAddr::V6(Ipv6Addr::from(pi.ipi6_addr.s6_addr)));
            } else if level == libc::IPPROTO_IP && ty == libc::IP_TOS && len >= 1 {
                tos = *data;
            } else if level == libc::IPPROTO_IPV6 && ty == libc::IPV6_TCLASS && len >= 4 {
                let v: libc::c_int = std::ptr::read_unaligned(data.cast());
                tos = v as u8;
            }
            c = libc::CMSG_NXTHDR(hdr, c);
        }
    }
    (dst, tos)
}

/// The outer header of a packet to transmit: where its UDP payload goes and where it sits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Outer {
    src: SocketAddr,
    dst: SocketAddr,
    /// Offset of the UDP payload.
    offset: usize,
    /// Length of the UDP payload (from the UDP length field; bytes after it are ignored).
    len: usize,
}

/// Parses the outer IPv4/IPv6 + UDP header of `pkt`. `None`: malformed for this port.
fn parse_outer(pkt: &[u8]) -> Option<Outer> {
    let (src_ip, dst_ip, l4_at, l4_end) = match pkt.first()? >> 4 {
        4 => {
            let ip = ipv4::Packet::new_checked(pkt).ok()?;
            if ip.next_header() != PROTO_UDP || ip.is_fragment() {
                return None;
            }
            (
                IpAddr::V4(ip.src_addr()),
                IpAddr::V4(ip.dst_addr()),
                ip.header_len(),
                ip.total_len(),
            )
        }
        6 => {
            let ip = ipv6::Packet::new_checked(pkt).ok()?;
            // Extension headers are not walked: an outer header built by the engine has none.
            if ip.next_header() != PROTO_UDP {
                return None;
            }
            (
                IpAddr::V6(ip.src_addr()),
                IpAddr::V6(ip.dst_addr()),
                40,
                ip.total_len(),
            )
        }
        _ => return None,
    };
    let l4 = udp::Packet::new_checked(pkt.get(l4_at..l4_end)?).ok()?;
    if l4.dst_port() == 0 {
        return None;
    }
    Some(Outer {
        src: SocketAddr::new(src_ip, l4.src_port()),
        dst: SocketAddr::new(dst_ip, l4.dst_port()),
        offset: l4_at + 8,
        len: usize::from(l4.len()) - 8,
    })
}

/// Writes the synthesized outer header into `hdr` (28 bytes for IPv4, 48 for IPv6, same family
/// for both addresses) for a UDP payload `payload` that follows it.
fn write_outer(hdr_and_payload: &mut [u8], src: SocketAddr, dst: SocketAddr, tos: u8) -> bool {
    let plen = match src {
        SocketAddr::V4(_) => hdr_and_payload.len().checked_sub(V4_HDR),
        SocketAddr::V6(_) => hdr_and_payload.len().checked_sub(V6_HDR),
    };
    let Some(plen) = plen else { return false };
    let urepr = udp::Repr {
        src_port: src.port(),
        dst_port: dst.port(),
    };
    match (src.ip(), dst.ip()) {
        (IpAddr::V4(s), IpAddr::V4(d)) if plen <= V4_MAX_PAYLOAD => {
            let repr = ipv4::Repr {
                src_addr: s,
                dst_addr: d,
                next_header: PROTO_UDP,
                payload_len: 8 + plen,
                hop_limit: 64,
                dscp: tos >> 2,
                ecn: tos & 3,
                ident: 0,
                dont_frag: true,
            };
            let (ih, rest) = hdr_and_payload.split_at_mut(20);
            repr.emit(&mut ipv4::Packet::new_unchecked(ih));
            // RFC 768: checksum 0 = none over IPv4; the kernel already verified it.
            urepr.emit(
                &mut udp::Packet::new_unchecked(rest),
                &src.ip(),
                &dst.ip(),
                plen,
                false,
            );
            true
        }
        (IpAddr::V6(s), IpAddr::V6(d)) if plen <= V6_MAX_PAYLOAD => {
            let repr = ipv6::Repr {
                src_addr: s,
                dst_addr: d,
                next_header: PROTO_UDP,
                payload_len: 8 + plen,
                hop_limit: 64,
                traffic_class: tos,
                flow_label: 0,
            };
            let (ih, rest) = hdr_and_payload.split_at_mut(40);
            repr.emit(&mut ipv6::Packet::new_unchecked(ih));
            // RFC 8200 §8.1: an IPv6 UDP checksum is mandatory.
            urepr.emit(
                &mut udp::Packet::new_unchecked(rest),
                &src.ip(),
                &dst.ip(),
                plen,
                true,
            );
            true
        }
        _ => false,
    }
}

impl UdpSocketPort {
    /// Opens a non-blocking UDP socket in the calling thread's namespace, bound to `cfg.local`
    /// and, if given, to `cfg.device`.
    pub fn open(cfg: &UdpSocketConfig) -> io::Result<Self> {
        let v6 = cfg.local.is_ipv6();
        let family = if v6 { libc::AF_INET6 } else { libc::AF_INET };
        // SAFETY: plain system call with constant arguments.
        let fd = sys::owned_fd(unsafe {
            libc::socket(
                family,
                libc::SOCK_DGRAM | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                libc::IPPROTO_UDP,
            )
        })?;
        let raw = fd.as_raw_fd();
        let one: libc::c_int = 1;
        sys::set_buffer_sizes(raw, cfg.rcvbuf, cfg.sndbuf)?;
        if cfg.reuse_addr {
            setsockopt(raw, libc::SOL_SOCKET, libc::SO_REUSEADDR, &one)?;
        }
        if v6 {
            setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_V6ONLY, &one)?;
            setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVPKTINFO, &one)?;
            setsockopt(raw, libc::IPPROTO_IPV6, libc::IPV6_RECVTCLASS, &one)?;
        } else {
            setsockopt(raw, libc::IPPROTO_IP, libc::IP_PKTINFO, &one)?;
            setsockopt(raw, libc::IPPROTO_IP, libc::IP_RECVTOS, &one)?;
        }
        let mut ifindex = 0;
        if let Some(dev) = &cfg.device {
            let (c, index) = sys::interface(dev)?;
            ifindex = index;
            // Before bind: two sockets on one port bound to different devices do not conflict.
            let b = c.as_bytes_with_nul();
            // SAFETY: `b` is live for the call and we pass its length.
            let r = unsafe {
                libc::setsockopt(
                    raw,
                    libc::SOL_SOCKET,
                    libc::SO_BINDTODEVICE,
                    b.as_ptr().cast(),
                    b.len() as libc::socklen_t,
                )
            };
            if r < 0 {
                return Err(last_err());
            }
        }
        // SAFETY: zero is a valid sockaddr_storage.
        let mut st: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let len = to_sockaddr(&cfg.local, &mut st);
        // SAFETY: `st` holds a sockaddr of `len` bytes.
        if unsafe { libc::bind(raw, (&st as *const libc::sockaddr_storage).cast(), len) } < 0 {
            return Err(last_err());
        }
        // SAFETY: zero is a valid sockaddr_storage.
        let mut me: libc::sockaddr_storage = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
        // SAFETY: `me` is writable for `len` bytes; the kernel writes at most `len`.
        if unsafe {
            libc::getsockname(
                raw,
                (&mut me as *mut libc::sockaddr_storage).cast(),
                &mut len,
            )
        } < 0
        {
            return Err(last_err());
        }
        let local = from_sockaddr(&me)
            .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "getsockname family"))?;
        let name = match &cfg.device {
            Some(d) => format!("udp:{d}/{local}"),
            None => format!("udp:{local}"),
        };
        Ok(UdpSocketPort {
            name,
            fd,
            local,
            ifindex,
            stats: PortStats::default(),
            extra: UdpSocketExtraStats::default(),
            scratch: Scratch::new(1),
        })
    }

    /// The local address actually bound (the kernel's choice for port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Counters beyond [`PortStats`].
    pub fn extra_stats(&self) -> UdpSocketExtraStats {
        self.extra
    }

    fn hdr_len(&self) -> usize {
        if self.local.is_ipv6() {
            V6_HDR
        } else {
            V4_HDR
        }
    }

    /// True when the outer source is not what the kernel will use (an unspecified local
    /// address matches any source address; the port must always match).
    fn src_mismatch(&self, src: SocketAddr) -> bool {
        src.port() != self.local.port()
            || (!self.local.ip().is_unspecified() && src.ip() != self.local.ip())
    }
}

sys::impl_as_fd!(UdpSocketPort);

impl Port<HeapBuf> for UdpSocketPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(
        &mut self,
        pool: &mut dyn BufPool<HeapBuf>,
        out: &mut Vec<HeapBuf>,
        max: usize,
    ) -> usize {
        if max == 0 {
            return 0;
        }
        let hdr = self.hdr_len();
        let mut s = self.scratch.take();
        // A buffer without room for the header and one byte is useless: given back, counted
        // once per burst cut short, as in the AF_PACKET port.
        let n = s.alloc_rx(pool, max, hdr + 1, &mut self.stats);
        if n == 0 {
            self.scratch = s;
            return 0;
        }
        s.reserve(n);
        for i in 0..n {
            // The header goes at the headroom, the datagram right after it.
            let (dst, _) = sys::grow_to_tailroom(&mut s.bufs[i]);
            let payload = &mut dst[hdr..];
            *s.iov_mut(i, 0) = libc::iovec {
                iov_base: payload.as_mut_ptr().cast(),
                iov_len: payload.len(),
            };
            let namelen = mem::size_of::<libc::sockaddr_storage>() as libc::socklen_t;
            s.prepare(i, 1, Some(namelen), true);
        }
        // ECONNREFUSED: an ICMP port unreachable for an earlier send, reported once.
        let benign = [libc::EAGAIN, libc::EINTR, libc::ECONNREFUSED];
        let got = s.recv(&self.fd, n, &benign, &mut self.stats);
        let local_port = self.local.port();
        let local_ip = self.local.ip();
        let extra = &mut self.extra;
        let kept = s.deliver(got, pool, out, &mut self.stats, |m, addr, _, b| {
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                extra.rx_truncated += 1;
                return false;
            }
            let (pkt_dst, tos) = parse_cmsgs(&m.msg_hdr);
            let src = from_sockaddr(addr);
            let dst_ip = pkt_dst.unwrap_or(local_ip);
            let len = hdr + m.msg_len as usize;
            let cap = b.len();
            // `len <= cap` because MSG_TRUNC was not set.
            let _ = b.trim(cap.saturating_sub(len));
            let ok = match src {
                Some(src) => {
                    write_outer(b.data_mut(), src, SocketAddr::new(dst_ip, local_port), tos)
                }
                None => false,
            };
            if !ok {
                // Too long for an outer header, or an address of another family (not
                // possible with V6ONLY; defensive).
                extra.rx_truncated += 1;
            }
            ok
        });
        self.scratch = s;
        kept
    }

    fn tx_burst(&mut self, pool: &mut dyn BufPool<HeapBuf>, pkts: &mut Vec<HeapBuf>) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let mut s = self.scratch.take();
        s.bufs.clear();
        s.reserve(pkts.len());
        let v6 = self.local.is_ipv6();
        for mut b in pkts.drain(..) {
            let outer = match parse_outer(b.data()) {
                Some(o) if o.dst.is_ipv6() == v6 => o,
                _ => {
                    self.extra.tx_malformed += 1;
                    self.stats.tx_dropped += 1;
                    pool.free(b);
                    continue;
                }
            };
            if self.src_mismatch(outer.src) {
                self.extra.tx_src_mismatch += 1;
            }
            // Strip the outer header and anything after the UDP payload (link padding).
            let tail = b.len() - outer.offset - outer.len;
            let _ = b.adj(outer.offset);
            let _ = b.trim(tail);
            let mut dst = outer.dst;
            if let SocketAddr::V6(a) = &mut dst {
                // A link-local destination needs a scope: the bound device's.
                if a.ip().segments()[0] & 0xffc0 == 0xfe80 {
                    a.set_scope_id(self.ifindex);
                }
            }
            let i = s.bufs.len();
            let namelen = to_sockaddr(&dst, &mut s.addrs[i]);
            *s.iov_mut(i, 0) = libc::iovec {
                // The kernel only reads from it (sendmmsg); iovec requires *mut.
                iov_base: b.data().as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            };
            s.prepare(i, 1, Some(namelen), false);
            s.bufs.push(b);
        }
        // EAGAIN/ENOBUFS: the socket buffer is full; ENETDOWN: the device is down. Any other
        // error (EMSGSIZE, ENETUNREACH, ECONNREFUSED from an earlier ICMP error, ...) concerns
        // one packet.
        let fatal = [libc::EAGAIN, libc::ENOBUFS, libc::ENETDOWN];
        let sent = s.send(&self.fd, &fatal, pool, &mut self.stats);
        self.scratch = s;
        sent
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

impl core::fmt::Debug for UdpSocketPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("UdpSocketPort")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("local", &self.local)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::HeapPool;

    fn v4(a: [u8; 4], p: u16) -> SocketAddr {
        SocketAddr::from((a, p))
    }

    /// Builds an outer packet with `write_outer` around `payload`.
    fn outer(src: SocketAddr, dst: SocketAddr, payload: &[u8]) -> Vec<u8> {
        let h = if src.is_ipv6() { V6_HDR } else { V4_HDR };
        let mut p = vec![0; h];
        p.extend_from_slice(payload);
        assert!(write_outer(&mut p, src, dst, 0));
        p
    }

    #[test]
    fn synthesized_ipv4_header_is_valid_and_parses_back() {
        let (src, dst) = (v4([10, 0, 0, 1], 1234), v4([10, 0, 0, 2], 5678));
        let p = outer(src, dst, b"hello");
        let ip = ipv4::Packet::new_checked(&p[..]).unwrap();
        assert!(ip.verify_checksum());
        assert_eq!(ip.total_len(), 33);
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_eq!((u.len(), u.checksum()), (13, 0));
        let o = parse_outer(&p).unwrap();
        assert_eq!((o.src, o.dst, o.offset, o.len), (src, dst, 28, 5));
    }

    #[test]
    fn synthesized_ipv6_header_has_a_valid_udp_checksum() {
        let src: SocketAddr = "[fd00::1]:1".parse().unwrap();
        let dst: SocketAddr = "[fd00::2]:2".parse().unwrap();
        let p = outer(src, dst, b"x");
        let ip = ipv6::Packet::new_checked(&p[..]).unwrap();
        assert_eq!(ip.payload_len(), 9);
        let u = udp::Packet::new_checked(ip.payload()).unwrap();
        assert_ne!(u.checksum(), 0);
        assert!(u.verify_checksum(&src.ip(), &dst.ip()));
        assert_eq!(parse_outer(&p).unwrap().offset, 48);
    }

    #[test]
    fn write_outer_refuses_mixed_families_and_short_buffers() {
        let s6: SocketAddr = "[fd00::1]:1".parse().unwrap();
        let mut b = vec![0; 60];
        assert!(!write_outer(&mut b, v4([1, 1, 1, 1], 1), s6, 0));
        assert!(!write_outer(
            &mut b[..27],
            v4([1, 1, 1, 1], 1),
            v4([2, 2, 2, 2], 2),
            0
        ));
    }

    #[test]
    fn malformed_outer_headers_are_rejected() {
        let good = outer(v4([10, 0, 0, 1], 1), v4([10, 0, 0, 2], 2), b"abcd");
        assert!(parse_outer(&good).is_some());
        // Link padding after the packet is tolerated and excluded.
        let mut padded = good.clone();
        padded.extend_from_slice(&[0; 6]);
        assert_eq!(parse_outer(&padded).unwrap().len, 4);
        assert!(parse_outer(&[]).is_none());
        assert!(parse_outer(&good[..27]).is_none(), "truncated UDP header");
        let mut not_udp = good.clone();
        not_udp[9] = 6;
        assert!(parse_outer(&not_udp).is_none());
        let mut frag = good.clone();
        frag[6] = 0x20; // MF
        assert!(parse_outer(&frag).is_none());
        let mut bad_ulen = good.clone();
        bad_ulen[25] = 200;
        assert!(parse_outer(&bad_ulen).is_none());
        let mut port0 = good.clone();
        port0[22..24].copy_from_slice(&[0, 0]);
        assert!(parse_outer(&port0).is_none());
        let mut ver = good;
        ver[0] = 0x55;
        assert!(parse_outer(&ver).is_none());
    }

    #[test]
    fn loopback_round_trip_and_counters() {
        let open = |a: &str| UdpSocketPort::open(&UdpSocketConfig::new(a.parse().unwrap(), None));
        let mut a = open("127.0.0.1:0").unwrap();
        let mut b = open("127.0.0.1:0").unwrap();
        assert_ne!(a.local_addr().port(), 0, "ephemeral port reported");
        let mut pool = HeapPool::default();
        let mut pkts = vec![
            HeapBuf::from_slice(&outer(a.local_addr(), b.local_addr(), b"one")),
            // Wrong source port: still sent, counted.
            HeapBuf::from_slice(&outer(v4([127, 0, 0, 1], 9), b.local_addr(), b"two")),
            HeapBuf::from_slice(b"\x45garbage"),
        ];
        assert_eq!(a.tx_burst(&mut pool, &mut pkts), 2);
        assert!(pkts.is_empty());
        let ex = a.extra_stats();
        assert_eq!((ex.tx_src_mismatch, ex.tx_malformed), (1, 1));
        let st = a.stats();
        assert_eq!((st.tx_packets, st.tx_bytes, st.tx_dropped), (2, 6, 1));
        let mut out = Vec::new();
        for _ in 0..200 {
            b.rx_burst(&mut pool, &mut out, 32);
            if out.len() >= 2 {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(5));
        }
        assert_eq!(out.len(), 2);
        for (buf, want) in out.iter().zip([b"one", b"two"]) {
            let o = parse_outer(buf.data()).unwrap();
            assert_eq!(
                o.src,
                a.local_addr(),
                "the kernel's source, not the outer one"
            );
            assert_eq!(o.dst, b.local_addr());
            assert_eq!(&buf.data()[28..], want);
        }
        assert_eq!(b.stats().rx_packets, 2);
        assert_eq!(b.stats().rx_bytes, 2 * (28 + 3));
    }
}
