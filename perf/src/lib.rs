//! Benchmarks and traffic generation for the N-MADP (issue "Kernel bypass", item 4): the
//! traffic generator ([`gen`]), the same-process DPDK benchmark `nmadp-bench` (feature `dpdk`)
//! and `scripts/compare.sh` (testpmd comparison, writes `RESULTS.md`).

pub mod gen;
