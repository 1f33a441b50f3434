//! AFL++ target: [`eip_fuzz::pipeline`].
fn main() {
    afl::fuzz!(|data: &[u8]| eip_fuzz::pipeline(data));
}
