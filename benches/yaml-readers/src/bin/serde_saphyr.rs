//! serde-saphyr into the typed policy (network sections walked as IgnoredAny).
use serde::de::IgnoredAny;
use serde::Deserialize;
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct P {
    version: u32,
    filesystem_policy: Option<Fs>,
    landlock: Option<Ll>,
    process: Option<Pr>,
    network_policies: Option<IgnoredAny>,
    network_middlewares: Option<IgnoredAny>,
}
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Fs { #[serde(default)] include_workdir: bool, #[serde(default)] read_only: Vec<String>, #[serde(default)] read_write: Vec<String> }
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Ll { compatibility: Option<String>, tcp_bind: Option<Vec<u16>> }
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)]
struct Pr { run_as_user: Option<String>, run_as_group: Option<String> }
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(p).unwrap();
    let r: Result<P, _> = serde_saphyr::from_str(&text);
    match r { Ok(p) => println!("{}", p.version), Err(e) => println!("{e}") }
}
