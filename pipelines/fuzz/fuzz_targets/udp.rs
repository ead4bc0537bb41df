#![no_main]
//! UDP view and checksum over both pseudo-headers: never panic.
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use libfuzzer_sys::fuzz_target;
use pipelines::wire::udp::{Packet, Repr};

fuzz_target!(|data: &[u8]| {
    if let Ok(p) = Packet::new_checked(data) {
        let v4 = (IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1)), IpAddr::V4(Ipv4Addr::new(10, 0, 0, 2)));
        let v6 = (IpAddr::V6(Ipv6Addr::LOCALHOST), IpAddr::V6(Ipv6Addr::UNSPECIFIED));
        for (s, d) in [v4, v6] {
            let _ = p.verify_checksum(&s, &d);
            let _ = Repr::parse(&p, &s, &d, true);
        }
        let _ = p.payload();
    }
});
