"""Real container tooling for tests: podman with a project-local configuration (runc, cgroupfs, no
network), images built from Debian's busybox-static without any registry. Everything lives under a
directory the test owns and is removed with it."""

from __future__ import annotations

import os
import shutil
import subprocess
import tarfile
from dataclasses import dataclass
from pathlib import Path

CONTAINERS_CONF = """[containers]
default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
netns = "none"
log_driver = "k8s-file"
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
"""


@dataclass(frozen=True, slots=True)
class Podman:
    """A podman configured to keep all its state under `root`."""

    root: Path

    @property
    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.root / "containers.conf"),
                "CONTAINERS_STORAGE_CONF": str(self.root / "storage.conf")}  # fmt: skip

    def __call__(self, *args: str, timeout: float = 120) -> str:
        result = subprocess.run(["podman", *args], env=self.env, capture_output=True, text=True, timeout=timeout,
                                check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def reset(self) -> None:
        subprocess.run(["podman", "system", "reset", "-f"], env=self.env, capture_output=True, timeout=120,
                       check=False)  # fmt: skip


def podman_available() -> bool:
    return shutil.which("podman") is not None and os.geteuid() == 0


def make_podman(root: Path) -> Podman:
    """A podman whose configuration and storage live under `root`."""
    root.mkdir(parents=True, exist_ok=True)
    # Its own tmp_dir too: with the shared /run/libpod, another podman's `system reset` makes this one
    # "refresh" (forget) its running containers.
    (root / "containers.conf").write_text(CONTAINERS_CONF + f'tmp_dir = "{root}/tmp"\n')
    (root / "storage.conf").write_text(
        f'[storage]\ndriver = "overlay"\ngraphroot = "{root}/storage"\nrunroot = "{root}/runroot"\n'
    )
    return Podman(root)


def busybox_rootfs_tar(busybox: Path, dest: Path, extra: dict[str, Path] | None = None) -> Path:
    """A minimal root file system tarball: static busybox with its applet links, plus `extra` files."""
    rootfs = dest.with_suffix(".d")
    for sub in ("bin", "sbin", "usr/bin", "usr/sbin", "tmp", "etc", "proc", "sys", "dev", "root", "var/tmp"):
        (rootfs / sub).mkdir(parents=True, exist_ok=True)
    shutil.copy(busybox, rootfs / "bin" / "busybox")
    applets = subprocess.run([str(rootfs / "bin" / "busybox"), "--list"], capture_output=True, text=True,
                             check=True).stdout.split()  # fmt: skip
    for applet in applets:
        if applet != "busybox":
            (rootfs / "bin" / applet).symlink_to("busybox")
    (rootfs / "tmp").chmod(0o1777)
    (rootfs / "etc" / "passwd").write_text("root:x:0:0:root:/root:/bin/sh\n")
    (rootfs / "etc" / "group").write_text("root:x:0:\n")
    for inside, source in (extra or {}).items():
        target = rootfs / inside.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(source, target)
    with tarfile.open(dest, "w") as tar:
        tar.add(rootfs, arcname=".")
    return dest


CONTAINERD_TOML = """version = 2
root = "{root}/root"
state = "{root}/state"
disabled_plugins = ["io.containerd.grpc.v1.cri"]
[grpc]
  address = "{root}/containerd.sock"
[ttrpc]
  address = "{root}/containerd.sock.ttrpc"
"""


@dataclass(slots=True)
class Containerd:
    """A containerd of the test's own (private root, state and socket), stopped by its PID."""

    root: Path
    process: subprocess.Popen[bytes]

    def ctr(self, *args: str, namespace: str = "default", timeout: float = 120) -> str:
        result = subprocess.run(["ctr", "-a", str(self.root / "containerd.sock"), "-n", namespace, *args],
                                capture_output=True, text=True, timeout=timeout, check=False)  # fmt: skip
        if result.returncode != 0:
            raise RuntimeError(f"ctr {' '.join(args)} failed: {result.stderr[-2000:]}")
        return result.stdout

    def stop(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=20)


def containerd_available() -> bool:
    return shutil.which("containerd") is not None and shutil.which("ctr") is not None and os.geteuid() == 0


def start_containerd(root: Path) -> Containerd:
    """Start containerd with its state under `root`; returns once `ctr version` answers."""
    import time

    root.mkdir(parents=True, exist_ok=True)
    config = root / "containerd.toml"
    config.write_text(CONTAINERD_TOML.format(root=root))
    log = (root / "containerd.log").open("wb")
    process = subprocess.Popen(["containerd", "--config", str(config)], stdout=log, stderr=log)
    daemon = Containerd(root, process)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            daemon.ctr("version", timeout=5)
            return daemon
        except RuntimeError:
            time.sleep(0.1)
    daemon.stop()
    raise RuntimeError("containerd did not start: " + (root / "containerd.log").read_text()[-2000:])


def containerd_with_busybox_image(work: Path, busybox: Path, image: str, namespace: str) -> Containerd:
    """A containerd of `work`'s own whose `namespace` holds `image` (localhost/NAME:latest), a busybox root
    file system built with podman and imported as an OCI archive."""
    podman = make_podman(work / "podman")
    podman("import", "--change", 'CMD ["/bin/sh"]', str(busybox_rootfs_tar(busybox, work / "rootfs.tar")), image)
    podman("save", "--format", "oci-archive", "-o", str(work / "image.tar"), image)
    podman.reset()
    daemon = start_containerd(work / "containerd")
    try:
        daemon.ctr("images", "import", "--base-name", image.rsplit(":", 1)[0], str(work / "image.tar"),
                   namespace=namespace)  # fmt: skip
    except RuntimeError:
        daemon.stop()
        raise
    return daemon
