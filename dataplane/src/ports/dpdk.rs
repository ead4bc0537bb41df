//! DPDK ports (feature `dpdk`): the EAL, mbuf pools and ethdev ports behind [`Port`].
//!
//! - [`Eal::init`] runs `rte_eal_init` once per process (a [`OnceLock`]); later calls return the
//!   same EAL, or its error. The arguments come from the configuration (without the program
//!   name), e.g. `-l 0 --no-huge -m 512 --no-pci --file-prefix nmadp-<pid> --vdev net_ring0`.
//!   The runtime directory of an explicit `--file-prefix` is removed at process exit.
//! - [`Mempool`] is an `rte_pktmbuf` pool; [`MbufPool`] is the per-worker [`BufPool`] over it.
//! - [`Mbuf`] owns one `rte_mbuf` and implements [`PacketBuf`] on its first segment.
//! - [`DpdkPort`] is one queue pair of a started ethdev (found by name, e.g. a vdev);
//!   [`DpdkPort::queue`] hands out the other queues, one per worker.
//!
//! Threads: the fast path (`rx_burst`/`tx_burst` on distinct queues, mbuf alloc/free) may run on
//! any thread. Threads that are not EAL lcores have `rte_lcore_id() == LCORE_ID_ANY` and use the
//! mempool without its per-lcore cache ([`MbufPool`] keeps a small stash of its own to make up
//! for it). Control calls (vdev creation, port configuration, close) are serialised by the
//! [`Eal`].
//!
//! The ethdev is stopped and closed when its last handle is dropped; closing releases the port
//! (DPDK >= 20.11), so opening it again needs the device re-created ([`Eal::remove_vdev`] and
//! [`Eal::create_vdev`] for a vdev).
//!
//! Caveats: multi-segment packets are not supported (received ones are dropped and counted in
//! [`DpdkExtraStats::rx_multiseg`]); no offloads are enabled; `Mempool`s are freed only when no
//! mbuf of theirs is in use, and leaked otherwise.

use std::collections::HashSet;
use std::ffi::{c_char, c_int, CStr, CString};
use std::fmt;
use std::ptr::{self, NonNull};
use std::sync::atomic::{AtomicBool, AtomicIsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use dpdk_sys as sys;
use pipelines::PacketBuf;

use super::{BufPool, Port, PortStats, BURST};

/// Length of an Ethernet II header.
pub const ETH_HDR_LEN: usize = 14;
const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_IPV6: u16 = 0x86DD;

/// A failed DPDK call: which operation, the (positive) error number and DPDK's text for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkError {
    pub op: String,
    pub errno: i32,
    pub message: String,
}

impl DpdkError {
    fn new(op: impl Into<String>, errno: i32) -> Self {
        let errno = errno.abs();
        // SAFETY: rte_strerror accepts any value and returns a pointer to a static or
        // thread-local NUL-terminated string.
        let msg = unsafe { sys::rte_strerror(errno) };
        let message = if msg.is_null() {
            format!("error {errno}")
        } else {
            // SAFETY: non-null, NUL-terminated (see above); copied out at once.
            unsafe { CStr::from_ptr(msg) }
                .to_string_lossy()
                .into_owned()
        };
        DpdkError {
            op: op.into(),
            errno,
            message,
        }
    }

    /// An error that is ours, not DPDK's (bad argument, misuse).
    fn usage(op: impl Into<String>, message: impl Into<String>) -> Self {
        DpdkError {
            op: op.into(),
            errno: libc::EINVAL,
            message: message.into(),
        }
    }

    /// The error DPDK left in `rte_errno`.
    fn from_rte_errno(op: impl Into<String>) -> Self {
        // SAFETY: reads the calling thread's rte_errno; no preconditions.
        let e = unsafe { sys::nmadp_errno() };
        DpdkError::new(op, e)
    }
}

impl fmt::Display for DpdkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {} (errno {})", self.op, self.message, self.errno)
    }
}

impl std::error::Error for DpdkError {}

pub type Result<T> = std::result::Result<T, DpdkError>;

/// Turns a negative-errno return into an error.
fn check(op: &str, ret: c_int) -> Result<c_int> {
    if ret < 0 {
        Err(DpdkError::new(op, ret))
    } else {
        Ok(ret)
    }
}

fn cstring(op: &str, s: &str) -> Result<CString> {
    CString::new(s).map_err(|_| DpdkError::usage(op, format!("NUL byte in {s:?}")))
}

/// The initialised Environment Abstraction Layer of this process.
pub struct Eal {
    args: Vec<String>,
    file_prefix: Option<String>,
    /// Serialises control-path calls (vdev creation, ethdev configure/start/close), which DPDK
    /// does not make thread-safe.
    control: Mutex<HashSet<u16>>,
}

static EAL: OnceLock<Result<Eal>> = OnceLock::new();
/// Runtime directory to remove at exit (set once, read by the `atexit` handler).
static RUNTIME_DIR: OnceLock<String> = OnceLock::new();

/// Offset in `rte_mbuf` of the dynamic field holding [`PacketBuf::rx_stamp`] (registered by
/// [`Eal::init`]); -1 until then or when registration failed (stamps then read as 0 and
/// per-packet latency is not measured).
static RX_STAMP_OFFSET: AtomicIsize = AtomicIsize::new(-1);

extern "C" fn remove_runtime_dir() {
    if let Some(dir) = RUNTIME_DIR.get() {
        let _ = std::fs::remove_dir_all(dir);
    }
}

/// The value of `--file-prefix` in `args` (`--file-prefix X` or `--file-prefix=X`).
fn file_prefix(args: &[String]) -> Option<String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--file-prefix" {
            return it.next().cloned();
        }
        if let Some(v) = a.strip_prefix("--file-prefix=") {
            return Some(v.to_string());
        }
    }
    None
}

/// Where the EAL keeps its runtime files for `prefix` (eal_create_runtime_dir): `/var/run/dpdk`
/// for root, `$XDG_RUNTIME_DIR/dpdk` (or `/tmp/dpdk`) otherwise.
fn runtime_dir(prefix: &str) -> String {
    // SAFETY: geteuid has no preconditions.
    let base = if unsafe { libc::geteuid() } == 0 {
        "/var/run".to_string()
    } else {
        std::env::var("XDG_RUNTIME_DIR").unwrap_or_else(|_| "/tmp".to_string())
    };
    format!("{base}/dpdk/{prefix}")
}

