//! Every object sandboxctl renders for Kubernetes, and the kustomize base in deploy/, checked
//! against the official OpenAPI schemas of Kubernetes 1.29 to 1.35 with `kubernetes-validate
//! --strict` (PyPI; bundled schemas, offline; tests/run.sh installs it). `--strict` rejects
//! unknown fields, so a misspelled field fails: the negative case proves it. No cluster can
//! run here, so this (and tests/sandboxctl_kube.rs, tests/kube_play.rs) is what checks the
//! objects; a missing validator is a failure, not a skip.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

const SANDBOXCTL: &str = env!("CARGO_BIN_EXE_sandboxctl");
const REPO: &str = env!("CARGO_MANIFEST_DIR");
const VERSIONS: [&str; 4] = ["1.29.0", "1.31.0", "1.33.0", "1.35.0"];

fn render(args: &[&str]) -> String {
    let out = Command::new(SANDBOXCTL)
        .args(["--backend", "kube", "create", "--dry-run", "-o", "yaml"])
        .args(args)
        .env("KUBECONFIG", "/nonexistent")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// Runs the validator on `file` for `version`; (success, output).
fn validate(file: &Path, version: &str) -> (bool, String) {
    let out = Command::new("kubernetes-validate")
        .args(["--strict", "-k", version])
        .arg(file)
        .stdin(Stdio::null())
        .output()
        .unwrap_or_else(|e| {
            panic!("kubernetes-validate cannot run ({e}): `pip install kubernetes-validate` (tests/run.sh does)")
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

fn temp(name: &str, body: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("kube-manifests-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let p = dir.join(name);
    std::fs::write(&p, body).unwrap();
    p
}

#[test]
fn rendered_objects_pass_strict_validation_on_every_version() {
    let variants: [(&str, &[&str]); 3] = [
        ("default.yaml", &["agent-1"]),
        (
            "custom.yaml",
            &[
                "agent-2",
                "-n",
                "team-a",
                "--image",
                "registry.example/openshell:1",
                "--workspace-size",
                "10Gi",
                "--storage-class",
                "fast.ssd",
                "-e",
                "A=1",
                "--no-start",
                "--",
                "/bin/sh",
                "-c",
                "sleep 1d",
            ],
        ),
        ("long-name.yaml", &[&"x".repeat(42)]),
    ];
    for (file, args) in variants {
        let yaml = render(args);
        assert_eq!(yaml.matches("\nkind: ").count(), 3, "{yaml}");
        let path = temp(file, &yaml);
        for v in VERSIONS {
            let (ok, out) = validate(&path, v);
            assert!(ok, "{file} against {v}:\n{out}\n{yaml}");
            assert_eq!(out.matches("passed").count(), 3, "{out}");
        }
    }
}

#[test]
fn a_misspelled_field_fails() {
    let yaml = render(&["typo"]);
    for (good, bad) in [
        ("podManagementPolicy:", "podManagmentPolicy:"),
        ("readinessProbe:", "readynessProbe:"),
        ("allowPrivilegeEscalation:", "allowPrivilegedEscalation:"),
    ] {
        assert!(yaml.contains(good), "{good} not rendered");
        let path = temp("typo.yaml", &yaml.replacen(good, bad, 1));
        for v in VERSIONS {
            let (ok, out) = validate(&path, v);
            assert!(!ok, "{bad} passed against {v}: {out}");
            assert!(out.contains(bad.trim_end_matches(':')), "{out}");
        }
    }
}

#[test]
fn the_kustomize_base_in_deploy_passes_too() {
    let dir = Path::new(REPO).join("deploy/base");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_owned();
        if !name.ends_with(".yaml") || name == "kustomization.yaml" {
            continue;
        }
        for v in VERSIONS {
            let (ok, out) = validate(&p, v);
            assert!(ok, "{name} against {v}:\n{out}");
        }
        checked += 1;
    }
    assert!(
        checked >= 3,
        "deploy/base has the Service, the workspace PVC and the StatefulSet"
    );
    // The base is what sandboxctl renders for a sandbox named `sandbox`, so they cannot drift.
    let rendered = render(&["sandbox", "-n", "openshell"]);
    for file in ["service.yaml", "pvc.yaml", "statefulset.yaml"] {
        let body = std::fs::read_to_string(dir.join(file)).unwrap();
        let body: String = body
            .lines()
            .filter(|l| !l.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let object = body.trim_start_matches("---\n").trim();
        // What differs on every rendering: the intent's time and the sandbox's random id.
        let without_time = |s: &str| -> String {
            s.lines()
                .filter(|l| {
                    !l.contains("io.openshell.intent-at") && !l.contains("io.openshell.sandbox-id")
                })
                .collect::<Vec<_>>()
                .join("\n")
        };
        assert!(
            without_time(&rendered).contains(&without_time(object)),
            "deploy/base/{file} differs from `sandboxctl create sandbox -n openshell --dry-run -o yaml`; regenerate it (README \"## Kubernetes\")"
        );
    }
}
