//! MX PDU transforms (draft-04 §4.2.1): not written yet.
