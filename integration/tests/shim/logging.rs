//! Log URIs of `ctr run --log-uri`: `file://` and `binary://`.
