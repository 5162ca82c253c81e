//! saphyr-parser: every event, counted (the tree and the typed walk are ours on top).
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(p).unwrap();
    let mut n = 0usize;
    for ev in saphyr_parser::Parser::new_from_str(&text) {
        match ev { Ok((e, span)) => { n += std::hint::black_box((&e, span.start.line())).1; } Err(e) => { println!("{e}"); return; } }
    }
    println!("{n}");
}
