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
