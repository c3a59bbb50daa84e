"""`python -m npu_alloc_shim ARGS` is `npu-alloc-shim ARGS`: the CLI that pip
installed with this package (the environment's scripts directory, or the
user scheme's for `pip install --user`), else the one on PATH. Found without
PATH, so `venv/bin/python -m npu_alloc_shim` works in an unactivated venv."""

import os
import shutil
import sys
import sysconfig
from typing import Iterator, Optional

CLI = "npu-alloc-shim"


def _installed_dirs() -> Iterator[str]:
    yield sysconfig.get_path("scripts")
    user_scheme = f"{os.name}_user"
    if user_scheme in sysconfig.get_scheme_names():
        yield sysconfig.get_path("scripts", user_scheme)


def find_cli() -> Optional[str]:
    for directory in _installed_dirs():
        candidate = os.path.join(directory, CLI)
        if os.path.isfile(candidate) and os.access(candidate, os.X_OK):
            return candidate
    return shutil.which(CLI)


def main() -> None:
    cli = find_cli()
    if cli is None:
        sys.exit(f"{CLI}: the CLI is neither installed with this package nor on PATH")
    os.execv(cli, [cli, *sys.argv[1:]])


if __name__ == "__main__":
    main()
