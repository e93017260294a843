#!/usr/bin/env python3
"""Set up the project's virtualenv if needed, then run one of its tasks.

Why a Python script and not only a Makefile: the quick start promises two commands on a fresh
machine that has Python 3.11 and nothing else. `python3 dev.py demo` and `python3 dev.py test`
create `.venv`, install the project from pyproject.toml and the development tools from tools/pyproject.toml
(the demo data generator, kept out of the runtime package; again only when either changed), and run.
`test` first runs ``ruff check`` and ``ruff format --check`` (so CI, which runs `dev.py test`, refuses
unlinted or unformatted code in seconds, before the suite's minutes), and installs, with apt, the few Debian
packages the suite runs for real (PostgreSQL, and Chromium for the browser test) when missing.

`dev` (``dagster dev``) stops on SIGTERM or SIGINT sent to this script: see ``run_task``.
"""

from __future__ import annotations

import contextlib
import glob
import hashlib
import os
import shutil
import signal
import subprocess
import sys
import venv
from pathlib import Path

ROOT = Path(__file__).resolve().parent
VENV = ROOT / ".venv"
BIN = VENV / ("Scripts" if os.name == "nt" else "bin")
STAMP = VENV / ".installed-from"
# Installed editable into .venv beside the runtime package: the demo, the tests and the benchmarks need them,
# the production image (deploy/image/Dockerfile, which builds customer360 alone) does not.
TOOLS = ROOT / "tools"

LINTED = ["customer360", "customer360_tests", "benchmarks", "tools", "dev.py"]
# What `test` checks before the suite, in this order; the first that fails ends the task with its exit code.
TEST_CHECKS: list[list[str]] = [["ruff", "check", *LINTED], ["ruff", "format", "--check", *LINTED]]

TASKS: dict[str, list[str]] = {
    "demo": ["customer360", "demo"],
    "test": ["pytest", "-n", "2", "--durations=15"],
    "lint": ["ruff", "check", *LINTED],
    "dev": ["dagster", "dev", "-w", "workspace.yaml"],
    "bench": ["python", "benchmarks/run.py"],
}


# Debian packages the test suite runs for real (never mocked), each with a file or command proving it is there:
# PostgreSQL for the production instance's tests (Debian keeps initdb/pg_ctl off PATH, under its version);
# Chromium for the browser test of the Dagster UI (playwright drives Debian's build, no `playwright install`).
TEST_SYSTEM_PACKAGES: dict[str, str] = {
    "postgresql": "/usr/lib/postgresql/*/bin/initdb",
    "chromium": "chromium",
}


def ensure_system_packages(packages: dict[str, str]) -> None:
    """Install with apt the packages whose probe (a command on PATH, or a path glob with a '/') is missing."""
    missing = [
        name for name, probe in packages.items() if not (glob.glob(probe) if "/" in probe else shutil.which(probe))
    ]
    if not missing:
        return
    apt = shutil.which("apt-get")
    sudo = [] if apt is None or os.geteuid() == 0 else ["sudo", "-n"]
    why_not = "no apt-get" if apt is None else "not root and no sudo" if sudo and not shutil.which("sudo") else None
    if apt is None or why_not:
        sys.exit(
            f"the tests need the Debian packages {' '.join(missing)}, missing here and not installable "
            f"({why_not}): install them with your package manager, then run again"
        )
    print(f"installing system packages with apt: {' '.join(missing)}", flush=True)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    try:
        subprocess.run([*sudo, apt, "-q", "update"], check=True, env=env)
        subprocess.run([*sudo, apt, "-q", "install", "-y", "--no-install-recommends", *missing], check=True, env=env)
    except subprocess.CalledProcessError as error:
        sys.exit(f"apt could not install {' '.join(missing)} ({error}): install them yourself, then run again")


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def run_task(command: list[str], env: dict[str, str]) -> int:
    """Run a task as a child; SIGTERM or SIGINT sent to this script are passed on to it, once.

    Why: ``dagster dev`` maps SIGTERM to whatever SIGINT does in its process, and a process started in the
    background (``&`` in a script, nohup, some supervisors) inherits SIGINT *ignored*: SIGTERM was then
    ignored too, and ``dagster dev`` never stopped (no sensor or resource held it; it never heard). The
    child gets SIGINT's default back, runs in a session of its own (a Ctrl-C in the terminal reaches it
    only through this script, not twice), and this script waits for it to finish shutting down. Then whatever
    the task left in its process group gets SIGTERM: on a loaded machine a code server of ``dagster dev`` whose
    shutdown request was lost outlived it until its 45 s heartbeat timeout.
    """
    posix = os.name != "nt"
    child = subprocess.Popen(
        command, cwd=ROOT, env=env, start_new_session=posix, preexec_fn=_default_sigint if posix else None
    )

    def forward(signum: int, _frame: object) -> None:
        child.send_signal(signum)

    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, forward)
    returncode = child.wait()
    if posix:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(child.pid, signal.SIGTERM)  # the group is the child's own session: only what it started
    return returncode


def _requirements_fingerprint() -> str:
    digest = hashlib.sha256()
    for manifest in (ROOT / "pyproject.toml", TOOLS / "pyproject.toml"):
        digest.update(manifest.read_bytes())
    return digest.hexdigest()


def ensure_venv() -> None:
    if sys.version_info[:2] != (3, 11):
        sys.exit(f"customer360 needs Python 3.11; this is {sys.version.split()[0]}")
    if not (BIN / "python").exists():
        print("creating .venv", flush=True)
        venv.EnvBuilder(with_pip=True).create(VENV)
    fingerprint = _requirements_fingerprint()
    if STAMP.exists() and STAMP.read_text() == fingerprint:
        return
    print("installing customer360, its dependencies and the development tools into .venv", flush=True)
    pip = [str(BIN / "python"), "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "--upgrade", "pip"], check=True)
    subprocess.run([*pip, "-e", f"{ROOT}[dev]", "-e", str(TOOLS)], check=True)
    STAMP.write_text(fingerprint)


def main(argv: list[str]) -> int:
    if not argv or argv[0] not in TASKS:
        print(f"usage: python3 dev.py {{{'|'.join(TASKS)}}} [extra args]", file=sys.stderr)
        return 2
    ensure_venv()
    task, *extra = argv
    if task == "test":
        ensure_system_packages(TEST_SYSTEM_PACKAGES)
    command = TASKS[task]
    env = dict(os.environ)
    env.setdefault("DAGSTER_HOME", str(ROOT))
    Path(env["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)
    env["PATH"] = f"{BIN}{os.pathsep}{env.get('PATH', '')}"
    if task == "test":
        for check in TEST_CHECKS:
            returncode = subprocess.run([_executable(check[0]), *check[1:]], cwd=ROOT, env=env).returncode
            if returncode:
                print(f"dev.py test: `{' '.join(check)}` failed; the suite was not run", file=sys.stderr)
                return returncode
    return run_task([_executable(command[0]), *command[1:], *extra], env)


def _executable(name: str) -> str:
    """The .venv's own command of that name, else whatever PATH has."""
    return str(BIN / name) if (BIN / name).exists() else name


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
