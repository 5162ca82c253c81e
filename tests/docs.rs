//! The README is the operator's reference: every log event the code can emit, every exit
//! code and every phase must be documented there.

use openshell_supervisor::contract::{ExitCode, Phase};
use std::fs;
use std::path::Path;

fn sources(dir: &Path, out: &mut Vec<String>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(fs::read_to_string(&p).unwrap());
        }
    }
}

/// Every `event = "name"` literal in src/.
fn event_names() -> Vec<String> {
    let mut files = Vec::new();
    sources(
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/src")),
        &mut files,
    );
    let mut names = Vec::new();
    for text in files {
        for part in text.split("event = \"").skip(1) {
            let name = &part[..part.find('"').unwrap()];
            if !names.iter().any(|n| n == name) {
                names.push(name.to_owned());
            }
        }
    }
    names
}

fn readme() -> String {
    fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md")).unwrap()
}

#[test]
fn every_log_event_is_documented() {
    let readme = readme();
    let names = event_names();
    assert!(names.len() > 20, "found only {names:?}");
    let missing: Vec<_> = names
        .iter()
        .filter(|n| !readme.contains(&format!("`{n}`")))
        .collect();
    assert!(
        missing.is_empty(),
        "README.md does not document events {missing:?}"
    );
}

#[test]
fn every_exit_code_and_phase_is_documented() {
    let readme = readme();
    for c in ExitCode::ALL {
        let row = format!("| {} | {} |", c.code(), c.name());
        assert!(
            readme.contains(&row),
            "README.md lacks the exit code row {row:?}"
        );
    }
    for p in Phase::ALL {
        assert!(
            readme.contains(&format!("| `{p}` |")),
            "README.md lacks phase {p}"
        );
    }
}
