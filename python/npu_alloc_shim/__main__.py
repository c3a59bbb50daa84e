"""`python -m npu_alloc_shim ARGS` is `npu-alloc-shim ARGS`: the CLI shipped
in the package (`bin/` beside this file), else the one on PATH."""

import os
import shutil
import sys


def main() -> None:
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), "bin", "npu-alloc-shim")
    cli = here if os.access(here, os.X_OK) else shutil.which("npu-alloc-shim")
    if cli is None:
        sys.exit("npu-alloc-shim: the CLI is neither in this package nor on PATH")
    os.execv(cli, [cli, *sys.argv[1:]])


if __name__ == "__main__":
    main()
