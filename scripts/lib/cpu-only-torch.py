#!/usr/bin/env python3
"""Turns the PyPI torch unpacked in SITE_PACKAGES into a CPU-only torch.

    cpu-only-torch.py SITE_PACKAGES   (run by that environment's Python)

Why: torch-npu 2.11 and newer abort at load next to PyPI's torch with
"Duplicated key 'pinned_reserve_segment_size_mb' found in device-specific
configuration parser hook registration": PyPI's torch is a CUDA build, its
libc10_cuda.so registers that allocator key when it loads, and torch_npu
registers it too. Real Ascend hosts run a CPU build of torch, which PyPI does
not serve. scripts/torch-npu-venv.sh runs this on the unpacked wheel (installed
without its nvidia-* dependencies) so that torch_npu's own allocator and
parser can run on the simulated runtime, untouched.

What it does, in torch/lib:
- replaces libtorch_cuda.so and libc10_cuda.so by stub libraries of the same
  sonames (torch's DT_RPATH $ORIGIN finds them first), and removes the CUDA
  libraries that nothing loads at import (libtorch_cuda_linalg.so,
  libtorch_nvshmem.so, libcaffe2_nvrtc.so);
- gives every undefined symbol of the remaining torch libraries that neither
  they nor the system define a stub: in libc10_cuda.so when the original
  defined it, versioned ones (cudaGetDeviceCount@libcudart.so.13) in a library
  of that soname with a version script, the rest in libtorch_cuda.so; NEEDED
  libraries that do not exist (libcudart.so.13, libnccl.so.2, ...) become such
  stubs, empty when nothing is asked of them. Stubbed functions report "no
  device": C++ ones return 0 (c10::cuda::device_count() is 0), CUDA runtime
  ones cudaErrorNoDevice, other C ones -1. Data symbols are zeroed, with the
  originals' sizes; type-info objects (_ZTI*) are real ones, since pybind11
  registers classes by typeid. Two functions must do more while torch._C
  loads: c10d::get_gil_checker() returns a reference to real storage, and
  c10d::ProcessGroupNCCL::Options::Options(bool) builds a zeroed object with
  libtorch_python's vtable (pybind11 reads its typeid);
- installs a .pth import hook that sets torch._C._has_cuda = False as soon as
  torch._C is loaded (otherwise torch registers CUDA overrides and fails with
  "no kernel for CUDA for aten::linalg_polar.out").

The stubs' C sources and the originals' symbol tables stay in
torch/lib/cpu-only-torch/. Idempotent: a file written there last says it is
done; an interrupted run can be repeated.
"""

import ctypes
import functools
import importlib.metadata
import os
import pathlib
import re
import subprocess
import sys
import tempfile

# Replaced by stubs of the same soname.
REPLACED = ("libtorch_cuda.so", "libc10_cuda.so")
# CUDA-only libraries that nothing loads at import (they are opened for CUDA
# work only, and need the real libtorch_cuda.so).
REMOVED = ("libtorch_cuda_linalg.so", "libtorch_nvshmem.so", "libcaffe2_nvrtc.so")
# Libraries of the C/C++ runtime: never stubbed, and their definitions count.
SYSTEM_LIBS = (
    "libc.so.6", "libm.so.6", "libdl.so.2", "libpthread.so.0", "librt.so.1", "libutil.so.1",
    "libstdc++.so.6", "libgcc_s.so.1", "ld-linux-x86-64.so.2", "ld-linux-aarch64.so.1",
)
# A symbol every stub library defines: how a later run tells stubs from originals.
MARKER = "npu_alloc_shim_cpu_only_torch_stub"
STATE_DIR = "cpu-only-torch"
DONE = "DONE"
HOOK_MODULE = "_npu_alloc_shim_cpu_only_torch"
CUDA_NO_DEVICE = 100  # cudaErrorNoDevice

# Stubs that must do more than return: (the code, its C declarations).
SPECIAL = {
    # libtorch_python assigns its GIL checker through this reference at load.
    "_ZN4c10d15get_gil_checkerEv": (
        "static void *gil_checker;\n"
        "void **get_gil_checker(void) __asm__(\"_ZN4c10d15get_gil_checkerEv\");\n"
        "void **get_gil_checker(void) { return &gil_checker; }\n"
    ),
    # No device, and a count of 0 (the caller may read it despite the error).
    "cudaGetDeviceCount": (
        "int cudaGetDeviceCount(int *count) { if (count) *count = 0; return 100; }\n"
    ),
}
# ProcessGroupNCCL::Options::Options(bool), complete and base constructors.
# libtorch_python news the object (make_intrusive), then casts it to Python as
# a default argument: pybind11 reads its vtable's typeid, and the destructor
# (libtorch_python's, inline) may run at exit, which a zeroed libstdc++
# string/vector/shared_ptr survives. The allocation's usable size covers the
# whole object.
for _ctor in ("C1", "C2"):
    SPECIAL[f"_ZN4c10d16ProcessGroupNCCL7Options{_ctor}Eb"] = (
        "#include <malloc.h>\n#include <string.h>\n"
        "extern char nccl_options_vtable[] __asm__(\"_ZTVN4c10d16ProcessGroupNCCL7OptionsE\");\n"
        f"void nccl_options_{_ctor}(void *self, _Bool high_priority)"
        f" __asm__(\"_ZN4c10d16ProcessGroupNCCL7Options{_ctor}Eb\");\n"
        f"void nccl_options_{_ctor}(void *self, _Bool high_priority) {{\n"
        "    (void)high_priority;\n"
        "    memset(self, 0, malloc_usable_size(self));\n"
        "    *(void **)self = nccl_options_vtable + 16; /* past offset-to-top and typeinfo */\n"
        "}\n"
    )


