//! The policy reader on arbitrary text: it returns a policy or an error naming the file,
//! never panics, never hangs, and every error is one line (it goes into a JSON log field).
#![no_main]

use libfuzzer_sys::fuzz_target;
use openshell_supervisor::enforce::policy;
use std::path::Path;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let file = Path::new("/etc/openshell/policy.yaml");
    match policy::parse(text, file, Path::new("/sandbox")) {
        Ok(p) => {
            // What validation promises the enforcement.
            assert!(p.read_only.len() + p.read_write.len() <= policy::MAX_PATHS + 1);
            for path in p.read_only.iter().chain(&p.read_write) {
                assert!(path.is_absolute());
            }
            for n in p.network_policies.values() {
                for e in &n.endpoints {
                    assert!(!e.ports.is_empty() && !e.ports.contains(&0));
                    assert!(e.host.is_some() || !e.allowed_ips.is_empty());
                }
            }
        }
        Err(e) => {
            let line = e.to_string();
            assert!(line.starts_with("/etc/openshell/policy.yaml"), "{line}");
            assert!(!line.contains('\n'), "{line}");
        }
    }
});
