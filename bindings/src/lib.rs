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
