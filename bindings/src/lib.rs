//! FFI to the system DPDK (22.11). Empty unless the `dpdk` feature is enabled.
//!
//! With the feature: bindgen output for the EAL, ethdev, mbuf/mempool, lcore, errno, version and
//! vdev-bus calls the data plane uses (allowlisted in `build.rs`), plus `nmadp_*` functions from
//! a C shim (`src/shim.c`) for DPDK's static-inline fast path (`rte_eth_rx_burst`,
//! `rte_pktmbuf_alloc`, `rte_pktmbuf_mtod`, ...) and for macros bindgen cannot evaluate.
//! Everything here is `unsafe` and unchecked; the safe wrappers live in
//! `dataplane::ports::dpdk`.
#![no_std]

#[cfg(feature = "dpdk")]
#[allow(
    non_camel_case_types,
    non_upper_case_globals,
    non_snake_case,
    dead_code,
    clippy::all,
    clippy::pedantic,
    unsafe_op_in_unsafe_fn
)]
mod ffi {
    include!(concat!(env!("OUT_DIR"), "/bindings.rs"));
}

#[cfg(feature = "dpdk")]
pub use ffi::*;

/// Inline mbuf accessors over the bound `rte_mbuf` layout: the same arithmetic as DPDK 22.11's
/// static-inline `rte_pktmbuf_*` (rte_mbuf.h) without an FFI call, for the fast path. Each
/// works on the segment `m` only (the callers check `nb_segs` where DPDK would walk to the last
/// segment). Built with `RTE_LIBRTE_MBUF_DEBUG` off, DPDK's versions do no sanity check either.
///
/// # Safety
/// Every function needs a valid, exclusively used mbuf.
#[cfg(feature = "dpdk")]
// One safety contract for the whole module (above), not repeated on each one-line accessor.
#[allow(clippy::missing_safety_doc)]
pub mod mbuf {
    use super::ffi::rte_mbuf;

    /// `rte_pktmbuf_mtod(m, u8 *)`: `buf_addr + data_off`.
    #[inline(always)]
    pub unsafe fn mtod(m: *const rte_mbuf) -> *mut u8 {
        ((*m).buf_addr as *mut u8).add(usize::from((*m).data_off))
    }
    /// `rte_pktmbuf_data_len`.
    #[inline(always)]
    pub unsafe fn data_len(m: *const rte_mbuf) -> u16 {
        (*m).data_len
    }
    /// `rte_pktmbuf_pkt_len`.
    #[inline(always)]
    pub unsafe fn pkt_len(m: *const rte_mbuf) -> u32 {
        (*m).pkt_len
    }
    /// `m->nb_segs`.
    #[inline(always)]
    pub unsafe fn nb_segs(m: *const rte_mbuf) -> u16 {
        (*m).nb_segs
    }
    /// `rte_pktmbuf_headroom`: `data_off`.
    #[inline(always)]
    pub unsafe fn headroom(m: *const rte_mbuf) -> u16 {
        (*m).data_off
    }
    /// `rte_pktmbuf_tailroom`: `buf_len - headroom - data_len`.
    #[inline(always)]
    pub unsafe fn tailroom(m: *const rte_mbuf) -> u16 {
        (*m).buf_len
            .wrapping_sub((*m).data_off)
            .wrapping_sub((*m).data_len)
    }
    /// `rte_pktmbuf_prepend`: null (nothing changed) if `len > headroom`.
    #[inline(always)]
    pub unsafe fn prepend(m: *mut rte_mbuf, len: u16) -> *mut u8 {
        if len > (*m).data_off {
            return core::ptr::null_mut();
        }
        (*m).data_off -= len;
        (*m).data_len = (*m).data_len.wrapping_add(len);
        (*m).pkt_len = (*m).pkt_len.wrapping_add(u32::from(len));
        mtod(m)
    }
    /// `rte_pktmbuf_append` on a single-segment mbuf: null (nothing changed) if
    /// `len > tailroom`.
    #[inline(always)]
    pub unsafe fn append(m: *mut rte_mbuf, len: u16) -> *mut u8 {
        if len > tailroom(m) {
            return core::ptr::null_mut();
        }
        let tail = mtod(m).add(usize::from((*m).data_len));
        (*m).data_len = (*m).data_len.wrapping_add(len);
        (*m).pkt_len = (*m).pkt_len.wrapping_add(u32::from(len));
        tail
    }
    /// `rte_pktmbuf_adj`: null (nothing changed) if `len > data_len`.
    #[inline(always)]
    pub unsafe fn adj(m: *mut rte_mbuf, len: u16) -> *mut u8 {
        if len > (*m).data_len {
            return core::ptr::null_mut();
        }
        (*m).data_len -= len;
        (*m).data_off = (*m).data_off.wrapping_add(len);
        (*m).pkt_len = (*m).pkt_len.wrapping_sub(u32::from(len));
        mtod(m)
    }
    /// `rte_pktmbuf_trim` on a single-segment mbuf: false (nothing changed) if
    /// `len > data_len`.
    #[inline(always)]
    pub unsafe fn trim(m: *mut rte_mbuf, len: u16) -> bool {
        if len > (*m).data_len {
            return false;
        }
        (*m).data_len -= len;
        (*m).pkt_len = (*m).pkt_len.wrapping_sub(u32::from(len));
        true
    }
}