impl Eal {
    /// Initialises the EAL with `args` (EAL options, without the program name) the first time
    /// it is called in the process; later calls return the same EAL (or the same error) and
    /// fail if their arguments differ. `rte_eal_init` pins the calling thread to the main lcore:
    /// call this from a thread meant to be pinned (or from a short-lived one).
    pub fn init(args: &[String]) -> Result<&'static Eal> {
        let r = EAL.get_or_init(|| Eal::do_init(args));
        match r {
            Ok(eal) if eal.args == args => Ok(eal),
            Ok(eal) => Err(DpdkError::usage(
                "rte_eal_init",
                format!(
                    "EAL already initialised with other arguments {:?}",
                    eal.args
                ),
            )),
            Err(e) => Err(e.clone()),
        }
    }

    /// The EAL if [`Eal::init`] succeeded before.
    pub fn get() -> Option<&'static Eal> {
        EAL.get().and_then(|r| r.as_ref().ok())
    }

    fn do_init(args: &[String]) -> Result<Eal> {
        let op = "rte_eal_init";
        let mut owned = vec![cstring(op, "nmadp")?];
        for a in args {
            owned.push(cstring(op, a)?);
        }
        // The EAL may keep pointers into argv (and permutes the array): both live for the rest
        // of the process.
        let strings: &'static [CString] = Box::leak(owned.into_boxed_slice());
        let mut argv: Vec<*mut c_char> =
            strings.iter().map(|s| s.as_ptr() as *mut c_char).collect();
        argv.push(ptr::null_mut());
        let argv: &'static mut [*mut c_char] = Box::leak(argv.into_boxed_slice());
        let argc = c_int::try_from(strings.len())
            .map_err(|_| DpdkError::usage(op, "too many arguments"))?;
        let file_prefix = file_prefix(args);
        if let Some(p) = &file_prefix {
            if !p.is_empty() && !p.contains('/') && RUNTIME_DIR.set(runtime_dir(p)).is_ok() {
                // SAFETY: registers a plain extern "C" function without arguments.
                unsafe { libc::atexit(remove_runtime_dir) };
            }
        }
        // SAFETY: argv holds argc valid NUL-terminated strings followed by NULL, all leaked
        // (valid forever); OnceLock guarantees this runs once per process.
        let ret = unsafe { sys::rte_eal_init(argc, argv.as_mut_ptr()) };
        if ret < 0 {
            return Err(DpdkError::from_rte_errno(op));
        }
        // SAFETY: after rte_eal_init; registers a dynamic mbuf field (idempotent by name).
        let off = unsafe { sys::nmadp_rx_stamp_register() };
        if off >= 0 {
            RX_STAMP_OFFSET.store(off as isize, Ordering::Relaxed);
        }
        Ok(Eal {
            args: args.to_vec(),
            file_prefix,
            control: Mutex::new(HashSet::new()),
        })
    }

    /// The EAL arguments this process was initialised with.
    pub fn args(&self) -> &[String] {
        &self.args
    }

    /// The `--file-prefix`, if one was given.
    pub fn file_prefix(&self) -> Option<&str> {
        self.file_prefix.as_deref()
    }

    /// DPDK's version string, e.g. `DPDK 22.11.11`.
    pub fn version(&self) -> String {
        // SAFETY: rte_version returns a pointer to a static NUL-terminated string.
        unsafe { CStr::from_ptr(sys::rte_version()) }
            .to_string_lossy()
            .into_owned()
    }

    /// Ethdev ports currently available.
    pub fn port_count(&self) -> u16 {
        // SAFETY: no preconditions once the EAL is initialised (we are `&self`).
        unsafe { sys::rte_eth_dev_count_avail() }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashSet<u16>> {
        self.control.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Creates a virtual device at run time (`rte_vdev_init`), e.g. `("net_ring5", "")` or
    /// `("net_af_packet1", "iface=veth0")`. Interfaces are looked up in the network namespace
    /// of the calling thread.
    pub fn create_vdev(&self, name: &str, args: &str) -> Result<()> {
        let op = format!("rte_vdev_init({name})");
        let n = cstring(&op, name)?;
        let a = cstring(&op, args)?;
        let _g = self.lock();
        // SAFETY: two valid NUL-terminated strings; control calls serialised by `_g`.
        check(&op, unsafe { sys::rte_vdev_init(n.as_ptr(), a.as_ptr()) })?;
        Ok(())
    }

    /// Removes a virtual device created by [`Eal::create_vdev`] or `--vdev`. Its ports must be
    /// closed (dropped) first.
    pub fn remove_vdev(&self, name: &str) -> Result<()> {
        let op = format!("rte_vdev_uninit({name})");
        let n = cstring(&op, name)?;
        let g = self.lock();
        if let Ok(id) = port_id_by_name(name) {
            if g.contains(&id) {
                return Err(DpdkError::usage(op, "port still open"));
            }
        }
        // SAFETY: valid NUL-terminated string; control calls serialised by `g`.
        check(&op, unsafe { sys::rte_vdev_uninit(n.as_ptr()) })?;
        Ok(())
    }
}

fn port_id_by_name(name: &str) -> Result<u16> {
    let op = format!("rte_eth_dev_get_port_by_name({name})");
    let n = cstring(&op, name)?;
    let mut id = 0u16;
    // SAFETY: valid string and a valid out-pointer.
    check(&op, unsafe {
        sys::rte_eth_dev_get_port_by_name(n.as_ptr(), &mut id)
    })?;
    Ok(id)
}

/// An `rte_pktmbuf` mempool. Allocation and free are thread-safe (default ring ops).
pub struct Mempool {
    ptr: NonNull<sys::rte_mempool>,
    name: String,
}

// SAFETY: DPDK mempools with the default multi-producer/multi-consumer ring are safe to use
// from several threads at once; the pointer stays valid until `Drop`.
unsafe impl Send for Mempool {}
// SAFETY: as above: every method takes `&self` and calls MT-safe mempool functions.
unsafe impl Sync for Mempool {}

impl Mempool {
    /// A pool of `n` mbufs with a per-lcore cache of `cache` (used by EAL threads only) and a
    /// data room of `data_room` bytes (headroom included; 2176 is DPDK's default), on NUMA
    /// `socket` (`None`: any).
    pub fn new(
        _eal: &Eal,
        name: &str,
        n: u32,
        cache: u32,
        data_room: u16,
        socket: Option<i32>,
    ) -> Result<Arc<Mempool>> {
        let op = format!("rte_pktmbuf_pool_create({name})");
        let cname = cstring(&op, name)?;
        // SAFETY: trivial getter.
        let socket = socket.unwrap_or_else(|| unsafe { sys::nmadp_socket_id_any() });
        // SAFETY: valid name; the EAL is initialised (we hold `&Eal`).
        let p =
            unsafe { sys::rte_pktmbuf_pool_create(cname.as_ptr(), n, cache, 0, data_room, socket) };
        let ptr = NonNull::new(p).ok_or_else(|| DpdkError::from_rte_errno(&op))?;
        Ok(Arc::new(Mempool {
            ptr,
            name: name.to_string(),
        }))
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn as_ptr(&self) -> *mut sys::rte_mempool {
        self.ptr.as_ptr()
    }

    /// An mbuf with the default headroom and no data, or `None` when the pool is empty.
    pub fn alloc(&self) -> Option<Mbuf> {
        // SAFETY: the pool is valid while `self` lives.
        let m = unsafe { sys::nmadp_pktmbuf_alloc(self.ptr.as_ptr()) };
        NonNull::new(m).map(Mbuf)
    }

    /// Mbufs free in the pool (including per-lcore caches).
    pub fn available(&self) -> u32 {
        // SAFETY: valid pool.
        unsafe { sys::rte_mempool_avail_count(self.ptr.as_ptr()) }
    }

    /// Mbufs allocated from the pool and not yet returned (including those in NIC rings).
    pub fn in_use(&self) -> u32 {
        // SAFETY: valid pool.
        unsafe { sys::rte_mempool_in_use_count(self.ptr.as_ptr()) }
    }

    /// Bytes of data room per mbuf (headroom included).
    pub fn data_room(&self) -> u16 {
        // SAFETY: valid pktmbuf pool.
        unsafe { sys::nmadp_pktmbuf_data_room_size(self.ptr.as_ptr()) }
    }
}

impl Drop for Mempool {
    fn drop(&mut self) {
        // An `Mbuf` does not keep its pool alive (that would cost an atomic per packet):
        // freeing a pool with mbufs out would leave them dangling, so such a pool is leaked.
        if self.in_use() == 0 {
            // SAFETY: no mbuf of this pool exists any more and no other handle remains.
            unsafe { sys::rte_mempool_free(self.ptr.as_ptr()) };
        }
    }
}

impl fmt::Debug for Mempool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Mempool {{ name: {:?}, available: {}, in_use: {} }}",
            self.name,
            self.available(),
            self.in_use()
        )
    }
}

