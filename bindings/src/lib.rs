//! FFI to the system DPDK (22.11). Empty unless the `dpdk` feature is enabled; the bindings
//! themselves arrive with the kernel-bypass issue.
#![no_std]
