//! containerd and the shim restarted or killed while a container runs.