/// An owned `rte_mbuf`, freed on drop. [`PacketBuf`] works on the first segment; on a chained
/// mbuf (`nb_segs > 1`), `append` and `trim` refuse, so `data()` always is the whole packet
/// as far as it changes.
pub struct Mbuf(NonNull<sys::rte_mbuf>);

// SAFETY: an Mbuf is the only owner of its rte_mbuf (DPDK mbufs are plain memory, not tied to
// a thread); freeing from another thread goes through the MT-safe mempool.
unsafe impl Send for Mbuf {}

impl Mbuf {
    /// Takes ownership of `m`.
    ///
    /// # Safety
    /// `m` must be a valid mbuf that nothing else frees or uses afterwards.
    pub unsafe fn from_raw(m: NonNull<sys::rte_mbuf>) -> Self {
        Mbuf(m)
    }

    /// Gives up ownership (the caller must free the mbuf or pass it to DPDK).
    pub fn into_raw(self) -> NonNull<sys::rte_mbuf> {
        let p = self.0;
        std::mem::forget(self);
        p
    }

    pub fn as_ptr(&self) -> *mut sys::rte_mbuf {
        self.0.as_ptr()
    }

    /// Number of segments in the chain.
    #[inline]
    pub fn nb_segs(&self) -> u16 {
        // SAFETY: valid mbuf owned by self.
        unsafe { sys::mbuf::nb_segs(self.0.as_ptr()) }
    }

    /// Length of the whole packet (all segments).
    #[inline]
    pub fn pkt_len(&self) -> u32 {
        // SAFETY: valid mbuf owned by self.
        unsafe { sys::mbuf::pkt_len(self.0.as_ptr()) }
    }

    /// Appends `tail` (and its segments) to this packet's chain (`rte_pktmbuf_chain`); gives
    /// `tail` back when the chain would exceed DPDK's segment limit. Chained packets are for
    /// DPDK's use (e.g. a PMD's scatter tx): [`PacketBuf`] sees only the first segment, and
    /// [`DpdkPort`] drops chains it receives.
    pub fn chain(&mut self, tail: Mbuf) -> std::result::Result<(), Mbuf> {
        let t = tail.into_raw();
        // SAFETY: both are valid mbufs we own; on success the head owns `t` (freed with it),
        // on failure nothing changed and `t` is still ours.
        let r = unsafe { sys::nmadp_pktmbuf_chain(self.0.as_ptr(), t.as_ptr()) };
        if r == 0 {
            Ok(())
        } else {
            // SAFETY: refused, so `t` was not linked: ownership returns to the caller.
            Err(unsafe { Mbuf::from_raw(t) })
        }
    }

    // The accessors below read the rte_mbuf fields directly (`dpdk_sys::mbuf`, inline; the
    // bound layout is checked against the C shim in dpdk-sys's tests) instead of calling the
    // shim: the engine calls data()/data_mut() several times per packet.
    #[inline]
    fn data_len(&self) -> usize {
        // SAFETY: valid mbuf owned by self.
        usize::from(unsafe { sys::mbuf::data_len(self.0.as_ptr()) })
    }

    #[inline]
    fn data_ptr(&self) -> *mut u8 {
        // SAFETY: valid mbuf owned by self; mtod is buf_addr + data_off.
        unsafe { sys::mbuf::mtod(self.0.as_ptr()) }
    }
}

impl Drop for Mbuf {
    fn drop(&mut self) {
        // SAFETY: we own the mbuf (chain); it is not used afterwards.
        unsafe { sys::nmadp_pktmbuf_free(self.0.as_ptr()) }
    }
}

impl fmt::Debug for Mbuf {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Mbuf {{ headroom: {}, len: {}, tailroom: {}, nb_segs: {} }}",
            self.headroom(),
            self.len(),
            self.tailroom(),
            self.nb_segs()
        )
    }
}

impl PacketBuf for Mbuf {
    #[inline]
    fn data(&self) -> &[u8] {
        // SAFETY: mtod points at data_len initialised bytes of the first segment (the PMD or
        // our own writes filled them; alloc'd mbufs have data_len 0), inside the mbuf's
        // buffer, which we own for as long as the borrow of self.
        unsafe { std::slice::from_raw_parts(self.data_ptr(), self.data_len()) }
    }

    #[inline]
    fn data_mut(&mut self) -> &mut [u8] {
        // SAFETY: as in `data`, and `&mut self` makes the access exclusive. (A clone made with
        // rte_pktmbuf_clone would share it; we never make indirect mbufs.)
        unsafe { std::slice::from_raw_parts_mut(self.data_ptr(), self.data_len()) }
    }

    #[inline]
    fn headroom(&self) -> usize {
        // SAFETY: valid mbuf owned by self.
        usize::from(unsafe { sys::mbuf::headroom(self.0.as_ptr()) })
    }

