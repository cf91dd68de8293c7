//! Start-up: the smallest WASI program, so process wall time is all start-up.
fn main() {
    println!("hello");
}
