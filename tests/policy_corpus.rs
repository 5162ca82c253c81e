//! The policy reader against a corpus: OpenShell-shaped policies (tests/policies/*.yaml)
//! load, and every malformed variant (tests/policies/invalid.txt, plus generated ones
//! below) is refused naming the field path, in one line, without a panic.

use openshell_supervisor::enforce::policy::middleware::OnError;
use openshell_supervisor::enforce::policy::network::{Access, Enforcement, Protocol, Tls};
use openshell_supervisor::enforce::policy::{self, IdSpec, Policy};
use openshell_supervisor::enforce::PolicyError;
use std::path::{Path, PathBuf};

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/policies");
const FILE: &str = "/etc/openshell/policy.yaml";

fn parse(text: &str) -> Result<Policy, PolicyError> {
    policy::parse(text, Path::new(FILE), Path::new("/sandbox"))
}

fn load(name: &str) -> Policy {
    let text = std::fs::read_to_string(Path::new(DIR).join(name)).unwrap();
    parse(&text).unwrap_or_else(|e| panic!("{name}: {e}"))
}

#[test]
fn every_corpus_policy_loads() {
    let mut n = 0;
    for e in std::fs::read_dir(DIR).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_some_and(|x| x == "yaml") {
            load(p.file_name().unwrap().to_str().unwrap());
            n += 1;
        }
    }
    assert!(n >= 7, "corpus has only {n} policies");
}

#[test]
fn quickstart_rest_endpoint() {
    let p = load("quickstart-rest.yaml");
    assert_eq!(p.user, None, "process omitted: the platform picks");
    assert!(p.read_write.contains(&PathBuf::from("/sandbox")));
    let g = &p.network_policies["gitlab_api"];
    assert_eq!(g.name, "gitlab-api-readonly");
    let e = &g.endpoints[0];
    assert_eq!(
        (e.protocol, e.enforcement, e.access),
        (Protocol::Rest, Enforcement::Enforce, Some(Access::ReadOnly))
    );
    assert_eq!(e.ports, [443]);
    assert!(e.enforcement.is_enforce());
}

#[test]
fn tcp_endpoint_with_allowed_ips() {
    let p = load("tcp-allowed-ips.yaml");
    let pg = &p.network_policies["postgres"];
    assert_eq!(pg.name, "postgres-native-tcp");
    let e = &pg.endpoints[0];
    assert_eq!(e.protocol, Protocol::Tcp);
    assert_eq!(e.allowed_ips.len(), 3);
    assert!(e.allowed_ips[1].contains("172.20.1.1".parse().unwrap()));
    assert!(!e.l7_settings().contains(&"rules"));
    assert_eq!(pg.binaries[0].path, "/**");
    let legacy = &p.network_policies["legacy_hostless"];
    assert_eq!(legacy.name, "legacy_hostless", "name defaults to the key");
    let e = &legacy.endpoints[0];
    assert_eq!(
        (e.host.as_deref(), e.ports.as_slice()),
        (None, &[8080, 8443][..])
    );
    assert_eq!(e.protocol, Protocol::Plain);
    assert_eq!(e.enforcement, Enforcement::Default);
    assert!(!e.enforcement.is_enforce(), "empty enforcement means audit");
}

#[test]
fn policy_with_process_and_deprecations() {
    let p = load("with-process.yaml");
    assert_eq!(p.user, Some(IdSpec::Id(1500)));
    assert_eq!(p.group, Some(IdSpec::Id(1500)));
    let nv = &p.network_policies["nvidia"].endpoints[0];
    assert_eq!(nv.tls, Tls::Terminate);
    let fields: Vec<&str> = p.notes.iter().map(|n| n.field.as_str()).collect();
    assert!(
        fields.contains(&"network_policies.nvidia.endpoints[0].tls"),
        "{fields:?}"
    );
    assert!(
        fields.contains(&"network_policies.pypi.binaries[0].harness"),
        "{fields:?}"
    );
}

#[test]
fn policy_with_middlewares() {
    let p = load("middlewares.yaml");
    let cg = &p.network_middlewares["content-guard"];
    assert_eq!((cg.order, cg.on_error), (10, OnError::FailClosed));
    assert_eq!(cg.config["max"], serde_json::json!(3));
    assert_eq!(cg.config["replacement"], serde_json::json!("[FILTERED]"));
    let tr = &p.network_middlewares["token-redactor"];
    assert_eq!(tr.name, "token-redactor");
    assert_eq!(tr.on_error, OnError::FailOpen);
    assert!(tr.selects("a.b.example.net") && !tr.selects("trusted.example.net"));
    assert_eq!(p.network_policies["raw"].endpoints[0].tls, Tls::Skip);
}