    #[inline]
    fn tailroom(&self) -> usize {
        // SAFETY: valid mbuf owned by self.
        usize::from(unsafe { sys::mbuf::tailroom(self.0.as_ptr()) })
    }

    #[inline]
    fn len(&self) -> usize {
        self.data_len()
    }

    #[inline]
    fn prepend(&mut self, n: usize) -> Option<&mut [u8]> {
        let len = u16::try_from(n).ok()?;
        // SAFETY: valid mbuf owned by self; returns NULL (and changes nothing) if n > headroom.
        let p = unsafe { sys::mbuf::prepend(self.0.as_ptr(), len) };
        if p.is_null() {
            return None;
        }
        // SAFETY: p points at the n bytes just added in front of the data, inside the buffer
        // (contents are whatever the buffer held: initialised memory of the mempool).
        Some(unsafe { std::slice::from_raw_parts_mut(p, n) })
    }

    #[inline]
    fn append(&mut self, n: usize) -> Option<&mut [u8]> {
        if self.nb_segs() != 1 {
            return None;
        }
        let len = u16::try_from(n).ok()?;
        // SAFETY: valid single-segment mbuf; NULL (nothing changed) if n > tailroom.
        let p = unsafe { sys::mbuf::append(self.0.as_ptr(), len) };
        if p.is_null() {
            return None;
        }
        // SAFETY: p points at the n bytes just added after the data, inside the buffer.
        Some(unsafe { std::slice::from_raw_parts_mut(p, n) })
    }

    #[inline]
    fn adj(&mut self, n: usize) -> bool {
        let Ok(len) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: valid mbuf; NULL (nothing changed) if n > data_len of the first segment.
        !unsafe { sys::mbuf::adj(self.0.as_ptr(), len) }.is_null()
    }

    #[inline]
    fn trim(&mut self, n: usize) -> bool {
        if self.nb_segs() != 1 {
            return false;
        }
        let Ok(len) = u16::try_from(n) else {
            return false;
        };
        // SAFETY: valid single-segment mbuf; false (nothing changed) if n > data_len.
        unsafe { sys::mbuf::trim(self.0.as_ptr(), len) }
    }

    #[inline]
    fn rx_stamp(&self) -> u64 {
        // SAFETY: the registered dynamic field: 8 bytes, 8-aligned, inside the rte_mbuf self
        // owns.
        self.stamp_field().map_or(0, |p| unsafe { p.read() })
    }

    #[inline]
    fn set_rx_stamp(&mut self, at: u64) {
        if let Some(p) = self.stamp_field() {
            // SAFETY: as in rx_stamp; &mut self makes the access exclusive.
            unsafe { p.write(at) }
        }
    }
}

impl Mbuf {
    /// Where [`PacketBuf::rx_stamp`] lives in this mbuf (`None` when the dynamic field could
    /// not be registered).
    #[inline]
    fn stamp_field(&self) -> Option<*mut u64> {
        let off = RX_STAMP_OFFSET.load(Ordering::Relaxed);
        // wrapping_offset: plain address arithmetic; the field is inside the mbuf (offset from
        // rte_mbuf_dynfield_register).
        (off >= 0).then(|| {
            self.0
                .as_ptr()
                .cast::<u8>()
                .wrapping_offset(off)
                .cast::<u64>()
        })
    }
}

/// Mbufs kept by an [`MbufPool`] between bulk allocations.
const STASH: usize = 64;

/// A worker's [`BufPool`] over a [`Mempool`]. It takes mbufs from the mempool in bulk (a burst
/// at a time) and hands them out one by one, so threads without an lcore cache do not hit the
/// shared ring on every packet. Freeing returns the mbuf to the mempool.
pub struct MbufPool {
    pool: Arc<Mempool>,
    stash: Vec<NonNull<sys::rte_mbuf>>,
    /// Allocations refused because the mempool was empty.
    pub alloc_failures: u64,
}

// SAFETY: the stashed mbufs are owned by this pool alone (allocated, not yet handed out), so
// moving the pool to another thread moves their ownership with it.
unsafe impl Send for MbufPool {}

impl MbufPool {
    pub fn new(pool: Arc<Mempool>) -> Self {
        MbufPool {
            pool,
            stash: Vec::with_capacity(STASH),
            alloc_failures: 0,
        }
    }

    pub fn mempool(&self) -> &Arc<Mempool> {
        &self.pool
    }

    fn refill(&mut self) {
        let mut raw: [*mut sys::rte_mbuf; BURST] = [ptr::null_mut(); BURST];
        // SAFETY: `raw` has room for BURST pointers; on success all are valid fresh mbufs
        // (reset, refcnt 1), on failure none is taken.
        let r = unsafe {
            sys::nmadp_pktmbuf_alloc_bulk(self.pool.as_ptr(), raw.as_mut_ptr(), BURST as u32)
        };
        if r == 0 {
            self.stash
                .extend(raw.iter().rev().filter_map(|&m| NonNull::new(m)));
        }
    }
}

impl BufPool<Mbuf> for MbufPool {
    fn alloc(&mut self) -> Option<Mbuf> {
        if self.stash.is_empty() {
            self.refill();
        }
        // A buffer the data plane makes itself carries no receive time (the dynamic field
        // keeps whatever its last use wrote).
        if let Some(m) = self.stash.pop() {
            let mut b = Mbuf(m);
            b.set_rx_stamp(0);
            return Some(b);
        }
        // Fewer than a burst left in the mempool: one at a time.
        let mut m = self.pool.alloc();
        match m.as_mut() {
            Some(b) => b.set_rx_stamp(0),
            None => self.alloc_failures += 1,
        }
        m
    }

    fn free(&mut self, buf: Mbuf) {
        drop(buf);
    }
}

impl Drop for MbufPool {
    fn drop(&mut self) {
        for m in self.stash.drain(..) {
            // SAFETY: stashed mbufs are owned by us and never handed out.
            drop(unsafe { Mbuf::from_raw(m) });
        }
    }
}

/// What the buffers exchanged with a [`DpdkPort`] hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum L2Mode {
    /// Whole Ethernet frames both ways.
    Raw,
    /// IP packets in the buffers, Ethernet on the wire: receive removes the 14-byte header
    /// (`rte_pktmbuf_adj`, nothing moves) and drops non-IP frames (counted in
    /// [`DpdkExtraStats::rx_filtered`]); transmit prepends `dst_mac`, `src_mac` and the
    /// ethertype chosen by the IP version nibble, in the mbuf's headroom.
    Ethernet { src_mac: [u8; 6], dst_mac: [u8; 6] },
}

