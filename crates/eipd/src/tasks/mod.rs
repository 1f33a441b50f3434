//! The threads `eipd run` keeps besides the workers and the control thread: each
//! drives one part of the control library with the daemon's real inputs.

pub mod neighbours;
pub mod prober;
