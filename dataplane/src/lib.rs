//! The N-MADP / C-MADP runtime and its tools.
pub mod admin;
pub mod config;
pub mod decode;
pub mod ports;
pub mod runtime;
