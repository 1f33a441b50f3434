//! AFL++ target: [`eip_fuzz::config`].
fn main() {
    afl::fuzz!(|data: &[u8]| eip_fuzz::config(data));
}
