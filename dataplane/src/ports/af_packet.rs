//! AF_PACKET ports: a Linux network interface as a [`Port`], one `recvmmsg`/`sendmmsg` system
//! call per burst (packet(7)).
//!
//! The runtime works on IP packets, so the usual mode is [`L2Mode::Ethernet`]: the 14-byte
//! Ethernet header is read into a per-message scratch area with a scatter read (the IP packet
//! lands at the buffer's headroom, nothing is moved) and non-IP frames are dropped and counted;
//! on transmit the header is gathered in front of the packet, so the buffer's headroom is not
//! needed. [`L2Mode::Raw`] hands whole frames both ways (what a bridge such as `mx-linkemu`
//! needs), and [`L2Mode::Cooked`] lets the kernel add and remove the link header (`SOCK_DGRAM`).
//!
//! Several workers can share one interface with [`Fanout`] (`PACKET_FANOUT`, hash mode keeps a
//! flow on one worker). [`AfPacketPort::as_raw_fd`] gives the descriptor for poll/epoll.
//!
//! Caveats: on interfaces with checksum offload the kernel may hand frames whose transport
//! checksum is only partial (`TP_STATUS_CSUMNOTREADY`); forwarding them unchanged to another
//! interface sends bad checksums. Disable tx checksum offload on the senders
//! (`ethtool -K dev tx off`) or fix checksums upstream. VLAN tags offloaded by the NIC are
//! not reinserted (`PACKET_AUXDATA` is not read).

use std::cell::Cell;
use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};

use pipelines::{HeapBuf, PacketBuf};

use super::sys::{self, last_err, setsockopt, MmsgBatch};
use super::{BufPool, Port, PortStats};

/// Length of an Ethernet II header (no VLAN tag).
pub const ETH_HDR_LEN: usize = 14;
/// Ethertype of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// Ethertype of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86DD;

/// How frames map to the buffers handed to and from the port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2Mode {
    /// Whole Ethernet frames both ways (`SOCK_RAW`), nothing filtered.
    Raw,
    /// IP packets in the buffers; Ethernet on the wire (`SOCK_RAW`). Receive strips the header
    /// and drops non-IP ethertypes (counted in [`AfPacketExtraStats::rx_filtered`]); transmit
    /// prepends `dst_mac`, `src_mac` and the ethertype chosen from the IP version nibble.
    Ethernet { src_mac: [u8; 6], dst_mac: [u8; 6] },
    /// IP packets in the buffers; the kernel removes and adds the link header (`SOCK_DGRAM`),
    /// sending to `dst_mac`. Non-IP packets are dropped on receive, as in `Ethernet`.
    Cooked { dst_mac: [u8; 6] },
}

/// `PACKET_FANOUT` algorithm (packet(7)).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum FanoutMode {
    /// By flow hash: one flow always reaches the same socket.
    #[default]
    Hash,
    /// Round robin.
    LoadBalance,
    /// By the CPU the packet arrived on.
    Cpu,
}

/// Membership of a fanout group: sockets bound to the same interface with the same `group_id`
/// share its traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Fanout {
    pub group_id: u16,
    pub mode: FanoutMode,
    /// Reassemble IP fragments before hashing, so all fragments reach the same socket
    /// (`PACKET_FANOUT_FLAG_DEFRAG`).
    pub defrag: bool,
}

impl Fanout {
    /// A hash-mode group with defragmentation.
    pub fn hash(group_id: u16) -> Self {
        Fanout {
            group_id,
            mode: FanoutMode::Hash,
            defrag: true,
        }
    }
}

/// Options of [`AfPacketPort::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AfPacketConfig {
    /// Interface name, looked up in the network namespace of the calling thread.
    pub ifname: String,
    pub mode: L2Mode,
    /// Put the interface in promiscuous mode for the socket's lifetime (`PACKET_MR_PROMISC`).
    /// Also decides whether frames addressed to other hosts are kept in `Ethernet`/`Cooked`
    /// mode.
    pub promiscuous: bool,
    /// Join a fanout group.
    pub fanout: Option<Fanout>,
    /// Do not receive what this host sends on the interface (`PACKET_IGNORE_OUTGOING`, with a
    /// software check of `PACKET_OUTGOING` as well, for kernels before 4.20).
    pub ignore_outgoing: bool,
    /// `SO_RCVBUF` in bytes (kernel default when `None`).
    pub rcvbuf: Option<usize>,
    /// `SO_SNDBUF` in bytes (kernel default when `None`).
    pub sndbuf: Option<usize>,
}

