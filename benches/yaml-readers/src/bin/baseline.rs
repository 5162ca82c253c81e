//! Reads the file and prints its length: what every variant pays before parsing.
fn main() {
    let p = std::env::args().nth(1).unwrap();
    let text = std::fs::read_to_string(p).unwrap();
    println!("{}", std::hint::black_box(text).len());
}
