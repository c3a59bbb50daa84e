#!/usr/bin/env python3
"""Writes the stub NVIDIA libraries one PyTorch CUDA wheel needs to load.

    gen_cuda_stubs.py TORCH_LIB_DIR OUTDIR FAKE_CUDART FAKE_CUDA [FAKE_NVML]

PyPI's torch links the CUDA libraries of the nvidia-* wheels (cuBLAS, cuDNN,
NCCL, cuFFT, ...), gigabytes that are only loaded, never used, on the fake
runtime. Instead each missing library (a DT_NEEDED soname of torch/lib/*.so*
or torch/_C*.so that neither torch/lib, the system, nor the fakes provide) gets
a stub of the same soname exporting every symbol the torch libraries import
from it: the versioned ones (name@libcublas.so.12, name@NVSHMEM) in version
nodes of those names, found through each importer's version-needs; the
unversioned ones by their family prefix. Each is a function returning 0, or a
zeroed data object of at least the size the importer records.

Names the fakes should answer but do not (a line newer than fake_cudart.c or
fake_cuda_driver.c) are written as weak stubs into OUTDIR/cudart_extra.c and
OUTDIR/driver_extra.c, which build.sh compiles into the fakes: imports
@libcudart.so.N, unversioned cu[A-Z]* imports, and the cu[A-Z]* strings that
PyTorch's DriverAPI looks up by name; the nvml[A-Z]* strings it asserts in
libnvidia-ml.so.1 go to OUTDIR/nvml_extra.c (returning NVML_ERROR_NOT_SUPPORTED).

OUTDIR gets, per stub library, NAME.c and (when versioned) NAME.map, and
libs.txt: one "soname source [mapfile]" line each. Prints a summary on stderr.
"""

import ctypes
import functools
import pathlib
import re
import subprocess
import sys

SYSTEM_LIBS = [
    "libc.so.6", "libm.so.6", "libstdc++.so.6", "libgcc_s.so.1", "libpthread.so.0",
    "libdl.so.2", "librt.so.1", "ld-linux-x86-64.so.2", "libutil.so.1",
]
# Unversioned imports: the library family of a name, by prefix (longest first).
PREFIXES = [
    ("cusparseLt", "libcusparseLt.so"), ("cuFile", "libcufile.so"), ("cublasLt", "libcublasLt.so"),
    ("cublas", "libcublas.so"), ("cudnn", "libcudnn.so"), ("cufft", "libcufft.so"),
    ("curand", "libcurand.so"), ("cusolver", "libcusolver.so"), ("cusparse", "libcusparse.so"),
    ("nccl", "libnccl.so"), ("pnccl", "libnccl.so"), ("nvrtc", "libnvrtc.so"),
    ("nvshmem", "libnvshmem_host.so"), ("cupti", "libcupti.so"), ("Cupti", "libcupti.so"),
    ("nvtx", "libnvToolsExt.so"), ("nvJitLink", "libnvJitLink.so"), ("nvml", "libnvidia-ml.so"),
]
DRIVER_NAME = re.compile(r"cu[A-Z][A-Za-z0-9_]*")
# Strings that look like driver functions but belong to other libraries.
NOT_DRIVER = ("cuFile", "cuFFT", "cuBLAS", "cuDNN", "cuSPARSE", "cuSOLVER", "cuRAND", "cuTENSOR", "cuDSS")
C_STRING = re.compile(rb"(?<=\x00)(cu[A-Z][A-Za-z0-9_]{2,})(?=\x00)")
NVML_STRING = re.compile(rb"(?<=\x00)(nvml[A-Z][A-Za-z0-9_]{2,})(?=\x00)")


def readelf(*args):
    return subprocess.run(["readelf", *args], check=True, capture_output=True, text=True).stdout


def is_elf(path):
    try:
        with open(path, "rb") as f:
            return f.read(4) == b"\x7fELF"
    except OSError:
        return False


@functools.lru_cache(maxsize=None)
def _dyn_syms(path):
    return list(_parse_dyn_syms(path))


def dyn_syms(path):
    """(name, version or None, type, bind, size, defined) of each dynamic symbol."""
    return _dyn_syms(str(path))


def _parse_dyn_syms(path):
    for line in readelf("--dyn-syms", "--wide", str(path)).splitlines():
        parts = line.split()
        if len(parts) < 8 or not parts[0].endswith(":") or not parts[0][:-1].isdigit():
            continue
        name, version = parts[7], None
        if "@" in name:
            name, _, version = name.partition("@")
            version = version.lstrip("@")
        size = int(parts[2], 0) if parts[2].isdigit() else int(parts[2], 16) if parts[2].startswith("0x") else 0
        yield name, version, parts[3], parts[4], size, parts[6] != "UND"