impl AfPacketConfig {
    /// Defaults: no promiscuous mode, no fanout, outgoing ignored, kernel buffer sizes.
    pub fn new(ifname: &str, mode: L2Mode) -> Self {
        AfPacketConfig {
            ifname: ifname.to_string(),
            mode,
            promiscuous: false,
            fanout: None,
            ignore_outgoing: true,
            rcvbuf: None,
            sndbuf: None,
        }
    }
}

/// Counters beyond [`PortStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct AfPacketExtraStats {
    /// Frames dropped on receive because they were not IPv4/IPv6 (Ethernet and Cooked modes),
    /// addressed to another host without `promiscuous`, or our own outgoing frames.
    pub rx_filtered: u64,
    /// Frames larger than the buffer (`MSG_TRUNC`), dropped.
    pub rx_truncated: u64,
    /// Packets not sent because they were not IPv4/IPv6 (Ethernet and Cooked modes) or empty.
    pub tx_not_ip: u64,
}

/// Per-burst arrays: two iovecs per message (the Ethernet header gathered or scattered apart
/// from the IP packet), a `sockaddr_ll` and a header area per message.
type Scratch = MmsgBatch<libc::sockaddr_ll, [u8; ETH_HDR_LEN]>;

/// A Linux interface as a [`Port`] over an AF_PACKET socket.
pub struct AfPacketPort {
    name: String,
    fd: OwnedFd,
    ifindex: i32,
    mode: L2Mode,
    keep_other_host: bool,
    ignore_outgoing: bool,
    mac: [u8; 6],
    stats: PortStats,
    extra: AfPacketExtraStats,
    /// Kernel drops read so far from `PACKET_STATISTICS` (which resets on read).
    kernel_drops: Cell<u64>,
    scratch: Scratch,
}