#[cfg(all(test, feature = "dpdk"))]
mod tests {
    extern crate std;
    use super::*;
    use core::ffi::CStr;

    #[test]
    fn version_matches_the_headers() {
        // SAFETY: rte_version needs no EAL and returns a static NUL-terminated string.
        let v = unsafe { CStr::from_ptr(rte_version()) }.to_str().unwrap();
        let want = std::format!("DPDK {}.{}", RTE_VER_YEAR, RTE_VER_MONTH);
        assert!(v.starts_with(&want), "{v} vs headers {want}");
    }

    /// A fake single-segment mbuf over `buf` (no EAL needed: the shim's accessors only do field
    /// arithmetic when built without RTE_LIBRTE_MBUF_DEBUG).
    fn fake(buf: &mut [u8], off: u16, len: u16) -> rte_mbuf {
        // SAFETY: rte_mbuf is plain data; all-zero is a valid bit pattern.
        let mut m: rte_mbuf = unsafe { core::mem::zeroed() };
        m.buf_addr = buf.as_mut_ptr().cast();
        m.buf_len = buf.len() as u16;
        m.data_off = off;
        m.data_len = len;
        m.pkt_len = u32::from(len);
        m.nb_segs = 1;
        m.refcnt = 1;
        m
    }

    fn fields(m: &rte_mbuf) -> (usize, u16, u16, u32) {
        (m.buf_addr as usize, m.data_off, m.data_len, m.pkt_len)
    }

    #[test]
    fn mbuf_accessors_match_the_shim() {
        let mut buf = std::vec![0u8; 2176];
        for &(off, len) in &[(128u16, 64u16), (0, 0), (100, 2076), (2176, 0), (7, 1)] {
            let mut a = fake(&mut buf, off, len);
            let pa: *mut rte_mbuf = &mut a;
            // SAFETY: `a` is a valid fake mbuf over `buf` (alive for the whole test).
            unsafe {
                assert_eq!(mbuf::mtod(pa).cast(), nmadp_pktmbuf_mtod(pa));
                assert_eq!(mbuf::data_len(pa), nmadp_pktmbuf_data_len(pa));
                assert_eq!(mbuf::pkt_len(pa), nmadp_pktmbuf_pkt_len(pa));
                assert_eq!(mbuf::nb_segs(pa), nmadp_pktmbuf_nb_segs(pa));
                assert_eq!(mbuf::headroom(pa), nmadp_pktmbuf_headroom(pa));
                assert_eq!(mbuf::tailroom(pa), nmadp_pktmbuf_tailroom(pa));
            }
            // Every mutation, in Rust on `a` and through the shim on `b`, must agree.
            for n in [0u16, 1, 14, 64, 300, 5000] {
                let mut b = fake(&mut buf, a.data_off, a.data_len);
                b.pkt_len = a.pkt_len;
                let pb: *mut rte_mbuf = &mut b;
                // SAFETY: as above; the results are compared as addresses only.
                unsafe {
                    let (x, y) = (mbuf::prepend(pa, n), nmadp_pktmbuf_prepend(pb, n));
                    assert_eq!(x as usize, y as usize, "prepend {n}");
                    assert_eq!(fields(&a), fields(&b));
                    let (x, y) = (mbuf::append(pa, n), nmadp_pktmbuf_append(pb, n));
                    assert_eq!(x as usize, y as usize, "append {n}");
                    assert_eq!(fields(&a), fields(&b));
                    let (x, y) = (mbuf::adj(pa, n), nmadp_pktmbuf_adj(pb, n));
                    assert_eq!(x as usize, y as usize, "adj {n}");
                    assert_eq!(fields(&a), fields(&b));
                    let (x, y) = (mbuf::trim(pa, n), nmadp_pktmbuf_trim(pb, n) == 0);
                    assert_eq!(x, y, "trim {n}");
                    assert_eq!(fields(&a), fields(&b));
                    assert_eq!(mbuf::tailroom(pa), nmadp_pktmbuf_tailroom(pb));
                }
            }
        }
    }

    #[test]
    fn shim_constants() {
        // SAFETY: constant getters without preconditions.
        unsafe {
            assert_eq!(nmadp_lcore_id_any(), u32::MAX);
            assert_eq!(nmadp_pktmbuf_headroom_default(), 128);
            assert_eq!(nmadp_mbuf_default_buf_size(), 2048 + 128);
            assert_eq!(nmadp_socket_id_any(), -1);
            assert_ne!(nmadp_rss_hf_ip_tcp_udp(), 0);
            // A thread that is not an EAL lcore.
            assert_eq!(nmadp_lcore_id(), nmadp_lcore_id_any());
        }
    }
}
