#!/bin/bash
# Installs the Debian packages that hull's tests, benchmarks and hack/
# scripts use: reference runtimes, fixture builders, container engines and
# tools. Runs `apt-get update` first, then installs what is missing.
# Needs root.
set -euo pipefail
export DEBIAN_FRONTEND=noninteractive

packages=(
	runc crun
	busybox-static debootstrap
	podman conmon containerd umoci skopeo
	docker-registry apache2-utils
	jq hyperfine strace file linux-libc-dev curl
	criu python3-protobuf bats
	iproute2 util-linux mount tar coreutils
	containernetworking-plugins iptables
)
apt-get update
missing=()
for package in "${packages[@]}"; do
	if ! dpkg-query -W -f '${Status}' "$package" 2>/dev/null | grep -q 'install ok installed'; then
		missing+=("$package")
	fi
done
if [ ${#missing[@]} -gt 0 ]; then
	echo "installing: ${missing[*]}"
	apt-get install -y "${missing[@]}"
fi