impl AfPacketPort {
    /// Opens a non-blocking AF_PACKET socket bound to `cfg.ifname` in the calling thread's
    /// network namespace (the socket stays in that namespace wherever it is used later).
    pub fn open(cfg: &AfPacketConfig) -> io::Result<Self> {
        let (_, ifindex) = sys::interface(&cfg.ifname)?;
        let ifindex = i32::try_from(ifindex)
            .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "ifindex out of range"))?;
        let ty = match cfg.mode {
            L2Mode::Cooked { .. } => libc::SOCK_DGRAM,
            _ => libc::SOCK_RAW,
        };
        // Protocol 0: the socket receives nothing until bound, so no frame from another
        // interface slips in between socket() and bind() (packet(7)).
        // SAFETY: plain system call with constant arguments.
        let fd = sys::owned_fd(unsafe {
            libc::socket(
                libc::AF_PACKET,
                ty | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        })?;
        let raw = fd.as_raw_fd();
        sys::set_buffer_sizes(raw, cfg.rcvbuf, cfg.sndbuf)?;
        if cfg.ignore_outgoing {
            // Not fatal before Linux 4.20: the receive path also checks PACKET_OUTGOING.
            let _ = setsockopt(
                raw,
                libc::SOL_PACKET,
                libc::PACKET_IGNORE_OUTGOING,
                &(1 as libc::c_int),
            );
        }
        // SAFETY: zero is a valid sockaddr_ll.
        let mut sll: libc::sockaddr_ll = unsafe { mem::zeroed() };
        sll.sll_family = libc::AF_PACKET as u16;
        sll.sll_protocol = (libc::ETH_P_ALL as u16).to_be();
        sll.sll_ifindex = ifindex;
        // SAFETY: `sll` is a valid sockaddr_ll and we pass its size.
        let r = unsafe {
            libc::bind(
                raw,
                (&sll as *const libc::sockaddr_ll).cast(),
                mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t,
            )
        };
        if r < 0 {
            return Err(last_err());
        }
        if cfg.promiscuous {
            // SAFETY: zero is a valid packet_mreq.
            let mut mreq: libc::packet_mreq = unsafe { mem::zeroed() };
            mreq.mr_ifindex = ifindex;
            mreq.mr_type = libc::PACKET_MR_PROMISC as u16;
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_ADD_MEMBERSHIP, &mreq)?;
        }
        if let Some(f) = cfg.fanout {
            // packet(7): the group id in the low 16 bits, mode and flags in the high 16; must
            // come after bind.
            let mode = match f.mode {
                FanoutMode::Hash => libc::PACKET_FANOUT_HASH,
                FanoutMode::LoadBalance => libc::PACKET_FANOUT_LB,
                FanoutMode::Cpu => libc::PACKET_FANOUT_CPU,
            };
            let flags = if f.defrag {
                libc::PACKET_FANOUT_FLAG_DEFRAG
            } else {
                0
            };
            let arg: u32 = u32::from(f.group_id) | ((mode | flags) << 16);
            setsockopt(raw, libc::SOL_PACKET, libc::PACKET_FANOUT, &arg)?;
        }
        // The bound address tells the interface's hardware address.
        // SAFETY: zero is a valid sockaddr_ll.
        let mut me: libc::sockaddr_ll = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
        // SAFETY: `me` is writable for `len` bytes; the kernel writes at most `len`.
        let r =
            unsafe { libc::getsockname(raw, (&mut me as *mut libc::sockaddr_ll).cast(), &mut len) };
        let mut mac = [0u8; 6];
        if r == 0 && me.sll_halen == 6 {
            mac.copy_from_slice(&me.sll_addr[..6]);
        }
        let port = AfPacketPort {
            name: format!("af_packet:{}", cfg.ifname),
            fd,
            ifindex,
            mode: cfg.mode,
            keep_other_host: cfg.promiscuous,
            ignore_outgoing: cfg.ignore_outgoing,
            mac,
            stats: PortStats::default(),
            extra: AfPacketExtraStats::default(),
            kernel_drops: Cell::new(0),
            scratch: Scratch::new(2),
        };
        // Reset the kernel counters so drops before open are not ours.
        let _ = port.read_kernel_drops();
        port.kernel_drops.set(0);
        Ok(port)
    }

    /// The interface index the socket is bound to.
    pub fn ifindex(&self) -> i32 {
        self.ifindex
    }

    /// The interface's hardware address (zero if it has none of 6 bytes).
    pub fn mac(&self) -> [u8; 6] {
        self.mac
    }

    /// Counters beyond [`PortStats`].
    pub fn extra_stats(&self) -> AfPacketExtraStats {
        self.extra
    }

    /// Reads and accumulates `PACKET_STATISTICS` drops (the kernel resets them on read).
    fn read_kernel_drops(&self) -> io::Result<u64> {
        // SAFETY: zero is a valid tpacket_stats.
        let mut st: libc::tpacket_stats = unsafe { mem::zeroed() };
        let mut len = mem::size_of::<libc::tpacket_stats>() as libc::socklen_t;
        // SAFETY: `st` is writable for `len` bytes.
        let r = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_PACKET,
                libc::PACKET_STATISTICS,
                (&mut st as *mut libc::tpacket_stats).cast(),
                &mut len,
            )
        };
        if r < 0 {
            return Err(last_err());
        }
        let total = self.kernel_drops.get() + u64::from(st.tp_drops);
        self.kernel_drops.set(total);
        Ok(total)
    }

    /// Whether a received frame is kept, given its `sockaddr_ll` and ethertype (host order).
    fn accept(&self, pkttype: u8, ethertype: u16) -> bool {
        if self.ignore_outgoing && pkttype == libc::PACKET_OUTGOING {
            return false;
        }
        match self.mode {
            L2Mode::Raw => true,
            L2Mode::Ethernet { .. } | L2Mode::Cooked { .. } => {
                (self.keep_other_host || pkttype != libc::PACKET_OTHERHOST)
                    && (ethertype == ETHERTYPE_IPV4 || ethertype == ETHERTYPE_IPV6)
            }
        }
    }
}

