//! TUN ports: a Linux TUN interface (`/dev/net/tun`, `IFF_TUN | IFF_NO_PI`) as a [`Port`]. The
//! C-MADP's client side: applications' IP packets routed into the interface come out of
//! `rx_burst`, and what `tx_burst` writes is delivered to them as if it had arrived on a link.
//!
//! Buffers hold plain IP packets (IPv4 or IPv6, no packet-information header). TUN has no batch
//! read, so a burst is up to `max` `read(2)` calls, stopping at the first `EAGAIN`; transmit is one
//! `write(2)` per packet.
//!
//! Several workers can each own one queue of the same interface: open it once per worker with
//! [`TunConfig::multi_queue`] and the same name (the kernel spreads flows over the queues by
//! hash).
//!
//! The interface is created in the network namespace of the calling thread and stays there;
//! [`set_link_up`], [`set_mtu`] and [`add_address`] also act in the calling thread's namespace.

use std::io;
use std::mem;
use std::os::fd::{AsRawFd, OwnedFd};
use std::process::Command;

use pipelines::{HeapBuf, PacketBuf};

use super::sys::{self, last_err};
use super::{BufPool, Port, PortStats};

/// Options of [`TunPort::open`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TunConfig {
    /// Interface name (at most 15 bytes; may hold a `%d` pattern such as `mx%d`). `None`: the
    /// kernel chooses (`tunN`). The actual name is [`TunPort::ifname`].
    pub name: Option<String>,
    /// `IFF_MULTI_QUEUE`: every open of the same name adds one queue (one per worker).
    pub multi_queue: bool,
}

impl TunConfig {
    /// A single-queue interface named `name`.
    pub fn named(name: &str) -> Self {
        TunConfig {
            name: Some(name.to_string()),
            multi_queue: false,
        }
    }
}

/// Counters beyond [`PortStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TunExtraStats {
    /// Packets longer than the buffer's tailroom (the kernel cuts them on read), dropped.
    pub rx_truncated: u64,
    /// Packets not sent because they were empty or not IPv4/IPv6 by their version nibble.
    pub tx_not_ip: u64,
}

/// A TUN interface queue as a [`Port`].
pub struct TunPort {
    name: String,
    ifname: String,
    fd: OwnedFd,
    stats: PortStats,
    extra: TunExtraStats,
}

/// An `ifreq` carrying `name` (checked: non-empty, no NUL, at most IFNAMSIZ - 1 bytes).
fn ifreq_for(name: &str) -> io::Result<libc::ifreq> {
    let bytes = name.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ || bytes.contains(&0) {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "interface name must be 1 to 15 bytes without NUL",
        ));
    }
    // SAFETY: all-zero is a valid ifreq (empty name, zero union).
    let mut ifr: libc::ifreq = unsafe { mem::zeroed() };
    for (d, s) in ifr.ifr_name.iter_mut().zip(bytes) {
        *d = *s as libc::c_char;
    }
    Ok(ifr)
}

/// The name the kernel wrote back into `ifr`.
fn ifreq_name(ifr: &libc::ifreq) -> String {
    let bytes: Vec<u8> = ifr
        .ifr_name
        .iter()
        .take_while(|&&c| c != 0)
        .map(|&c| c as u8)
        .collect();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// A throwaway datagram socket for interface ioctls, in the calling thread's namespace.
fn ioctl_socket() -> io::Result<OwnedFd> {
    // SAFETY: plain system call with constant arguments.
    sys::owned_fd(unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) })
}

/// Sets interface `ifname` up (`SIOCGIFFLAGS` then `SIOCSIFFLAGS` with `IFF_UP`), in the calling
/// thread's network namespace.
pub fn set_link_up(ifname: &str) -> io::Result<()> {
    let sock = ioctl_socket()?;
    let mut ifr = ifreq_for(ifname)?;
    // SAFETY: `ifr` is a valid ifreq with a NUL-terminated name; the kernel writes the flags
    // member of the union, which we read back as such.
    unsafe {
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCGIFFLAGS, &mut ifr) < 0 {
            return Err(last_err());
        }
        ifr.ifr_ifru.ifru_flags |= libc::IFF_UP as libc::c_short;
        if libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFFLAGS, &ifr) < 0 {
            return Err(last_err());
        }
    }
    Ok(())
}