/// Options of [`DpdkPort::open`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkPortConfig {
    /// Ethdev name (`rte_eth_dev_get_port_by_name`), e.g. `net_ring0` or a PCI address.
    pub device: String,
    /// Rx and tx queues (one pair per worker).
    pub queues: u16,
    pub rx_desc: u16,
    pub tx_desc: u16,
    /// Spread received flows over the queues with RSS (IP/TCP/UDP hash) when `queues > 1` and
    /// the PMD supports it.
    pub rss: bool,
    /// Enable promiscuous mode (ignored where the PMD has none).
    pub promiscuous: bool,
    pub mode: L2Mode,
}

impl DpdkPortConfig {
    /// One queue pair, 1024 descriptors each way, RSS and promiscuous on, raw frames.
    pub fn new(device: &str) -> Self {
        DpdkPortConfig {
            device: device.to_string(),
            queues: 1,
            rx_desc: 1024,
            tx_desc: 1024,
            rss: true,
            promiscuous: true,
            mode: L2Mode::Raw,
        }
    }
}

/// Counters beyond [`PortStats`], per queue handle.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DpdkExtraStats {
    /// Chained (multi-segment) packets dropped on receive (also counted in
    /// [`PortStats::rx_dropped`]).
    pub rx_multiseg: u64,
    /// Frames dropped on receive in [`L2Mode::Ethernet`]: shorter than a header or not IP.
    pub rx_filtered: u64,
    /// Packets not sent in [`L2Mode::Ethernet`]: not IPv4/IPv6, or no headroom for the header.
    pub tx_not_ip: u64,
}

/// A configured and started ethdev, shared by its queue handles; stopped and closed when the
/// last handle goes.
struct Device {
    eal: &'static Eal,
    port_id: u16,
    name: String,
    queues: u16,
    rss: bool,
    mac: [u8; 6],
    claimed: Vec<AtomicBool>,
    pool: Arc<Mempool>,
}

impl Drop for Device {
    fn drop(&mut self) {
        let mut g = self.eal.lock();
        // SAFETY: the port was configured and started by us; no queue handle remains (this is
        // the last Arc), so no rx/tx runs concurrently; control calls serialised by `g`.
        unsafe {
            sys::rte_eth_dev_stop(self.port_id);
            sys::rte_eth_dev_close(self.port_id);
        }
        g.remove(&self.port_id);
    }
}

/// One rx/tx queue pair of a DPDK ethdev, implementing [`Port`]. Each worker gets its own via
/// [`DpdkPort::queue`]. [`Port::stats`] counts what passed through this handle; the device's
/// own counters are in [`DpdkPort::device_stats`] and [`DpdkPort::xstats`].
pub struct DpdkPort {
    dev: Arc<Device>,
    queue: u16,
    mode: L2Mode,
    label: String,
    stats: PortStats,
    extra: DpdkExtraStats,
}

impl DpdkPort {
    /// Configures `cfg.device` with `cfg.queues` queue pairs whose receive buffers come from
    /// `pool`, starts it and returns the handle of queue 0.
    pub fn open(eal: &'static Eal, cfg: &DpdkPortConfig, pool: Arc<Mempool>) -> Result<DpdkPort> {
        let dname = cfg.device.as_str();
        let port_id = port_id_by_name(dname)?;
        let mut g = eal.lock();
        if g.contains(&port_id) {
            return Err(DpdkError::usage(
                format!("open {dname}"),
                "port already open in this process",
            ));
        }
        if cfg.queues == 0 {
            return Err(DpdkError::usage(
                format!("open {dname}"),
                "queues must be >= 1",
            ));
        }
        // SAFETY: all-zero is the documented "defaults" value of these plain C structs.
        let mut info: sys::rte_eth_dev_info = unsafe { std::mem::zeroed() };
        // SAFETY: valid port id and out-pointer; control calls serialised by `g`.
        check("rte_eth_dev_info_get", unsafe {
            sys::rte_eth_dev_info_get(port_id, &mut info)
        })?;
        if cfg.queues > info.max_rx_queues || cfg.queues > info.max_tx_queues {
            return Err(DpdkError::usage(
                format!("open {dname}"),
                format!(
                    "{} queues requested, the device has {} rx / {} tx",
                    cfg.queues, info.max_rx_queues, info.max_tx_queues
                ),
            ));
        }
        let mut conf = sys::rte_eth_conf::default();
        // SAFETY: trivial getter of a constant.
        let want_hf = unsafe { sys::nmadp_rss_hf_ip_tcp_udp() };
        let hf = want_hf & info.flow_type_rss_offloads;
        let rss = cfg.queues > 1 && cfg.rss && hf != 0;
        if rss {
            conf.rxmode.mq_mode = sys::RTE_ETH_MQ_RX_RSS;
            conf.rx_adv_conf.rss_conf.rss_hf = hf;
        }
        // SAFETY: valid port and conf; serialised by `g`.
        check("rte_eth_dev_configure", unsafe {
            sys::rte_eth_dev_configure(port_id, cfg.queues, cfg.queues, &conf)
        })?;
        let (mut nb_rx, mut nb_tx) = (cfg.rx_desc, cfg.tx_desc);
        // SAFETY: valid port and out-pointers.
        check("rte_eth_dev_adjust_nb_rx_tx_desc", unsafe {
            sys::rte_eth_dev_adjust_nb_rx_tx_desc(port_id, &mut nb_rx, &mut nb_tx)
        })?;
        // SAFETY: valid port.
        let socket = unsafe { sys::rte_eth_dev_socket_id(port_id) };
        let socket = u32::try_from(socket).unwrap_or(u32::MAX); // SOCKET_ID_ANY is -1
        for q in 0..cfg.queues {
            // SAFETY: configured port, queue in range, NULL conf = PMD defaults, valid pool
            // that outlives the port (the Device holds an Arc).
            check("rte_eth_rx_queue_setup", unsafe {
                sys::rte_eth_rx_queue_setup(port_id, q, nb_rx, socket, ptr::null(), pool.as_ptr())
            })?;
            // SAFETY: as above.
            check("rte_eth_tx_queue_setup", unsafe {
                sys::rte_eth_tx_queue_setup(port_id, q, nb_tx, socket, ptr::null())
            })?;
        }
        // SAFETY: configured port with all queues set up.
        check("rte_eth_dev_start", unsafe {
            sys::rte_eth_dev_start(port_id)
        })?;
        if cfg.promiscuous {
            // SAFETY: started port. Not all PMDs support it (net_ring): the error is ignored.
            unsafe { sys::rte_eth_promiscuous_enable(port_id) };
        }
        let mut mac = sys::rte_ether_addr::default();
        // SAFETY: valid port and out-pointer.
        unsafe { sys::rte_eth_macaddr_get(port_id, &mut mac) };
        g.insert(port_id);
        drop(g);
        let dev = Arc::new(Device {
            eal,
            port_id,
            name: dname.to_string(),
            queues: cfg.queues,
            rss,
            mac: mac.addr_bytes,
            claimed: (0..cfg.queues).map(|q| AtomicBool::new(q == 0)).collect(),
            pool,
        });
        Ok(DpdkPort::handle(dev, 0, cfg.mode))
    }