/// Ethertype of an IP packet from its version nibble.
fn ip_ethertype(pkt: &[u8]) -> Option<u16> {
    match pkt.first()? >> 4 {
        4 => Some(ETHERTYPE_IPV4),
        6 => Some(ETHERTYPE_IPV6),
        _ => None,
    }
}

sys::impl_as_fd!(AfPacketPort);

impl Port<HeapBuf> for AfPacketPort {
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
        let mut s = self.scratch.take();
        let n = s.alloc_rx(pool, max, 0, &mut self.stats);
        if n == 0 {
            self.scratch = s;
            return 0;
        }
        s.reserve(n);
        let eth = matches!(self.mode, L2Mode::Ethernet { .. });
        let per = if eth { 2 } else { 1 };
        for i in 0..n {
            // Grow the data over the whole tailroom so the kernel writes at the headroom; the
            // length is cut back to what was received below.
            let (dst, _) = sys::grow_to_tailroom(&mut s.bufs[i]);
            let data_iov = libc::iovec {
                iov_base: dst.as_mut_ptr().cast(),
                iov_len: dst.len(),
            };
            if eth {
                *s.iov_mut(i, 0) = libc::iovec {
                    iov_base: s.extra[i].as_mut_ptr().cast(),
                    iov_len: ETH_HDR_LEN,
                };
                *s.iov_mut(i, 1) = data_iov;
            } else {
                *s.iov_mut(i, 0) = data_iov;
            }
            let namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
            s.prepare(i, per, Some(namelen), false);
        }
        let benign = [libc::EAGAIN, libc::EINTR, libc::ENETDOWN];
        let got = s.recv(&self.fd, n, &benign, &mut self.stats);
        // Copies, so that the closure can borrow `self` for `accept`.
        let (mut extra, mut stats) = (self.extra, self.stats);
        let kept = s.deliver(got, pool, out, &mut stats, |m, a, hdr, b| {
            let total = m.msg_len as usize;
            let cap = b.len();
            if m.msg_hdr.msg_flags & libc::MSG_TRUNC != 0 {
                extra.rx_truncated += 1;
                return false;
            }
            let ethertype = if eth {
                if total < ETH_HDR_LEN {
                    extra.rx_filtered += 1;
                    return false;
                }
                u16::from_be_bytes([hdr[12], hdr[13]])
            } else {
                u16::from_be(a.sll_protocol)
            };
            if !self.accept(a.sll_pkttype, ethertype) {
                extra.rx_filtered += 1;
                return false;
            }
            let data_len = if eth { total - ETH_HDR_LEN } else { total };
            // `data_len <= cap` because MSG_TRUNC was not set.
            let _ = b.trim(cap.saturating_sub(data_len));
            true
        });
        (self.extra, self.stats) = (extra, stats);
        self.scratch = s;
        kept
    }

    fn tx_burst(&mut self, pool: &mut dyn BufPool<HeapBuf>, pkts: &mut Vec<HeapBuf>) -> usize {
        if pkts.is_empty() {
            return 0;
        }
        let mut s = self.scratch.take();
        s.bufs.clear();
        for b in pkts.drain(..) {
            let ok = match self.mode {
                L2Mode::Raw => !b.is_empty(),
                _ => ip_ethertype(b.data()).is_some(),
            };
            if ok {
                s.bufs.push(b);
            } else {
                self.extra.tx_not_ip += 1;
                self.stats.tx_dropped += 1;
                pool.free(b);
            }
        }
        let n = s.bufs.len();
        s.reserve(n);
        for i in 0..n {
            let b = &s.bufs[i];
            let ethertype = ip_ethertype(b.data()).unwrap_or(0);
            let data_iov = libc::iovec {
                // The kernel only reads from it (sendmmsg); the cast to *mut is what iovec
                // requires.
                iov_base: b.data().as_ptr() as *mut libc::c_void,
                iov_len: b.len(),
            };
            match self.mode {
                L2Mode::Raw => {
                    *s.iov_mut(i, 0) = data_iov;
                    s.prepare(i, 1, None, false);
                }
                L2Mode::Ethernet { src_mac, dst_mac } => {
                    let h = &mut s.extra[i];
                    h[..6].copy_from_slice(&dst_mac);
                    h[6..12].copy_from_slice(&src_mac);
                    h[12..].copy_from_slice(&ethertype.to_be_bytes());
                    let hdr_iov = libc::iovec {
                        iov_base: h.as_mut_ptr().cast(),
                        iov_len: ETH_HDR_LEN,
                    };
                    *s.iov_mut(i, 0) = hdr_iov;
                    *s.iov_mut(i, 1) = data_iov;
                    s.prepare(i, 2, None, false);
                }
                L2Mode::Cooked { dst_mac } => {
                    let a = &mut s.addrs[i];
                    a.sll_family = libc::AF_PACKET as u16;
                    a.sll_protocol = ethertype.to_be();
                    a.sll_ifindex = self.ifindex;
                    a.sll_halen = 6;
                    a.sll_addr = [0; 8];
                    a.sll_addr[..6].copy_from_slice(&dst_mac);
                    *s.iov_mut(i, 0) = data_iov;
                    let namelen = mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t;
                    s.prepare(i, 1, Some(namelen), false);
                }
            }
        }
        // EAGAIN/ENOBUFS: the queue is full; ENETDOWN/ENXIO: the device is gone. Any other
        // error (e.g. EMSGSIZE) concerns one packet.
        let fatal = [libc::EAGAIN, libc::ENOBUFS, libc::ENETDOWN, libc::ENXIO];
        let sent = s.send(&self.fd, &fatal, pool, &mut self.stats);
        self.scratch = s;
        sent
    }

    fn stats(&self) -> PortStats {
        let mut st = self.stats;
        st.rx_dropped = self.read_kernel_drops().unwrap_or(self.kernel_drops.get());
        st
    }
}

