//! `nmadp decode`: not written yet.