/// Sets the MTU of interface `ifname` (`SIOCSIFMTU`), in the calling thread's namespace.
pub fn set_mtu(ifname: &str, mtu: u32) -> io::Result<()> {
    let sock = ioctl_socket()?;
    let mut ifr = ifreq_for(ifname)?;
    ifr.ifr_ifru.ifru_mtu = libc::c_int::try_from(mtu)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "MTU out of range"))?;
    // SAFETY: `ifr` is a valid ifreq with the name and MTU set; the kernel only reads it.
    if unsafe { libc::ioctl(sock.as_raw_fd(), libc::SIOCSIFMTU, &ifr) } < 0 {
        return Err(last_err());
    }
    Ok(())
}

/// Adds address `cidr` (e.g. `10.0.0.1/24`, `fd00::1/64`) to `ifname` with `ip addr add` (IPv6
/// with `nodad`, so it is usable at once). Runs in the calling thread's namespace (the child
/// process inherits it). Meant for setup code and tests, not the fast path.
pub fn add_address(ifname: &str, cidr: &str) -> io::Result<()> {
    let mut cmd = Command::new("ip");
    cmd.args(["addr", "add", cidr, "dev", ifname]);
    if cidr.contains(':') {
        cmd.arg("nodad");
    }
    let out = cmd.output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip addr add {cidr} dev {ifname}: {}",
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Length an IP packet claims in its header (IPv4 total length, IPv6 40 + payload length), if
/// the fixed part is there.
fn claimed_len(pkt: &[u8]) -> Option<usize> {
    match pkt.first()? >> 4 {
        4 => Some(usize::from(u16::from_be_bytes([
            *pkt.get(2)?,
            *pkt.get(3)?,
        ]))),
        6 => Some(40 + usize::from(u16::from_be_bytes([*pkt.get(4)?, *pkt.get(5)?]))),
        _ => None,
    }
}

impl TunPort {
    /// Opens (creating if needed) a TUN interface in the calling thread's namespace,
    /// non-blocking. The interface is down until [`TunPort::set_up`]; it disappears when its last
    /// queue is closed (unless made persistent elsewhere).
    pub fn open(cfg: &TunConfig) -> io::Result<Self> {
        let mut ifr = match &cfg.name {
            Some(n) => ifreq_for(n)?,
            // SAFETY: all-zero is a valid ifreq; an empty name lets the kernel choose.
            None => unsafe { mem::zeroed() },
        };
        let path = c"/dev/net/tun";
        // SAFETY: `path` is a valid NUL-terminated string.
        let fd = sys::owned_fd(unsafe {
            libc::open(
                path.as_ptr(),
                libc::O_RDWR | libc::O_NONBLOCK | libc::O_CLOEXEC,
            )
        })?;
        let mut flags = libc::IFF_TUN | libc::IFF_NO_PI;
        if cfg.multi_queue {
            flags |= libc::IFF_MULTI_QUEUE;
        }
        ifr.ifr_ifru.ifru_flags = flags as libc::c_short;
        // SAFETY: `ifr` is a valid ifreq; TUNSETIFF reads the name and flags and writes back the
        // actual name into `ifr_name` (NUL-terminated within IFNAMSIZ).
        if unsafe { libc::ioctl(fd.as_raw_fd(), libc::TUNSETIFF, &mut ifr) } < 0 {
            return Err(last_err());
        }
        let ifname = ifreq_name(&ifr);
        Ok(TunPort {
            name: format!("tun:{ifname}"),
            ifname,
            fd,
            stats: PortStats::default(),
            extra: TunExtraStats::default(),
        })
    }

    /// The interface name the kernel gave (resolves `%d` patterns and `None`).
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// The interface index, looked up in the calling thread's namespace (0 if not found).
    pub fn ifindex(&self) -> u32 {
        sys::interface(&self.ifname).map_or(0, |(_, index)| index)
    }

    /// [`set_link_up`] on this interface (call from a thread in its namespace).
    pub fn set_up(&self) -> io::Result<()> {
        set_link_up(&self.ifname)
    }

    /// [`set_mtu`] on this interface (call from a thread in its namespace).
    pub fn set_mtu(&self, mtu: u32) -> io::Result<()> {
        set_mtu(&self.ifname, mtu)
    }

    /// [`add_address`] on this interface (call from a thread in its namespace).
    pub fn add_address(&self, cidr: &str) -> io::Result<()> {
        add_address(&self.ifname, cidr)
    }

    /// Counters beyond [`PortStats`].
    pub fn extra_stats(&self) -> TunExtraStats {
        self.extra
    }
}

sys::impl_as_fd!(TunPort);

impl Port<HeapBuf> for TunPort {
    fn name(&self) -> &str {
        &self.name
    }

    fn rx_burst(
        &mut self,
        pool: &mut dyn BufPool<HeapBuf>,
        out: &mut Vec<HeapBuf>,
        max: usize,
    ) -> usize {
        let mut got = 0;
        // At most `max` reads plus `max` truncated packets skipped, so the loop is bounded even
        // if the kernel always has data.
        let mut attempts = 0;
        while got < max && attempts < 2 * max {
            attempts += 1;
            let Some(mut b) = pool.alloc() else {
                self.stats.rx_nobuf += 1;
                break;
            };
            let (dst, room) = sys::grow_to_tailroom(&mut b);
            // SAFETY: `dst` is a live writable slice of exactly `dst.len()` bytes.
            let r = unsafe { libc::read(self.fd.as_raw_fd(), dst.as_mut_ptr().cast(), dst.len()) };
            if r <= 0 {
                // 0 would mean the interface is gone; EAGAIN: nothing more waiting.
                if r < 0 && ![libc::EAGAIN, libc::EINTR].contains(&sys::errno()) {
                    self.stats.rx_errors += 1;
                }
                pool.free(b);
                break;
            }
            let n = r as usize;
            // TUN cuts a packet longer than the read buffer without telling; the IP header
            // still tells the real length.
            if claimed_len(&b.data()[..n]).is_some_and(|l| l > n) {
                self.extra.rx_truncated += 1;
                pool.free(b);
                continue;
            }
            let _ = b.trim(room - n);
            self.stats.rx_bytes += n as u64;
            out.push(b);
            got += 1;
        }
        self.stats.rx_packets += got as u64;
        got
    }

    fn tx_burst(&mut self, pool: &mut dyn BufPool<HeapBuf>, pkts: &mut Vec<HeapBuf>) -> usize {
        let mut sent = 0;
        for b in pkts.drain(..) {
            let data = b.data();
            if !matches!(data.first().map(|v| v >> 4), Some(4) | Some(6)) {
                self.extra.tx_not_ip += 1;
                self.stats.tx_dropped += 1;
                pool.free(b);
                continue;
            }
            // SAFETY: `data` is a live slice of `data.len()` bytes; the kernel only reads it.
            let r = unsafe { libc::write(self.fd.as_raw_fd(), data.as_ptr().cast(), data.len()) };
            if r == data.len() as isize {
                sent += 1;
                self.stats.tx_bytes += data.len() as u64;
            } else {
                // EAGAIN (queue full), EINVAL (malformed for the kernel), EIO (interface down).
                self.stats.tx_errors += 1;
                self.stats.tx_dropped += 1;
            }
            pool.free(b);
        }
        self.stats.tx_packets += sent as u64;
        sent
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

impl core::fmt::Debug for TunPort {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("TunPort")
            .field("ifname", &self.ifname)
            .field("fd", &self.fd.as_raw_fd())
            .field("stats", &self.stats)
            .finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn claimed_len_reads_ipv4_and_ipv6_headers() {
        assert_eq!(claimed_len(&[0x45, 0, 0x05, 0xdc]), Some(1500));
        assert_eq!(claimed_len(&[0x60, 0, 0, 0, 0, 8]), Some(48));
        assert_eq!(claimed_len(&[0x45, 0]), None);
        assert_eq!(claimed_len(&[0x10, 0, 0, 0]), None);
        assert_eq!(claimed_len(&[]), None);
    }

    #[test]
    fn interface_names_are_checked() {
        assert!(ifreq_for("").is_err());
        assert!(ifreq_for("a\0b").is_err());
        assert!(ifreq_for("0123456789abcdef").is_err(), "16 bytes");
        let ifr = ifreq_for("0123456789abcde").unwrap();
        assert_eq!(ifreq_name(&ifr), "0123456789abcde");
        assert_eq!(
            TunPort::open(&TunConfig::named("0123456789abcdef"))
                .unwrap_err()
                .kind(),
            io::ErrorKind::InvalidInput
        );
    }
}