impl core::fmt::Debug for AfPacketPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("AfPacketPort")
            .field("name", &self.name)
            .field("fd", &self.fd.as_raw_fd())
            .field("ifindex", &self.ifindex)
            .field("mode", &self.mode)
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ports::HeapPool;

    #[test]
    fn ip_ethertype_from_version_nibble() {
        assert_eq!(ip_ethertype(&[0x45, 0]), Some(ETHERTYPE_IPV4));
        assert_eq!(ip_ethertype(&[0x60]), Some(ETHERTYPE_IPV6));
        assert_eq!(ip_ethertype(&[0x10]), None);
        assert_eq!(ip_ethertype(&[]), None);
    }

    #[test]
    fn open_unknown_interface_fails_cleanly() {
        let e = AfPacketPort::open(&AfPacketConfig::new("nonexistent-if0", L2Mode::Raw));
        assert!(e.is_err());
        let e = AfPacketPort::open(&AfPacketConfig::new("a\0b", L2Mode::Raw));
        assert_eq!(e.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }

    /// Loopback exists in every namespace; needs CAP_NET_RAW.
    #[test]
    fn loopback_raw_port_receives_nothing_when_idle_and_drops_non_ip_on_tx() {
        let cfg = AfPacketConfig::new(
            "lo",
            L2Mode::Ethernet {
                src_mac: [0; 6],
                dst_mac: [0; 6],
            },
        );
        let mut port = match AfPacketPort::open(&cfg) {
            Ok(p) => p,
            Err(e) if e.raw_os_error() == Some(libc::EPERM) => {
                eprintln!("skipped: needs root (CAP_NET_RAW)");
                return;
            }
            Err(e) => panic!("open lo: {e}"),
        };
        assert!(port.as_raw_fd() >= 0);
        let mut pool = HeapPool::new(64, 0, 128, 2048 + 128);
        let mut pkts = vec![HeapBuf::from_slice(&[0x10, 1, 2]), HeapBuf::default()];
        assert_eq!(port.tx_burst(&mut pool, &mut pkts), 0);
        assert!(pkts.is_empty());
        assert_eq!(port.extra_stats().tx_not_ip, 2);
        assert_eq!(port.stats().tx_dropped, 2);
        assert_eq!(pool.available(), 2, "dropped buffers go back to the pool");
        // An exhausted pool counts rx_nobuf and receives nothing.
        let mut empty = HeapPool::new(0, 0, 128, 2048);
        let mut out = Vec::new();
        assert_eq!(port.rx_burst(&mut empty, &mut out, 8), 0);
        assert_eq!(port.stats().rx_nobuf, 1);
    }
}
