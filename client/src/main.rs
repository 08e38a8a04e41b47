//! hullctl: pulls, pushes and inspects images through hull-imaged.

fn main() {}