    fn handle(dev: Arc<Device>, queue: u16, mode: L2Mode) -> DpdkPort {
        let label = if dev.queues > 1 {
            format!("dpdk:{}/{}", dev.name, queue)
        } else {
            format!("dpdk:{}", dev.name)
        };
        DpdkPort {
            dev,
            queue,
            mode,
            label,
            stats: PortStats::default(),
            extra: DpdkExtraStats::default(),
        }
    }

    /// The handle of queue `q` (for another worker), with the same [`L2Mode`]. Each queue can
    /// be held by one handle at a time; dropping the handle releases it.
    pub fn queue(&self, q: u16) -> Result<DpdkPort> {
        let op = format!("queue {q} of {}", self.dev.name);
        let slot = self.dev.claimed.get(usize::from(q)).ok_or_else(|| {
            DpdkError::usage(&op, format!("the port has {} queues", self.dev.queues))
        })?;
        if slot.swap(true, Ordering::AcqRel) {
            return Err(DpdkError::usage(op, "queue already in use"));
        }
        Ok(DpdkPort::handle(self.dev.clone(), q, self.mode))
    }

    /// The [`L2Mode`] of this handle.
    pub fn mode(&self) -> L2Mode {
        self.mode
    }

    /// Changes the [`L2Mode`] of this handle only (e.g. a capture worker that wants frames).
    pub fn set_mode(&mut self, mode: L2Mode) {
        self.mode = mode;
    }

    /// Queue index of this handle.
    pub fn queue_id(&self) -> u16 {
        self.queue
    }

    /// Number of queue pairs the port was configured with.
    pub fn queues(&self) -> u16 {
        self.dev.queues
    }

    /// DPDK's port id.
    pub fn port_id(&self) -> u16 {
        self.dev.port_id
    }

    /// The device's MAC address.
    pub fn mac(&self) -> [u8; 6] {
        self.dev.mac
    }

    /// Whether RSS spreads received packets over the queues.
    pub fn rss(&self) -> bool {
        self.dev.rss
    }

    /// The mempool receive buffers come from.
    pub fn mempool(&self) -> &Arc<Mempool> {
        &self.dev.pool
    }

    pub fn extra_stats(&self) -> DpdkExtraStats {
        self.extra
    }

    /// The device's counters (`rte_eth_stats_get`), all queues together: `imissed` is
    /// reported as `rx_dropped`, `ierrors`/`oerrors` as `rx_errors`/`tx_errors`, `rx_nombuf`
    /// as `rx_nobuf`; `tx_dropped` is not known to the device and stays 0.
    pub fn device_stats(&self) -> Result<PortStats> {
        let mut st = sys::rte_eth_stats::default();
        // SAFETY: valid started port and out-pointer; reading stats is allowed concurrently
        // with the fast path.
        check("rte_eth_stats_get", unsafe {
            sys::rte_eth_stats_get(self.dev.port_id, &mut st)
        })?;
        Ok(PortStats {
            rx_packets: st.ipackets,
            rx_bytes: st.ibytes,
            tx_packets: st.opackets,
            tx_bytes: st.obytes,
            rx_dropped: st.imissed,
            tx_dropped: 0,
            rx_errors: st.ierrors,
            tx_errors: st.oerrors,
            rx_nobuf: st.rx_nombuf,
        })
    }

    /// The device's extended statistics by name (`rte_eth_xstats_get_names`/`_get`).
    pub fn xstats(&self) -> Result<Vec<(String, u64)>> {
        let port = self.dev.port_id;
        // SAFETY: a NULL array with size 0 asks for the count.
        let n = check("rte_eth_xstats_get_names", unsafe {
            sys::rte_eth_xstats_get_names(port, ptr::null_mut(), 0)
        })?;
        let n = usize::try_from(n).unwrap_or(0);
        let mut names = vec![sys::rte_eth_xstat_name::default(); n];
        let mut vals = vec![sys::rte_eth_xstat::default(); n];
        let size = u32::try_from(n).unwrap_or(u32::MAX);
        // SAFETY: `names` has room for n entries.
        let got_names = check("rte_eth_xstats_get_names", unsafe {
            sys::rte_eth_xstats_get_names(port, names.as_mut_ptr(), size)
        })?;
        // SAFETY: `vals` has room for n entries.
        let got_vals = check("rte_eth_xstats_get", unsafe {
            sys::rte_eth_xstats_get(port, vals.as_mut_ptr(), size)
        })?;
        // The count can change between calls (a PMD adding queues): use what both returned.
        let m = usize::try_from(got_names.min(got_vals)).unwrap_or(0).min(n);
        let mut out = Vec::with_capacity(m);
        for v in &vals[..m] {
            let Some(name) = usize::try_from(v.id).ok().and_then(|i| names.get(i)) else {
                continue;
            };
            let bytes: Vec<u8> = name
                .name
                .iter()
                .take_while(|&&c| c != 0)
                .map(|&c| c as u8)
                .collect();
            out.push((String::from_utf8_lossy(&bytes).into_owned(), v.value));
        }
        Ok(out)
    }

    /// Applies the receive side of the [`L2Mode`]: true to keep the packet.
    fn rx_l2(&mut self, m: &mut Mbuf) -> bool {
        match self.mode {
            L2Mode::Raw => true,
            L2Mode::Ethernet { .. } => {
                let et = match m.data().get(12..14) {
                    Some(b) => u16::from_be_bytes([b[0], b[1]]),
                    None => 0,
                };
                if et != ETHERTYPE_IPV4 && et != ETHERTYPE_IPV6 {
                    return false;
                }
                m.adj(ETH_HDR_LEN)
            }
        }
    }

    /// Applies the transmit side of the [`L2Mode`]: true to send the packet.
    fn tx_l2(mode: L2Mode, m: &mut Mbuf) -> bool {
        match mode {
            L2Mode::Raw => true,
            L2Mode::Ethernet { src_mac, dst_mac } => {
                let et = match m.data().first().map(|b| b >> 4) {
                    Some(4) => ETHERTYPE_IPV4,
                    Some(6) => ETHERTYPE_IPV6,
                    _ => return false,
                };
                let Some(h) = m.prepend(ETH_HDR_LEN) else {
                    return false;
                };
                h[0..6].copy_from_slice(&dst_mac);
                h[6..12].copy_from_slice(&src_mac);
                h[12..14].copy_from_slice(&et.to_be_bytes());
                true
            }
        }
    }
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        if let Some(slot) = self.dev.claimed.get(usize::from(self.queue)) {
            slot.store(false, Ordering::Release);
        }
    }
}