@functools.lru_cache(maxsize=None)
def _needed(path):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", "-W", path))


def needed(path):
    return _needed(str(path))


def _unused_needed(path):
    return re.findall(r"\(NEEDED\)\s+Shared library: \[([^\]]+)\]", readelf("-d", "-W", str(path)))


def version_files(path):
    """version name -> file it is needed from (the importer's .gnu.version_r)."""
    out, current = {}, None
    for line in readelf("-V", "-W", str(path)).splitlines():
        m = re.search(r"File: (\S+)", line)
        if m:
            current = m.group(1)
            continue
        m = re.search(r"Name: (\S+)\s+Flags", line)
        if m and current:
            out[m.group(1)] = current
    return out


def rodata(path):
    """The .rodata section of an ELF file (where string literals live); the
    whole of libtorch_cuda.so is a gigabyte of fat binaries."""
    for line in readelf("-S", "-W", str(path)).splitlines():
        parts = line.replace("[ ", "[").split()
        if len(parts) > 5 and parts[1] == ".rodata":
            offset, size = int(parts[4], 16), int(parts[5], 16)
            with open(path, "rb") as f:
                f.seek(offset)
                return b"\x00" + f.read(size)
    return path.read_bytes()


def system_has(soname):
    try:
        ctypes.CDLL(soname)
        return True
    except OSError:
        return False


def mapped_objects():
    """The system libraries and this Python (which defines the Py* API)."""
    for name in SYSTEM_LIBS:
        try:
            ctypes.CDLL(name)
        except OSError:
            pass
    paths = set()
    with open("/proc/self/maps") as maps:
        for line in maps:
            path = line.split(maxsplit=5)[-1].strip()
            if path.startswith("/") and (".so" in path or "python" in pathlib.Path(path).name):
                paths.add(path)
    return sorted(p for p in paths if is_elf(p))


def c_name(i):
    return f"s{i}"


