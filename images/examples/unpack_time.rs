//! Times `unpack_layer` on one layer blob.
//!
//! Usage: unpack_time BLOB gzip|zstd|none DIR [ROUNDS [WORKERS]]
//!
//! Each round unpacks BLOB into a new empty directory below DIR, prints the
//! wall time, and removes the directory untimed. WORKERS defaults to
//! [`DEFAULT_WORKERS`].

use std::fs::File;
use std::path::PathBuf;
use std::time::Instant;

use hull_images::unpack::{unpack_layer_with_workers, Compression, DEFAULT_WORKERS};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.len() < 4 {
        eprintln!("usage: unpack_time BLOB gzip|zstd|none DIR [ROUNDS [WORKERS]]");
        std::process::exit(2);
    }
    let blob = PathBuf::from(&args[1]);
    let compression = match args[2].as_str() {
        "gzip" => Compression::Gzip,
        "zstd" => Compression::Zstd,
        "none" => Compression::None,
        other => {
            eprintln!("unknown compression {other:?}: expected gzip, zstd or none");
            std::process::exit(2);
        }
    };
    let base = PathBuf::from(&args[3]);
    let rounds: u32 = args
        .get(4)
        .map_or(1, |r| r.parse().expect("ROUNDS is a number"));
    let workers: usize = args
        .get(5)
        .map_or(DEFAULT_WORKERS, |w| w.parse().expect("WORKERS is a number"));

    for round in 0..rounds {
        let dest = base.join(format!("round-{round}"));
        std::fs::create_dir(&dest).expect("create the round directory");
        let reader = File::open(&blob).expect("open the blob");
        let start = Instant::now();
        let stats = unpack_layer_with_workers(reader, compression, &dest, workers)
            .expect("unpack the layer");
        let elapsed = start.elapsed();
        println!(
            "workers {workers} round {round}: {:.3} s, {} entries, {} bytes, {}",
            elapsed.as_secs_f64(),
            stats.files,
            stats.bytes,
            stats.diff_id
        );
        std::fs::remove_dir_all(&dest).expect("remove the round directory");
    }
}
