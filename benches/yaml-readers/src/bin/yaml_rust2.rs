//! yaml-rust2 (no encoding feature): every event, counted.
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(p).unwrap();
    let mut parser = yaml_rust2::parser::Parser::new_from_str(&text);
    let mut n = 0usize;
    loop {
        match parser.next_token() {
            Ok((yaml_rust2::Event::StreamEnd, _)) => break,
            Ok((e, m)) => { n += std::hint::black_box((&e, m.line())).1; }
            Err(e) => { println!("{e}"); return; }
        }
    }
    println!("{n}");
}
