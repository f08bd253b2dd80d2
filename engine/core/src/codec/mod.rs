//! Codecs of the contract: JSON Lines input events in, records and events out, and the
//! fixed-layout binary ingress format (`binary`).

pub mod binary;
pub mod json_in;
pub mod json_out;

pub use json_in::{parse_input, parse_line, Malformed, LINE_LEN_MAX};
pub use json_out::{input_line, record_line, write_json_str, write_record};