#[test]
fn openshell_defaults_without_filesystem_section() {
    let p = load("no-filesystem.yaml");
    assert!(p.include_workdir);
    assert_eq!(p.read_write, [PathBuf::from("/sandbox")]);
    assert!(p.read_only.is_empty());
    assert!(p.network_policies["anthropic"].binaries.is_empty());
}

#[test]
fn every_l7_protocol() {
    let p = load("l7-protocols.yaml");
    let protos: Vec<Protocol> = p
        .network_policies
        .values()
        .flat_map(|n| n.endpoints.iter().map(|e| e.protocol))
        .collect();
    for want in [
        Protocol::Rest,
        Protocol::Graphql,
        Protocol::Websocket,
        Protocol::Mcp,
        Protocol::JsonRpc,
        Protocol::Sql,
        Protocol::Plain,
    ] {
        assert!(protos.contains(&want), "{want:?} missing");
    }
    let mcp = &p.network_policies["mcp"].endpoints[0];
    assert_eq!(mcp.mcp.as_ref().unwrap().max_body_bytes, 131072);
    assert!(!mcp.mcp.as_ref().unwrap().allow_all_known_mcp_methods);
    let aws = &p.network_policies["aws"].endpoints[0];
    assert!(aws.credential_signing.is_some());
    assert_eq!(aws.signing_service.as_deref(), Some("bedrock"));
    assert_eq!(
        p.network_policies["aws"].endpoints[1]
            .credential_binding
            .as_deref(),
        Some("work-gcp")
    );
}

#[test]
fn our_extensions() {
    let p = load("ours.yaml");
    assert_eq!(p.tcp_bind, Some(vec![8080]));
    assert_eq!(p.tcp_connect, Some(vec![443, 8080]));
    assert_eq!(p.seccomp_allow, ["ptrace"]);
    assert!(
        p.network_policies.is_empty(),
        "no network section: no egress"
    );
}

struct Case {
    name: String,
    field: Option<String>,
    contains: String,
    text: String,
}

fn cases() -> Vec<Case> {
    let text = std::fs::read_to_string(Path::new(DIR).join("invalid.txt")).unwrap();
    let mut out: Vec<Case> = Vec::new();
    for line in text.lines() {
        if let Some(h) = line.strip_prefix("### ") {
            let parts: Vec<&str> = h.splitn(3, " | ").collect();
            assert_eq!(parts.len(), 3, "bad header {line:?}");
            out.push(Case {
                name: parts[0].into(),
                field: (parts[1] != "-").then(|| parts[1].into()),
                contains: parts[2].into(),
                text: String::new(),
            });
        } else if let Some(c) = out.last_mut() {
            c.text.push_str(line);
            c.text.push('\n');
        }
    }
    out
}

fn refused(name: &str, text: &str, field: Option<&str>, contains: &str) -> PolicyError {
    let e = match parse(text) {
        Ok(p) => panic!("{name}: accepted: {p:?}"),
        Err(e) => e,
    };
    assert_eq!(e.field.as_deref(), field, "{name}: {e}");
    assert!(
        e.reason.contains(contains),
        "{name}: {e:?} lacks {contains:?}"
    );
    let line = e.to_string();
    assert!(!line.contains('\n'), "{name}: not one line: {line}");
    assert!(line.starts_with(FILE), "{name}: {line}");
    if let Some(f) = field {
        assert!(line.contains(&format!(": {f}: ")), "{name}: {line}");
    }
    e
}

#[test]
fn every_malformed_variant_is_refused_naming_the_field() {
    let all = cases();
    assert!(all.len() >= 40, "only {} cases", all.len());
    let mut names = std::collections::HashSet::new();
    for c in &all {
        assert!(names.insert(c.name.clone()), "duplicate case {}", c.name);
        refused(&c.name, &c.text, c.field.as_deref(), &c.contains);
    }
}

#[test]
fn errors_point_at_the_line() {
    let e = refused(
        "tcp_bind_too_big",
        "version: 1\nlandlock:\n  tcp_bind: [80, 65536]\n",
        Some("landlock.tcp_bind[1]"),
        "65536 is not a port (1..65535)",
    );
    assert!(e.reason.ends_with("(line 3, column 18)"), "{e}");
    // A validation error (after deserialization) is pointed at its line too.
    let e = refused(
        "rw_root",
        "version: 1\nfilesystem_policy:\n  read_write:\n    - /tmp\n    - /\n",
        Some("filesystem_policy.read_write[1]"),
        "whole filesystem",
    );
    assert!(e.reason.contains("line 5"), "{e}");
}

fn paths_policy(n: usize) -> String {
    let list: Vec<String> = (0..n).map(|i| format!("/p{i}")).collect();
    format!(
        "version: 1\nfilesystem_policy:\n  read_only: [{}]\n",
        list.join(", ")
    )
}

