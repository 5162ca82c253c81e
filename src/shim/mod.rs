//! sandboxctl: the host-side control shim.

pub fn main() -> i32 {
    eprintln!("sandboxctl: not implemented yet");
    2
}
