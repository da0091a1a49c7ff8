"""A throw-away single-node SLURM cluster on localhost: munged, slurmctld and slurmd, run as plain child
processes (no systemd) from a generated slurm.conf in a scratch folder, and stopped by PID.

Clients (sbatch, squeue, scontrol, and Snakemake's SLURM executor) find this cluster through the
environment of `LocalSlurm.env()`, which points SLURM_CONF at the generated file; nothing under /etc is
read or written, so the rest of the machine keeps behaving as before. One wrinkle: inside a job, the
executor's job step (snakemake-executor-plugin-slurm-jobstep) removes every SLURM_* variable, SLURM_CONF
included, before it calls `srun`; a real cluster's srun then reads /etc/slurm/slurm.conf. Here `env()`
puts a two-line `srun` first on PATH that sets SLURM_CONF again and runs the real srun.
"""
from __future__ import annotations

import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

BINARIES = ("munged", "slurmctld", "slurmd", "sbatch", "squeue", "sinfo", "scancel", "scontrol", "srun")
# Debian packages that provide BINARIES (what .ci/run installs).
PACKAGES = ("munge", "slurmctld", "slurmd", "slurm-client")


def missing_binaries() -> list[str]:
    """Names of the SLURM/MUNGE programs that are not on PATH (the daemons live in /usr/sbin)."""
    path = os.pathsep.join([os.environ.get("PATH", ""), "/usr/sbin", "/sbin"])
    return [name for name in BINARIES if shutil.which(name, path=path) is None]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _total_memory_mb() -> int:
    with open("/proc/meminfo") as fh:
        for line in fh:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal not found in /proc/meminfo")


def slurm_conf(root: Path, *, cpus: int, memory_mb: int, ctld_port: int, slurmd_port: int,
               munge_socket: Path) -> str:
    """A minimal slurm.conf for one node called `localhost` with `cpus` CPUs and `memory_mb` MB."""
    return f"""\
ClusterName=dlmi-test
SlurmctldHost=localhost
SlurmctldPort={ctld_port}
SlurmdPort={slurmd_port}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket={munge_socket}
StateSaveLocation={root}/state
SlurmdSpoolDir={root}/spool
SlurmctldPidFile={root}/slurmctld.pid
SlurmdPidFile={root}/slurmd.pid
SlurmctldLogFile={root}/slurmctld.log
SlurmdLogFile={root}/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
ReturnToService=2
# squeue must still list finished jobs when the executor asks (no slurmdbd, so no sacct; at least 300 s),
# and when the tests ask after the whole study has run.
MinJobAge=3600
SchedulerType=sched/backfill
SchedulerParameters=sched_interval=2
NodeName=localhost NodeAddr=127.0.0.1 CPUs={cpus} RealMemory={memory_mb} State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
"""


