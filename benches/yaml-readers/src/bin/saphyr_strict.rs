//! How strict serde-saphyr can be made: its strictest options against loose inputs.
use serde::Deserialize;
#[derive(Deserialize, Debug)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct P { version: u32, #[serde(default)] include_workdir: bool, #[serde(default)] tcp_bind: Vec<u16>, #[serde(default)] name: String }
fn main() {
    for y in ["version: \"1\"", "version: 1\ntcp_bind: [\"80\"]", "version: 1\ninclude_workdir: \"yes\"", "version: 1\ninclude_workdir: yes", "version: !evil 1", "version: 1\nversion: 1", "version: 1\nname: 123", "version: 1\ntcp_bind: [70000]", "version: 1\nname: !!str x"] {
        let opts = serde_saphyr::options! { strict_booleans: true, reject_unsupported_tags: true, no_schema: true, duplicate_keys: serde_saphyr::options::DuplicateKeyPolicy::Error, merge_keys: serde_saphyr::options::MergeKeyPolicy::Error };
        let r: Result<P, _> = serde_saphyr::from_str_with_options(y, opts);
        println!("{y:?} => {}", match r { Ok(p) => format!("ACCEPTED {p:?}"), Err(e) => format!("refused: {}", e.without_snippet().to_string().replace('\n', " ")) });
    }
}
