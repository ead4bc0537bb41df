//! Benchmarks and traffic generation. Criterion benches and the testpmd comparison arrive with
//! the kernel-bypass issue.
