use super::*;
use serde::Deserialize;
use std::collections::BTreeMap;

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Doc {
    n: Option<u16>,
    #[serde(default)]
    b: Option<bool>,
    #[serde(default)]
    s: Option<String>,
    #[serde(default)]
    list: Vec<u32>,
    #[serde(default)]
    inner: Option<Inner>,
    #[serde(default)]
    any: Option<serde_json::Value>,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
struct Inner {
    need: String,
    #[serde(default)]
    deep: BTreeMap<String, Vec<Inner>>,
}

fn err(text: &str) -> Error {
    from_str::<Doc>(text).expect_err(text)
}

#[test]
fn reads_block_and_flow_styles() {
    let d: Doc =
        from_str("n: 80\nb: true\ns: hi\nlist: [1, 0x10, 0o7]\ninner: {need: x}\n").unwrap();
    assert_eq!(d.n, Some(80));
    assert_eq!(d.b, Some(true));
    assert_eq!(d.s.as_deref(), Some("hi"));
    assert_eq!(d.list, [1, 16, 7]);
    assert_eq!(d.inner.unwrap().need, "x");
    let d: Doc = from_str("# a comment\nlist:\n  - 1\n  - 2\ns: 'quoted'\n").unwrap();
    assert_eq!(d.list, [1, 2]);
    // Any plain scalar is a string where a string is wanted.
    let d: Doc = from_str("s: 123").unwrap();
    assert_eq!(d.s.as_deref(), Some("123"));
    // null is an absent optional.
    let d: Doc = from_str("n: ~\ns:\n").unwrap();
    assert_eq!((d.n, d.s), (None, None));
}

#[test]
fn quoted_scalars_are_strings_only() {
    let e = err("n: \"80\"");
    assert_eq!(e.path, "n");
    assert!(e.message.contains("expected an integer"), "{e}");
    assert!(e.message.contains("quoted string \"80\""), "{e}");
    assert!(e.message.contains("without them"), "{e}");
    let e = err("list: ['1']");
    assert_eq!(e.path, "list[0]");
    let e = err("b: \"yes\"");
    assert_eq!(e.path, "b");
    assert!(e.message.contains("expected true or false"), "{e}");
    let e = err("b: yes");
    assert!(e.message.contains("the string \"yes\""), "{e}");
    let e = err("b: 1");
    assert!(e.message.contains("the integer 1"), "{e}");
    let e = err("n: 1.0");
    assert!(e.message.contains("the number 1.0"), "{e}");
    let e = err("n: 0443");
    assert!(e.message.contains("the string \"0443\""), "{e}");
}

#[test]
fn errors_name_the_path_and_position() {
    let e = err("n: 70000");
    assert_eq!(e.path, "n");
    assert!(e.message.contains("70000 is out of range"), "{e}");
    assert_eq!(e.mark, Some(Mark { line: 1, column: 4 }));
    let e = err("inner:\n  need: x\n  deep:\n    k:\n      - need: y\n        typo: 1\n");
    assert_eq!(e.path, "inner.deep.k[0].typo");
    assert!(e.message.contains("unknown field \"typo\""), "{e}");
    assert!(e.message.contains("need, deep"), "{e}");
    assert_eq!(e.mark.unwrap().line, 6);
    let e = err("inner:\n  deep: {}\n");
    assert_eq!(e.path, "inner.need");
    assert!(e.message.contains("missing"), "{e}");
    let e = err("inner:\n  need: x\n  deep:\n    \"a.b\": [{}]\n");
    assert_eq!(e.path, "inner.deep.\"a.b\"[0].need");
    let e = err("list: 5");
    assert_eq!(e.path, "list");
    assert!(
        e.message.contains("expected a list, got the integer 5"),
        "{e}"
    );
    let e = err("inner: [1]");
    assert!(e.message.contains("expected a mapping, got a list"), "{e}");
    let e = err("- 1");
    assert_eq!(e.path, "");
    assert!(e.to_string().contains("line 1"), "{e}");
}

#[test]
fn refuses_what_yaml_would_accept_loosely() {
    let e = err("n: !evil 1");
    assert_eq!(e.path, "n");
    assert!(e.message.contains("!evil"), "{e}");
    assert!(err("s: !!str x").message.contains("!!str"));
    assert!(err("list: !!seq [1]").message.contains("tags"));
    let e = err("n: 1\nn: 2\n");
    assert_eq!(e.path, "n");
    assert!(
        e.message.contains("duplicate key \"n\" (first at line 1)"),
        "{e}"
    );
    assert_eq!(e.mark.unwrap().line, 2);
    let e = err("inner: {need: a, need: b}");
    assert_eq!(e.path, "inner.need");
    let e = err("? [a]\n: 1\n");
    assert!(e.message.contains("mapping key"), "{e}");
    let e = err("n: 1\n---\nn: 2\n");
    assert!(e.message.contains("second YAML document"), "{e}");
    assert!(err("").message.contains("empty"));
    assert!(err("# only a comment\n").message.contains("empty"));
    let e = err("n: [1\n");
    assert!(e.message.starts_with("not valid YAML"), "{e}");
    assert!(e.mark.is_some());
    // A merge key is just an unknown field.
    let e = err("base: &b {n: 1}\n<<: *b\n");
    assert!(e.message.contains("unknown field"), "{e}");
}

#[test]
fn aliases_expand_within_the_budget() {
    let d: Doc = from_str("list: &l [1, 2]\ninner: {need: x, deep: {a: [{need: y}]}}\n").unwrap();
    assert_eq!(d.list, [1, 2]);
    let v: BTreeMap<String, Vec<u32>> = from_str("a: &x [1, 2]\nb: *x\n").unwrap();
    assert_eq!(v["b"], [1, 2]);
    let e = from_str::<Doc>("n: *nope").unwrap_err();
    assert!(
        e.message.contains("not valid YAML") || e.message.contains("unknown anchor"),
        "{e}"
    );
}

#[test]
fn alias_bomb_fails_fast() {
    let mut y = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..12 {
        let refs = vec![format!("*a{}", i - 1); 10].join(", ");
        y.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
    }
    let started = std::time::Instant::now();
    let e = parse(&y).unwrap_err();
    assert!(e.message.contains("alias bomb"), "{e}");
    assert!(e.path.starts_with('a'), "{e}");
    // Not a timing assertion: a sanity bound far above the ~ms this takes.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}

#[test]
fn nesting_is_bounded() {
    for text in [
        "[".repeat(100_000),
        format!("{}1{}", "[".repeat(200), "]".repeat(200)),
        format!("{}1{}", "{a: ".repeat(200), "}".repeat(200)),
        (0..200)
            .map(|i| format!("{}- \n", "  ".repeat(i)))
            .collect::<String>(),
    ] {
        let e = parse(&text).unwrap_err();
        assert!(
            e.message.contains("nested deeper") || e.message.starts_with("not valid YAML"),
            "{e}"
        );
    }
    let ok = format!("{}1{}", "[".repeat(MAX_DEPTH), "]".repeat(MAX_DEPTH));
    parse(&ok).unwrap();
    let deep = format!(
        "{}1{}",
        "[".repeat(MAX_DEPTH + 1),
        "]".repeat(MAX_DEPTH + 1)
    );
    assert!(parse(&deep).unwrap_err().message.contains("nested deeper"));
}

#[test]
fn many_nodes_are_bounded_and_many_keys_are_cheap() {
    let big = format!("[{}]", vec!["1"; MAX_NODES + 10].join(","));
    assert!(parse(&big).unwrap_err().message.contains("more than"));
    let keys: String = (0..40_000).map(|i| format!("k{i}: 1\n")).collect();
    let m: BTreeMap<String, u32> = from_str(&keys).unwrap();
    assert_eq!(m.len(), 40_000);
    let dup = format!("{keys}k17: 2\n");
    let e = from_str::<BTreeMap<String, u32>>(&dup).unwrap_err();
    assert_eq!(e.path, "k17");
}

#[test]
fn any_values_follow_the_core_schema() {
    let d: Doc =
        from_str("any: {a: 1, b: -2, c: 1.5, d: true, e: ~, f: '1', g: [x], h: 0443}").unwrap();
    assert_eq!(
        d.any.unwrap(),
        serde_json::json!({"a": 1, "b": -2, "c": 1.5, "d": true, "e": null, "f": "1", "g": ["x"], "h": "0443"})
    );
}

#[test]
fn find_points_at_nodes_by_path() {
    let root = parse("a:\n  b: [x, {c: 1}]\n  \"d.e\": 2\n").unwrap();
    assert_eq!(root.find("a.b[1].c").unwrap().mark.line, 2);
    assert_eq!(root.find("a.\"d.e\"").unwrap().mark.line, 3);
    assert!(root.find("a.b[7]").is_none());
    assert!(root.find("a.zz").is_none());
}