#[test]
fn generated_limits() {
    // 256 paths are fine, 257 are not.
    parse(&paths_policy(256)).unwrap();
    refused(
        "too_many_paths",
        &paths_policy(257),
        Some("filesystem_policy"),
        "at most 256",
    );
    // A path of 4096 bytes is fine, 4097 is not.
    let long = |n: usize| {
        format!(
            "version: 1\nfilesystem_policy:\n  read_only: [/{}]\n",
            "a".repeat(n - 1)
        )
    };
    parse(&long(4096)).unwrap();
    refused(
        "path_too_long",
        &long(4097),
        Some("filesystem_policy.read_only[0]"),
        "at most 4096",
    );
    // 10 middlewares are fine, 11 are not.
    let mw = |n: usize| {
        let mut s = String::from("version: 1\nnetwork_middlewares:\n");
        for i in 0..n {
            s.push_str(&format!(
                "  m{i}: {{middleware: x, order: {i}, endpoints: {{include: [h{i}.example.com]}}}}\n"
            ));
        }
        s
    };
    parse(&mw(10)).unwrap();
    refused(
        "too_many_middlewares",
        &mw(11),
        Some("network_middlewares"),
        "at most 10",
    );
    // 33 selector patterns.
    let pats: Vec<String> = (0..33).map(|i| format!("h{i}.example.com")).collect();
    refused(
        "too_many_patterns",
        &format!(
            "version: 1\nnetwork_middlewares:\n  m: {{middleware: x, endpoints: {{include: [{}]}}}}\n",
            pats.join(", ")
        ),
        Some("network_middlewares.m.endpoints"),
        "at most 32",
    );
}

#[test]
fn alias_bomb_is_refused() {
    // The billion laughs: each level ten aliases of the one before.
    let mut y = String::from("version: 1\nfilesystem_policy:\n  read_only: &l0 [/a, /a, /a, /a, /a, /a, /a, /a, /a, /a]\n");
    y.push_str("network_middlewares:\n");
    for i in 1..10 {
        let refs = vec![format!("*l{}", i - 1); 10].join(", ");
        y.push_str(&format!("  m{i}: {{middleware: x, order: {i}, config: {{k: &l{i} [{refs}]}}, endpoints: {{include: [a.example.com]}}}}\n"));
    }
    let e = parse(&y).unwrap_err();
    assert!(e.reason.contains("alias bomb"), "{e}");
    assert!(e.reason.contains("more than 100000"), "{e}");
    let field = e.field.unwrap();
    assert!(
        field.starts_with("network_middlewares.m") && field.contains(".config.k"),
        "{field}"
    );
}

#[test]
fn deep_nesting_is_refused() {
    let deep = format!(
        "version: 1\nnetwork_middlewares:\n  m: {{middleware: x, endpoints: {{include: [a.b.c]}}, config: {{k: {}1{}}}}}\n",
        "[".repeat(500),
        "]".repeat(500)
    );
    // Flow collections are scanned ahead by the parser, whose own bound (255 levels) is met
    // first here; block collections meet ours (64).
    let e = parse(&deep).unwrap_err();
    assert!(e.reason.contains("nested deeper than"), "{e}");
    assert!(
        e.field
            .as_deref()
            .unwrap()
            .starts_with("network_middlewares.m.config.k[0]"),
        "{e}"
    );
    let block: String = (0..100)
        .map(|i| format!("{}-\n", " ".repeat(4 + 2 * i)))
        .collect();
    let e = parse(&format!("version: 1\nseccomp:\n  deny:\n{block}")).unwrap_err();
    assert!(e.reason.contains("nested deeper than 64"), "{e}");
    // A million-byte flow sequence of one-character scalars stays bounded too.
    let wide = format!(
        "version: 1\nseccomp: {{deny: [{}]}}\n",
        vec!["a"; 300_000].join(",")
    );
    let e = parse(&wide).unwrap_err();
    assert!(e.reason.contains("more than 100000 values"), "{e}");
}

#[test]
fn garbage_never_panics() {
    // Truncations of every corpus policy at every byte: refused or accepted, never a panic.
    for e in std::fs::read_dir(DIR).unwrap() {
        let p = e.unwrap().path();
        if p.extension().is_none_or(|x| x != "yaml") {
            continue;
        }
        let text = std::fs::read_to_string(&p).unwrap();
        for cut in (0..text.len()).filter(|i| text.is_char_boundary(*i)) {
            let _ = parse(&text[..cut]);
        }
    }
    for junk in [
        "\0",
        "\u{feff}version: 1",
        "version: 1\n\t- x",
        "{",
        "}",
        "[",
        "]",
        ":",
        "? ",
        "&a",
        "*a",
        "!",
        "|",
        ">",
        "%YAML 1.2\n---\nversion: 1",
        "'",
        "\"\\u0000\"",
    ] {
        let _ = parse(junk);
    }
}
