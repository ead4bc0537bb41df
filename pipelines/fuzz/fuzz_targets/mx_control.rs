#![no_main]
//! MX control PDUs (draft-04 §5) in both directions: never panic; parse/emit/parse is stable.
use libfuzzer_sys::fuzz_target;
use pipelines::wire::mx_control::{ControlMessage, ControlPdu};
use pipelines::Direction;

fuzz_target!(|data: &[u8]| {
    for dir in [Direction::Downlink, Direction::Uplink] {
        if let Ok(pdu) = ControlPdu::parse(data, dir) {
            if matches!(pdu.message, ControlMessage::Unsupported { .. }) {
                continue;
            }
            let mut out = vec![0u8; pdu.buffer_len()];
            pdu.emit(&mut out, dir).expect("a parsed PDU emits");
            let again = ControlPdu::parse(&out, dir).expect("emitted PDU parses");
            assert_eq!(again, pdu);
        }
    }
});
