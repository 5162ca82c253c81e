//! status.json as sandboxctl and `supervisor status` read it, from bytes the sandbox may
//! have written: parsing never panics, and a document that parses survives a round trip
//! through the writer unchanged.
#![no_main]

use libfuzzer_sys::fuzz_target;
use openshell_supervisor::contract::status::Status;

fuzz_target!(|data: &[u8]| {
    if let Ok(s) = serde_json::from_slice::<Status>(data) {
        let again = serde_json::to_vec_pretty(&s).expect("a parsed status serializes");
        let back: Status = serde_json::from_slice(&again).expect("what we write, we read");
        assert_eq!(back, s);
    }
});