def log(message):
    print(f"cpu-only-torch: {message}", file=sys.stderr)


@functools.lru_cache(maxsize=None)
def readelf(option, path):
    return subprocess.run(["readelf", option, "--wide", str(path)], check=True,
                          capture_output=True, text=True).stdout


def parse_dyn_syms(text):
    """(name, type, bind, section, size) of each dynamic symbol, name with its
    @VERSION (or @@VERSION when defined as the default) when it has one."""
    for line in text.splitlines():
        parts = line.split()
        if len(parts) >= 8 and parts[0].endswith(":") and parts[0][:-1].isdigit():
            yield parts[7], parts[3], parts[4], parts[6], int(parts[2], 0)


def needed(path):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("--dynamic", path))


def is_stub(path):
    return any(name.split("@")[0] == MARKER for name, *_ in parse_dyn_syms(readelf("--dyn-syms", path)))


def system_objects():
    """The C/C++ runtime and this Python (which defines the Py* API that
    libtorch_python links against), where the loader put them in this process."""
    for name in SYSTEM_LIBS:
        try:
            ctypes.CDLL(name)
        except OSError:
            pass
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split(maxsplit=5)[-1].strip()
            if path.startswith("/") and (".so" in path or path == os.path.realpath(sys.executable)):
                paths.add(path)
    return sorted(paths)


def original_symbols(lib, state):
    """The dynamic symbols of the original libtorch_cuda.so and libc10_cuda.so,
    saved before they are replaced (a repeated run reads the saved copy)."""
    symbols = {}
    for name in REPLACED:
        saved = state / f"{name}-original-dynsym.txt"
        path = lib / name
        if path.exists() and not is_stub(path):
            saved.write_text(readelf("--dyn-syms", path))
        if not saved.exists():
            sys.exit(f"cpu-only-torch: {path} is neither the original nor saved in {state}: reinstall torch")
        symbols[name] = {n.split("@")[0]: (kind, size) for n, kind, _, section, size
                         in parse_dyn_syms(saved.read_text()) if section != "UND"}
    return symbols


def stub_source(soname, functions, objects):
    """C source of one stub library: functions (name -> return value) and
    objects (name -> size)."""
    lines = [
        f"/* Stub {soname}, written by scripts/lib/cpu-only-torch.py (npu-alloc-shim). */",
        f'const char {MARKER}[] = "{soname}: CPU-only torch stub";',
        "extern char cxxabi_class_type_info_vtable[] __asm__(\"_ZTVN10__cxxabiv117__class_type_infoE\");",
        "struct type_info { const void *vtable; const char *name; };",
    ]
    for i, name in enumerate(sorted(functions)):
        if name in SPECIAL:
            lines.append(SPECIAL[name])
            continue
        value = functions[name]
        if isinstance(value, str):  # a message
            lines.append(f"const char *stub_fn_{i}(void) __asm__(\"{name}\");")
            lines.append(f"const char *stub_fn_{i}(void) {{ return \"{value}\"; }}")
        else:
            lines.append(f"long stub_fn_{i}(void) __asm__(\"{name}\");")
            lines.append(f"long stub_fn_{i}(void) {{ return {value}; }}")
    for i, name in enumerate(sorted(objects)):
        if name.startswith("_ZTI"):
            # A type_info without bases: enough to register and compare types.
            lines.append(f"const struct type_info stub_ti_{i} __asm__(\"{name}\") = "
                         f"{{ cxxabi_class_type_info_vtable + 16, \"{name[4:]}\" }};")
        elif name.startswith("_ZTS"):  # a type's name
            lines.append(f"const char stub_ts_{i}[] __asm__(\"{name}\") = \"{name[4:]}\";")
        else:
            lines.append(f"__attribute__((aligned(64))) char stub_obj_{i}[{max(objects[name], 8)}]"
                         f" __asm__(\"{name}\");")
    return "\n".join(lines) + "\n"


def return_value(name, soname):
    """What a stubbed function returns: "no device"."""
    if name.startswith("_Z"):
        return 0  # C++: 0, false, nullptr, an empty count
    if name in ("cudaGetErrorString", "cudaGetErrorName"):
        return "no CUDA: torch was made CPU-only for torch_npu"
    if soname.startswith("libcudart.") or name.startswith("cuda"):
        return CUDA_NO_DEVICE
    return -1