@dataclass
class LocalSlurm:
    """Runs the three daemons under `root` (a scratch folder) until `stop()`."""

    root: Path
    cpus: int = field(default_factory=lambda: os.cpu_count() or 1)
    memory_mb: int = field(default_factory=lambda: max(1000, int(_total_memory_mb() * 0.8)))
    processes: dict[str, subprocess.Popen] = field(default_factory=dict)

    @property
    def conf(self) -> Path:
        return self.root / "slurm.conf"

    def env(self, base: dict | None = None) -> dict:
        """Environment in which SLURM clients (and jobs, which inherit it) talk to this cluster."""
        env = dict(os.environ if base is None else base, SLURM_CONF=str(self.conf))
        env["PATH"] = os.pathsep.join([str(self.root / "bin"), env.get("PATH", ""), "/usr/sbin", "/sbin"])
        return env

    def _write_srun_wrapper(self) -> None:
        real_srun = shutil.which("srun")
        wrapper = self.root / "bin" / "srun"
        wrapper.parent.mkdir(exist_ok=True)
        wrapper.write_text(f"#!/bin/sh\nSLURM_CONF={self.conf} exec {real_srun} \"$@\"\n")
        wrapper.chmod(0o755)

    def _spawn(self, name: str, cmd: list[str]) -> None:
        with open(self.root / f"{name}.stdout", "w") as log:
            self.processes[name] = subprocess.Popen(
                cmd, stdout=log, stderr=subprocess.STDOUT, env=self.env(), start_new_session=True
            )

    def start(self, timeout: float = 300.0) -> LocalSlurm:
        """Start the daemons; `timeout` only bounds a daemon that never comes up (they take seconds)."""
        self.root.mkdir(parents=True, exist_ok=True)
        munge = self.root / "munge"
        for folder in (self.root / "state", self.root / "spool"):
            folder.mkdir(mode=0o700, exist_ok=True)
        munge.mkdir(mode=0o755, exist_ok=True)  # clients must reach the socket
        key = munge / "munge.key"
        key.write_bytes(secrets.token_bytes(1024))
        key.chmod(0o400)
        socket_path = munge / "munge.socket"
        self._write_srun_wrapper()
        self.conf.write_text(slurm_conf(
            self.root, cpus=self.cpus, memory_mb=self.memory_mb, ctld_port=_free_port(),
            slurmd_port=_free_port(), munge_socket=socket_path,
        ))
        try:
            self._spawn("munged", [
                "munged", "--foreground", "--force", f"--key-file={key}", f"--socket={socket_path}",
                f"--pid-file={munge / 'munged.pid'}", f"--log-file={munge / 'munged.log'}",
                f"--seed-file={munge / 'munged.seed'}",
            ])
            self._wait(lambda: socket_path.exists(), timeout, "munged did not create its socket")
            self._spawn("slurmctld", ["slurmctld", "-D", "-c", "-f", str(self.conf)])
            self._spawn("slurmd", ["slurmd", "-D", "-N", "localhost", "-f", str(self.conf)])
            self._wait(self._node_ready, timeout, "node 'localhost' did not become idle")
        except BaseException:
            self.stop()
            raise
        return self

    def _node_ready(self) -> bool:
        result = subprocess.run(["sinfo", "-h", "-n", "localhost", "-o", "%T"], env=self.env(),
                                capture_output=True, text=True, timeout=30, check=False)
        return result.returncode == 0 and result.stdout.strip() in {"idle", "mixed", "allocated"}

    def _wait(self, ready, timeout: float, what: str) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            dead = [name for name, proc in self.processes.items() if proc.poll() is not None]
            if dead:
                raise RuntimeError(f"{', '.join(dead)} exited early.\n{self.logs()}")
            if ready():
                return
            time.sleep(0.5)
        raise RuntimeError(f"local SLURM cluster: {what} within {timeout:.0f} s.\n{self.logs()}")

    def logs(self, chars: int = 3000) -> str:
        paths = sorted(self.root.glob("*.log")) + sorted((self.root / "munge").glob("*.log"))
        return "\n".join(f"--- {path.name}\n{path.read_text(errors='replace')[-chars:]}" for path in paths)

    def _cancel_jobs(self, timeout: float) -> None:
        """scancel this cluster's unfinished jobs (after a failed or timed-out run), so that no job step
        outlives slurmd, and wait until none is left."""
        def unfinished():
            result = subprocess.run(["squeue", "--noheader", "--format=%i"], env=self.env(), capture_output=True,
                                    text=True, timeout=30, check=False)
            return result.stdout.split() if result.returncode == 0 else []

        jobs = unfinished()
        if jobs:
            subprocess.run(["scancel", *jobs], env=self.env(), capture_output=True, timeout=30, check=False)
            deadline = time.monotonic() + timeout
            while unfinished() and time.monotonic() < deadline:
                time.sleep(0.5)

    def stop(self, timeout: float = 20.0) -> None:
        """Cancel unfinished jobs, then SIGTERM each daemon by PID (slurmd, slurmctld, munged) and SIGKILL
        what outlives `timeout`."""
        if all(self.processes.get(name) and self.processes[name].poll() is None for name in ("slurmctld", "munged")):
            self._cancel_jobs(timeout)
        for name in ("slurmd", "slurmctld", "munged"):
            proc = self.processes.pop(name, None)
            if proc is None or proc.poll() is not None:
                continue
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout)