impl Port<Mbuf> for DpdkPort {
    fn name(&self) -> &str {
        &self.label
    }

    fn rx_burst(
        &mut self,
        _pool: &mut dyn BufPool<Mbuf>,
        out: &mut Vec<Mbuf>,
        max: usize,
    ) -> usize {
        // Receive buffers come from the mempool given at queue setup, not from `_pool`.
        let mut raw: [*mut sys::rte_mbuf; BURST] = [ptr::null_mut(); BURST];
        let mut kept = 0;
        let mut left = max;
        while left > 0 {
            let want = left.min(BURST);
            // SAFETY: this handle exclusively owns queue `self.queue` of a started port (the
            // `claimed` flag); `raw` has room for `want` <= BURST pointers.
            let n = unsafe {
                sys::nmadp_eth_rx_burst(self.dev.port_id, self.queue, raw.as_mut_ptr(), want as u16)
            };
            let n = usize::from(n).min(want);
            for &p in &raw[..n] {
                let Some(p) = NonNull::new(p) else { continue };
                // SAFETY: the PMD hands over ownership of every returned mbuf.
                let mut m = unsafe { Mbuf::from_raw(p) };
                if m.nb_segs() != 1 {
                    self.extra.rx_multiseg += 1;
                    self.stats.rx_dropped += 1;
                    continue;
                }
                if !self.rx_l2(&mut m) {
                    self.extra.rx_filtered += 1;
                    continue;
                }
                self.stats.rx_packets += 1;
                self.stats.rx_bytes += m.len() as u64;
                out.push(m);
                kept += 1;
            }
            if n < want {
                break;
            }
            left -= n;
        }
        kept
    }

    fn tx_burst(&mut self, pool: &mut dyn BufPool<Mbuf>, pkts: &mut Vec<Mbuf>) -> usize {
        let mut raw: [*mut sys::rte_mbuf; BURST] = [ptr::null_mut(); BURST];
        let mut lens = [0u64; BURST];
        let mut sent_total = 0;
        let mode = self.mode;
        let mut drain = pkts.drain(..);
        loop {
            let mut n = 0;
            while n < BURST {
                let Some(mut m) = drain.next() else { break };
                if !DpdkPort::tx_l2(mode, &mut m) {
                    self.extra.tx_not_ip += 1;
                    self.stats.tx_dropped += 1;
                    pool.free(m);
                    continue;
                }
                lens[n] = m.len() as u64;
                raw[n] = m.into_raw().as_ptr();
                n += 1;
            }
            if n == 0 {
                break;
            }
            // SAFETY: exclusive owner of this tx queue; raw[..n] are valid mbufs we own. The
            // PMD takes ownership of the first `sent` of them.
            let sent = unsafe {
                sys::nmadp_eth_tx_burst(self.dev.port_id, self.queue, raw.as_mut_ptr(), n as u16)
            };
            let sent = usize::from(sent).min(n);
            for &p in &raw[sent..n] {
                if let Some(p) = NonNull::new(p) {
                    // SAFETY: refused by the PMD, so still ours.
                    pool.free(unsafe { Mbuf::from_raw(p) });
                }
                self.stats.tx_dropped += 1;
            }
            self.stats.tx_packets += sent as u64;
            self.stats.tx_bytes += lens[..sent].iter().sum::<u64>();
            sent_total += sent;
        }
        sent_total
    }

    fn stats(&self) -> PortStats {
        self.stats
    }
}

impl crate::runtime::pool::WorkerBufPool<Mbuf> for MbufPool {
    fn cached(&self) -> usize {
        self.stash.len()
    }

    fn flush(&mut self) {
        for m in self.stash.drain(..) {
            // SAFETY: stashed mbufs are owned by us and never handed out.
            drop(unsafe { Mbuf::from_raw(m) });
        }
    }
}

impl Eal {
    /// Registers the calling thread as a non-EAL lcore (`rte_thread_register`, DPDK >= 20.11):
    /// it gets an lcore id, so mempool per-lcore caches work on it. Returns the lcore id.
    ///
    /// Why not `rte_eal_remote_launch`: the runtime owns its threads (names, pinning to
    /// `node.cores`, bounded joins at shutdown) and runs the same code over heap buffers;
    /// registering keeps all that and costs nothing per packet. The EAL refuses it while a
    /// secondary process is attached (multi-process in use).
    pub fn register_thread(&self) -> Result<u32> {
        // SAFETY: the EAL is initialised (we hold `&Eal`); no other precondition.
        if unsafe { sys::rte_thread_register() } != 0 {
            return Err(DpdkError::from_rte_errno("rte_thread_register"));
        }
        // SAFETY: trivial getter of the calling thread's lcore id.
        Ok(unsafe { sys::nmadp_lcore_id() })
    }

    /// Releases the calling thread's lcore id (`rte_thread_unregister`); harmless on a thread
    /// that did not register.
    pub fn unregister_thread(&self) {
        // SAFETY: the EAL is initialised; a thread without a non-EAL lcore id is left alone.
        unsafe { sys::rte_thread_unregister() }
    }

    /// Creates two ethdevs joined back to back (`rte_eth_from_rings` over two single-producer
    /// single-consumer rings of `size` slots): what `a` transmits `b` receives and the other
    /// way round, one queue pair each. The `net_ring` vdev cannot do this (its queue `i`
    /// transmits into its own rx queue `i`, and `nodeaction=...:ATTACH` shares those same
    /// rings). Used for in-process links (tests). The rings are never freed. Returns the two
    /// ethdev names, `net_ring_<a>` and `net_ring_<b>`.
    pub fn ring_pair(&self, a: &str, b: &str, size: u32) -> Result<(String, String)> {
        let op = format!("ring_pair({a}, {b})");
        let ca = cstring(&op, a)?;
        let cb = cstring(&op, b)?;
        let ra = cstring(&op, &format!("{a}>{b}"))?;
        let rb = cstring(&op, &format!("{b}>{a}"))?;
        let flags = sys::RING_F_SP_ENQ | sys::RING_F_SC_DEQ;
        let _g = self.lock();
        // SAFETY: trivial getter.
        let any = unsafe { sys::nmadp_socket_id_any() };
        // SAFETY: valid names; EAL initialised.
        let ab = unsafe { sys::rte_ring_create(ra.as_ptr(), size, any, flags) };
        if ab.is_null() {
            return Err(DpdkError::from_rte_errno(format!("{op}: rte_ring_create")));
        }
        // SAFETY: as above.
        let ba = unsafe { sys::rte_ring_create(rb.as_ptr(), size, any, flags) };
        if ba.is_null() {
            let e = DpdkError::from_rte_errno(format!("{op}: rte_ring_create"));
            // SAFETY: created above, used by nothing.
            unsafe { sys::rte_ring_free(ab) };
            return Err(e);
        }
        let numa = u32::try_from(any).unwrap_or(u32::MAX);
        // SAFETY: valid name, arrays of one valid ring each; the ethdev keeps the ring
        // pointers (the rings live for the rest of the process).
        let r = unsafe { sys::rte_eth_from_rings(ca.as_ptr(), &ba, 1, &ab, 1, numa) };
        if r < 0 {
            return Err(DpdkError::from_rte_errno(format!(
                "{op}: rte_eth_from_rings"
            )));
        }
        // SAFETY: as above, the other way round.
        let r = unsafe { sys::rte_eth_from_rings(cb.as_ptr(), &ab, 1, &ba, 1, numa) };
        if r < 0 {
            return Err(DpdkError::from_rte_errno(format!(
                "{op}: rte_eth_from_rings"
            )));
        }
        Ok((format!("net_ring_{a}"), format!("net_ring_{b}")))
    }
}

