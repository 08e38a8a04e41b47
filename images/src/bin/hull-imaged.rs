//! hull-imaged: serves the image API on a unix socket.

fn main() {}