def main(lib_dir, out, fake_cudart, fake_cuda, fake_nvml=None):
    users = sorted(p for p in lib_dir.glob("*.so*") if is_elf(p))
    users += sorted(p for p in lib_dir.parent.glob("_C*.so") if is_elf(p))
    own = {p.name for p in users}
    fakes = {fake_cudart.name: fake_cudart, fake_cuda.name: fake_cuda}

    defined = set()
    for path in users + [pathlib.Path(p) for p in mapped_objects()]:
        for name, _, _, _, _, is_def in dyn_syms(path):
            if is_def:
                defined.add(name)
    fake_defs = {soname: {n for n, _, _, _, _, d in dyn_syms(path) if d} for soname, path in fakes.items()}

    missing = {}  # soname -> {"funcs": {name: version}, "objs": {name: (version, size)}}
    all_needed = {}
    for path in users:
        for soname in needed(path):
            all_needed.setdefault(soname, set()).add(path.name)
    for soname in sorted(all_needed):
        if soname in own or soname in fakes or soname in SYSTEM_LIBS or system_has(soname):
            continue
        missing[soname] = {"funcs": {}, "objs": {}}

    def family(name):
        for prefix, base in PREFIXES:
            if name.startswith(prefix):
                return base
        return None

    cudart_extra, driver_extra, unplaced = set(), set(), []
    for path in users:
        vfiles = version_files(path)
        deps_missing = [s for s in needed(path) if s in missing]
        for name, version, kind, bind, size, is_def in dyn_syms(path):
            if is_def or not name or bind == "WEAK":
                continue
            target = None
            if version is not None:
                file = vfiles.get(version)
                if file in fakes:
                    if name not in fake_defs[file]:
                        (cudart_extra if file == fake_cudart.name else driver_extra).add(name)
                    continue
                if file not in missing:
                    continue  # a system or torch library's versioned symbol
                target = file
            else:
                if name in defined:
                    continue
                if DRIVER_NAME.fullmatch(name) and not name.startswith(NOT_DRIVER):
                    if name not in fake_defs[fake_cuda.name]:
                        driver_extra.add(name)
                    continue
                base = family(name)
                candidates = [s for s in missing if base and s.startswith(base + ".")]
                if candidates:
                    target = sorted(candidates)[0]
                elif base is None and name in fake_defs[fake_cudart.name] | fake_defs[fake_cuda.name]:
                    continue
                elif deps_missing:
                    target = deps_missing[0]
                else:
                    unplaced.append(f"{path.name}: {name}")
                    continue
            entry = missing[target]
            if kind in ("OBJECT", "TLS"):
                old = entry["objs"].get(name, (version, 0))
                entry["objs"][name] = (version, max(old[1], size))
            else:
                entry["funcs"][name] = version

    # Names PyTorch's DriverAPI looks up in the driver at run time.
    nvml_defs = {n for n, _, _, _, _, d in dyn_syms(fake_nvml) if d} if fake_nvml else set()
    nvml_extra = set()
    for lib in ("libc10_cuda.so", "libtorch_cuda.so", "libtorch_python.so", "libcaffe2_nvrtc.so"):
        path = lib_dir / lib
        if path.exists():
            data = rodata(path)
            for m in C_STRING.finditer(data):
                name = m.group(1).decode()
                if not name.startswith(NOT_DRIVER) and name not in fake_defs[fake_cuda.name]:
                    driver_extra.add(name)
            if fake_nvml:
                for m in NVML_STRING.finditer(data):
                    if m.group(1).decode() not in nvml_defs:
                        nvml_extra.add(m.group(1).decode())

    out.mkdir(parents=True, exist_ok=True)
    lines = []
    for soname, entry in sorted(missing.items()):
        stem = soname.replace("+", "_")
        funcs, objs = entry["funcs"], entry["objs"]
        src = [f"/* Generated by tests/fake_cuda/gen_cuda_stubs.py from {lib_dir}: do not edit. */",
               f"/* {soname}: {len(funcs)} functions, {len(objs)} objects. */"]
        for i, name in enumerate(sorted(funcs)):
            src.append(f'long {c_name(i)}(void) __asm__("{name}");')
            src.append(f"long {c_name(i)}(void) {{ return 0; }}")
        for i, (name, (_, size)) in enumerate(sorted(objs.items())):
            src.append(f'__attribute__((aligned(64))) char o{i}[{max(size, 64)}] __asm__("{name}");')
        if not funcs and not objs:
            src.append("/* a name only: nothing is imported from it */")
        (out / f"{stem}.c").write_text("\n".join(src) + "\n")
        versions = sorted({v for v in funcs.values() if v} | {v for v, _ in objs.values() if v})
        mapfile = ""
        if versions:
            syms = {v: [] for v in versions}
            for name, v in list(funcs.items()) + [(n, v) for n, (v, _) in objs.items()]:
                syms[v or versions[0]].append(name)
            text = [f"/* Generated by gen_cuda_stubs.py: the version nodes {soname} exports. */"]
            for v in versions:
                text.append(f"{v} {{\n    global:")
                text += [f"        {n};" for n in sorted(syms[v])]
                text.append("};" if v != versions[0] else "    local:\n        *;\n};")
            (out / f"{stem}.map").write_text("\n".join(text) + "\n")
            mapfile = f"{stem}.map"
        lines.append(f"{soname} {stem}.c {mapfile}".rstrip())
        print(f"gen_cuda_stubs: {soname}: {len(funcs)} functions, {len(objs)} objects"
              f"{', versions ' + ' '.join(versions) if versions else ''}", file=sys.stderr)
    (out / "libs.txt").write_text("".join(line + "\n" for line in lines))

    for fname, names, value in (("cudart_extra.c", cudart_extra, 0), ("driver_extra.c", driver_extra, 0),
                                ("nvml_extra.c", nvml_extra, 3)):
        src = [f"/* Generated by tests/fake_cuda/gen_cuda_stubs.py from {lib_dir}: names this torch line",
               f" * needs that the fake does not define; weak, returning {value}, nothing written. */"]
        for i, name in enumerate(sorted(names)):
            src.append(f'__attribute__((weak)) int x{i}(void) __asm__("{name}");')
            src.append(f"int x{i}(void) {{ return {value}; }}")
        (out / fname).write_text("\n".join(src) + "\n")
    extra = cudart_extra | driver_extra | nvml_extra
    print(f"gen_cuda_stubs: {len(cudart_extra)} extra runtime names, {len(driver_extra)} extra driver names, "
          f"{len(nvml_extra)} extra NVML names" + (f": {' '.join(sorted(extra))}" if extra else ""), file=sys.stderr)
    for item in unplaced:
        print(f"gen_cuda_stubs: warning: no library for {item}", file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) not in (5, 6):
        sys.exit("usage: gen_cuda_stubs.py TORCH_LIB_DIR OUTDIR FAKE_CUDART FAKE_CUDA [FAKE_NVML]")
    main(*(pathlib.Path(a) for a in sys.argv[1:]))
