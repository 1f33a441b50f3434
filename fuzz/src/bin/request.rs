//! AFL++ target: [`eip_fuzz::request`].
fn main() {
    afl::fuzz!(|data: &[u8]| eip_fuzz::request(data));
}