/// The NUMA node of CPU `core` (from sysfs), 0 when unknown.
pub fn cpu_socket(core: usize) -> i32 {
    let dir = format!("/sys/devices/system/cpu/cpu{core}");
    std::fs::read_dir(dir)
        .ok()
        .and_then(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    e.file_name()
                        .to_str()
                        .and_then(|n| n.strip_prefix("node"))
                        .and_then(|n| n.parse::<i32>().ok())
                })
                .next()
        })
        .unwrap_or(0)
}

/// The runtime's [`Buffers`](crate::runtime::pool::Buffers) over DPDK: mbufs from one mempool
/// per NUMA socket (a worker's pool is the one of its socket), workers registered as non-EAL
/// lcores at start ([`Eal::register_thread`]) so that the mempool's per-lcore cache serves
/// them, and unregistered at exit.
pub struct DpdkBuffers {
    eal: &'static Eal,
    /// `(socket, pool)`; `socket` -1 is "any".
    pools: Vec<(i32, Arc<Mempool>)>,
    /// Index into `pools` of each worker.
    worker_pool: Vec<usize>,
}

impl DpdkBuffers {
    /// One mempool of `mbufs` mbufs (cache `cache`, DPDK's default data room) per distinct
    /// socket of the workers' `cores` (`cores[w]` of worker `w`; workers without a core share a
    /// pool on any socket). Pool names start with `name` (at most 20 bytes).
    pub fn new(
        eal: &'static Eal,
        name: &str,
        workers: usize,
        cores: &[u32],
        mbufs: u32,
        cache: u32,
    ) -> Result<DpdkBuffers> {
        // SAFETY: trivial getters.
        let (any, room) = unsafe {
            (
                sys::nmadp_socket_id_any(),
                sys::nmadp_mbuf_default_buf_size(),
            )
        };
        let mut pools: Vec<(i32, Arc<Mempool>)> = Vec::new();
        let mut worker_pool = Vec::with_capacity(workers);
        for w in 0..workers {
            let socket = cores.get(w).map_or(any, |&c| cpu_socket(c as usize));
            let i = match pools.iter().position(|(s, _)| *s == socket) {
                Some(i) => i,
                None => {
                    let pname = format!("{name}_s{}", pools.len());
                    let mp = match Mempool::new(eal, &pname, mbufs, cache, room, Some(socket)) {
                        Ok(mp) => mp,
                        // Memory on that socket may be missing (--no-huge, -m): any will do.
                        Err(_) if socket != any => {
                            Mempool::new(eal, &pname, mbufs, cache, room, None)?
                        }
                        Err(e) => return Err(e),
                    };
                    pools.push((socket, mp));
                    pools.len() - 1
                }
            };
            worker_pool.push(i);
        }
        if pools.is_empty() {
            let mp = Mempool::new(eal, &format!("{name}_s0"), mbufs, cache, room, None)?;
            pools.push((any, mp));
        }
        Ok(DpdkBuffers {
            eal,
            pools,
            worker_pool,
        })
    }

    /// The mempool worker `w` allocates from.
    pub fn mempool(&self, w: usize) -> &Arc<Mempool> {
        let i = self.worker_pool.get(w).copied().unwrap_or(0);
        &self.pools[i].1
    }

    /// The mempool for a device on `socket` (its own socket's, else the first).
    pub fn mempool_for_socket(&self, socket: i32) -> &Arc<Mempool> {
        self.pools
            .iter()
            .find(|(s, _)| *s == socket)
            .map_or(&self.pools[0].1, |(_, p)| p)
    }

    /// Every mempool with its socket.
    pub fn mempools(&self) -> &[(i32, Arc<Mempool>)] {
        &self.pools
    }
}

impl crate::runtime::pool::Buffers for DpdkBuffers {
    type Buf = Mbuf;
    type Pool = MbufPool;

    fn worker_pool(&self, worker: usize) -> MbufPool {
        MbufPool::new(self.mempool(worker).clone())
    }

    fn thread_start(&self, _worker: usize) -> std::result::Result<(), String> {
        self.eal
            .register_thread()
            .map(|_| ())
            .map_err(|e| format!("{e} (the worker runs without a mempool cache)"))
    }

    fn thread_stop(&self, _worker: usize) {
        self.eal.unregister_thread();
    }
}

/// The device behind a [`DpdkPort`], for reading its counters from another thread
/// ([`crate::runtime::PortDevice`]). Does not keep the device open: once every queue handle is
/// gone, reads fail with "closed".
#[derive(Clone)]
pub struct DpdkDevice {
    dev: std::sync::Weak<Device>,
    name: String,
}

impl DpdkPort {
    /// A handle on this port's device for its counters.
    pub fn device(&self) -> DpdkDevice {
        DpdkDevice {
            dev: Arc::downgrade(&self.dev),
            name: self.dev.name.clone(),
        }
    }
}

impl DpdkDevice {
    fn port(&self) -> std::result::Result<DpdkPort, String> {
        let dev = self
            .dev
            .upgrade()
            .ok_or_else(|| format!("{}: closed", self.name))?;
        // A handle that claims no queue: only its device-level calls are used.
        Ok(DpdkPort {
            dev,
            queue: u16::MAX,
            mode: L2Mode::Raw,
            label: String::new(),
            stats: PortStats::default(),
            extra: DpdkExtraStats::default(),
        })
    }
}

impl crate::runtime::PortDevice for DpdkDevice {
    fn name(&self) -> String {
        self.name.clone()
    }

    fn device_stats(&self) -> std::result::Result<PortStats, String> {
        self.port()?.device_stats().map_err(|e| e.to_string())
    }

    fn xstats(&self) -> std::result::Result<Vec<(String, u64)>, String> {
        self.port()?.xstats().map_err(|e| e.to_string())
    }
}
