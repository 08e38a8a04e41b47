//! The three compressions give the same tree and the same diff_id.

use std::io::Write;
use std::process::{Command, Stdio};

use sha2::{Digest as _, Sha256};
use tar::EntryType;

use super::super::{unpack_layer, Compression, UnpackError};
use super::{tree, Layer, Sandbox};

fn sample_layer() -> Vec<u8> {
    let data: Vec<u8> = (0..200_000u32).map(|i| (i * 7 % 256) as u8).collect();
    let mut tar = Layer::new()
        .dir("usr")
        .entry(
            EntryType::Regular,
            "usr/data",
            None,
            &data,
            0o640,
            (1, 2),
            1_234,
        )
        .symlink("usr/link", "data")
        .hard_link("usr/hard", "usr/data")
        .file(".wh.removed", b"")
        .finish();
    // Image tools pad the stream to a 10 KiB record; the diff_id covers it.
    tar.resize(tar.len().div_ceil(10_240) * 10_240, 0);
    tar
}

fn sha256sum(data: &[u8]) -> String {
    let mut child = Command::new("sha256sum")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    child.stdin.take().unwrap().write_all(data).unwrap();
    let output = child.wait_with_output().unwrap();
    String::from_utf8(output.stdout).unwrap()[..64].to_owned()
}

#[test]
fn unpack_compressions_same_result() {
    let tar = sample_layer();
    let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gzip.write_all(&tar).unwrap();
    let gzip = gzip.finish().unwrap();
    let zstd = zstd::encode_all(&tar[..], 3).unwrap();
    let expected = format!("sha256:{}", sha256sum(&tar));
    assert_eq!(
        expected,
        format!("sha256:{}", hex::encode(Sha256::digest(&tar)))
    );

    let mut trees = Vec::new();
    for (blob, compression) in [
        (&tar, Compression::None),
        (&gzip, Compression::Gzip),
        (&zstd, Compression::Zstd),
    ] {
        let sandbox = Sandbox::new();
        let stats = unpack_layer(&blob[..], compression, &sandbox.dest()).unwrap();
        assert_eq!(stats.diff_id.to_string(), expected, "{compression:?}");
        assert_eq!(stats.bytes, tar.len() as u64, "{compression:?}");
        assert_eq!(stats.files, 5, "{compression:?}");
        trees.push(tree(&sandbox.dest()));
    }
    assert_eq!(trees[0], trees[1]);
    assert_eq!(trees[0], trees[2]);
}

#[test]
fn unpack_concatenated_gzip_members() {
    let tar = sample_layer();
    let (head, tail) = tar.split_at(tar.len() / 2);
    let mut blob = Vec::new();
    for part in [head, tail] {
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gzip.write_all(part).unwrap();
        blob.extend(gzip.finish().unwrap());
    }
    let sandbox = Sandbox::new();
    let stats = unpack_layer(&blob[..], Compression::Gzip, &sandbox.dest()).unwrap();
    assert_eq!(
        stats.diff_id.to_string(),
        format!("sha256:{}", sha256sum(&tar))
    );
}

#[test]
fn unpack_truncated_stream_fails() {
    let tar = sample_layer();
    let sandbox = Sandbox::new();
    let err = unpack_layer(&tar[..1_000], Compression::None, &sandbox.dest()).unwrap_err();
    assert!(matches!(err, UnpackError::Read(_)), "{err}");
}

#[test]
fn compression_from_media_types() {
    let cases = [
        ("application/vnd.oci.image.layer.v1.tar", Compression::None),
        (
            "application/vnd.oci.image.layer.v1.tar+gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.oci.image.layer.v1.tar+zstd",
            Compression::Zstd,
        ),
        (
            "application/vnd.docker.image.rootfs.diff.tar.gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.docker.image.rootfs.foreign.diff.tar.gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar",
            Compression::None,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+gzip",
            Compression::Gzip,
        ),
        (
            "application/vnd.oci.image.layer.nondistributable.v1.tar+zstd",
            Compression::Zstd,
        ),
    ];
    for (media_type, expected) in cases {
        assert_eq!(
            Compression::from_media_type(media_type).unwrap(),
            expected,
            "{media_type}"
        );
    }
    let err = Compression::from_media_type("application/vnd.oci.image.config.v1+json").unwrap_err();
    assert!(
        err.to_string()
            .contains("application/vnd.oci.image.config.v1+json"),
        "{err}"
    );
}