def build(tmp, soname, source, version_node):
    src = tmp / f"{soname}.c"
    src.write_text(source)
    command = ["gcc", "-shared", "-fPIC", "-O1", "-w", "-o", str(tmp / soname), f"-Wl,-soname,{soname}",
               str(src)]
    if version_node:
        script = tmp / f"{soname}.map"
        script.write_text(version_node)
        command.append(f"-Wl,--version-script,{script}")
    subprocess.run(command + ["-lstdc++"], check=True)


def main(site):
    torch = site / "torch"
    lib = torch / "lib"
    state = lib / STATE_DIR
    done = state / DONE
    version = next(importlib.metadata.distributions(name="torch", path=[str(site)])).version
    if done.exists() and done.read_text().strip() == version:
        log(f"{torch} is CPU-only already")
        return
    state.mkdir(exist_ok=True)
    originals = original_symbols(lib, state)

    stubs = set(REPLACED)
    kept = []
    for path in sorted(lib.glob("*.so*")) + sorted(torch.glob("_C*.so")):
        if path.name in REPLACED or path.name in REMOVED or not path.is_file():
            continue
        if is_stub(path):
            stubs.add(path.name)  # made by an interrupted run: made again
            continue
        kept.append(path)

    defined = set()
    for path in kept + [pathlib.Path(p) for p in system_objects()]:
        for name, _, _, section, _ in parse_dyn_syms(readelf("--dyn-syms", path)):
            if section != "UND":
                defined.add(name.replace("@@", "@"))
                defined.add(name.split("@")[0])

    present = {p.name for p in kept}
    for path in kept:
        stubs.update(n for n in needed(path) if n not in present and n not in SYSTEM_LIBS)

    # soname -> {function: return value}, {object: size}
    functions = {soname: {} for soname in stubs}
    objects = {soname: {} for soname in stubs}
    versioned = set()
    for path in kept:
        for name, kind, bind, section, _ in parse_dyn_syms(readelf("--dyn-syms", path)):
            if section != "UND" or bind == "WEAK" or name in defined:
                continue
            base, _, version_name = name.partition("@")
            if not version_name and base in defined:
                continue
            if version_name:
                soname = version_name
                versioned.add(soname)
            elif base in originals["libc10_cuda.so"]:
                soname = "libc10_cuda.so"
            else:
                soname = "libtorch_cuda.so"
            functions.setdefault(soname, {})
            objects.setdefault(soname, {})
            stubs.add(soname)
            original = originals["libtorch_cuda.so"].get(base) or originals["libc10_cuda.so"].get(base)
            if kind in ("OBJECT", "TLS") or (original and original[0] == "OBJECT"):
                objects[soname][base] = original[1] if original else 64
            else:
                functions[soname][base] = return_value(base, soname)

    with tempfile.TemporaryDirectory(dir=lib, prefix=".cpu-only-torch.") as tmp_name:
        tmp = pathlib.Path(tmp_name)
        for soname in sorted(stubs):
            names = sorted(functions[soname]) + sorted(objects[soname])
            node = None
            if soname in versioned:
                node = (f"{soname} {{\n  global:\n" + "".join(f"    {n};\n" for n in names + [MARKER])
                        + "  local: *;\n};\n")
            build(tmp, soname, stub_source(soname, functions[soname], objects[soname]), node)
            log(f"{soname}: {len(functions[soname])} functions, {len(objects[soname])} objects"
                + (f" (version {soname})" if node else ""))
        for soname in sorted(stubs):
            os.replace(tmp / f"{soname}.c", state / f"{soname}.c")
            if soname in versioned:
                os.replace(tmp / f"{soname}.map", state / f"{soname}.map")
            os.replace(tmp / soname, lib / soname)
    for name in REMOVED:
        (lib / name).unlink(missing_ok=True)

    hook = site / f"{HOOK_MODULE}.py"
    hook.write_text(HOOK_SOURCE)
    (site / "npu-alloc-shim-cpu-only-torch.pth").write_text(f"import {HOOK_MODULE}\n")
    done.write_text(version + "\n")
    log(f"{torch} is CPU-only now ({len(stubs)} stub libraries; sources in {state})")


HOOK_SOURCE = '''\
"""Sets torch._C._has_cuda = False as soon as torch._C is loaded.

Installed with npu-alloc-shim-cpu-only-torch.pth by npu-alloc-shim's
scripts/lib/cpu-only-torch.py, which made this torch CPU-only (its CUDA
libraries are stubs): torch must not register its CUDA overrides.
"""

import sys


class _Loader:
    def __init__(self, loader):
        self._loader = loader

    def create_module(self, spec):
        module = self._loader.create_module(spec)
        if module is not None:
            module._has_cuda = False
        return module

    def exec_module(self, module):
        self._loader.exec_module(module)
        module._has_cuda = False


class _Finder:
    @staticmethod
    def find_spec(name, path=None, target=None):
        if name != "torch._C":
            return None
        from importlib.machinery import PathFinder

        spec = PathFinder.find_spec(name, path, target)
        if spec is not None and spec.loader is not None:
            spec.loader = _Loader(spec.loader)
        return spec


sys.meta_path.insert(0, _Finder)
'''


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: cpu-only-torch.py SITE_PACKAGES")
    main(pathlib.Path(sys.argv[1]))
