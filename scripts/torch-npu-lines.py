#!/usr/bin/env python3
"""Surveys every torch-npu wheel on PyPI: which allocator keys each version's
PYTORCH_NPU_ALLOC_CONF parser knows, and how it words and treats the cases
the shim cares about. Writes crates/common/data/torch-npu-lines.json.

    scripts/torch-npu-lines.py [--versions V1,V2] [--out PATH] [--refresh]
                               [--no-pre]
    scripts/torch-npu-lines.py --wheel FILE.whl   (one local wheel, to stdout)

Python 3.11 standard library, pip (run as `python3 -m pip`) and binutils'
objdump. Nothing is installed: for each version, one after the other, one
x86_64 manylinux wheel is fetched with `pip download --no-deps
--only-binary=:all:` into a temporary folder, read with zipfile, and deleted
before the next one (at most one wheel on disk; pip's cache is off). The
versions and the files PyPI offers come from `pip index versions torch-npu
-vvv`, which logs every file link of the project page, compatible or not.

Resumable: entries already in the output file are kept (and not downloaded
again) unless --refresh, or unless they were made by another ANALYSIS
revision of this script. The file is rewritten atomically (temporary file +
rename) after each version.

HOW THE KEYS ARE FOUND (no hand-typed key list is used; the one below,
CROSS_CHECK, is only compared with the result and printed as warnings)

torch_npu is built with GCC at -O2, and its shared library keeps an
.eh_frame_hdr table, so every function's address range is known even though
the library is stripped. The parser is found by what it says, not by name:

 1. The unknown-key error. Every version rejects an unknown key with a
    TORCH_CHECK whose message starts with "Unrecognized" and names the
    allocator ("Unrecognized CachingAllocator option: " in most versions,
    "Unrecognized key '" ... "' in NPU allocator config" in the newer parser
    of 2.13 on and of the last posts of 2.10-2.12). Its
    literal is looked up in .rodata*, and the functions whose code loads its
    address (x86-64 `lea reg,[rip+disp32]`, found by scanning .text) are the
    parser, P. GCC splits a function into a hot and a cold (error-path)
    part with their own FDEs: P also gets every function that has a direct
    jump into P or that P jumps into.
 2. Key comparisons in P. `if (key == "max_split_size_mb")` is compiled in
    one of two ways: a `lea` of the literal (then memcmp/compare; older
    GCC builds such as 2.5.1's GCC 9), or inline (GCC 13 builds such as
    2.10's): the token's length is
    compared with a constant (`cmp reg, n`) and its bytes with constants:
    8-byte `movabs` immediates xor-ed with [ptr+0], [ptr+8], ... (16-byte
    windows, the last one overlapping), 4/2/1-byte immediates for a tail
    (`cmp DWORD PTR [ptr+0xf], imm`), or 16-byte constants loaded from
    .rodata.cst16. P is disassembled with objdump, and every constant made
    only of [a-z0-9_] is recorded with the base register and displacement
    it is compared with. Registers are followed in address order (a
    register holds what its last definition put there), except callee-saved
    ones, which may hold any constant the function ever puts in them: GCC
    hoists loop-invariant constants into them, far from their use.
 3. Candidates. Every snake_case token (lowercase, at least one '_') in any
    string of the library's .rodata* sections, and each run of its
    '_'-separated parts, is a candidate (key names always occur in some
    message: "Error, expecting <key> value" and the like). A candidate of n
    bytes is a key if the parser loads a literal that is exactly it, or if
    constants at base+0 .. base+n-1 cover all its bytes, starting with an
    8+-byte one at base+0 (any displacement for a stack buffer), and n is
    compared with a register (or a 0 byte is stored at base+n, the way a
    std::string is built). A candidate that is a prefix of a longer key
    and whose constants are all the longer key's ("throw_on" in
    "throw_on_npumalloc_oom") is dropped and listed in `prefixes_dropped`.
 4. Key sets. The newer parser keeps only torch_npu's own keys and
    hands the common ones to c10's AcceleratorAllocatorConfig: it registers
    a set of device keys (REGISTER_ALLOCATOR_CONFIG_PARSE_HOOK) and keeps a
    set of the common keys it supports ("torch_npu not support key '...'"
    warns about the others). Both sets are built from literals or inline
    strings in functions that P calls (or that call those same functions,
    such as the file's static initializer). So the same test (step 3) is
    run on P's direct callees; a callee in which keys are found is a key-set
    builder, and the callers of a key-set builder are tested as well.
    Keys found only there are marked "key-set" in `key_evidence`.
 5. Anything in P that looks like an unmatched key prefix (an 8-byte
    [a-z0-9_] immediate that no found key explains) is reported in
    `warnings`, as is any lowercase one-word literal P loads, so a key that
    the method misses shows up instead of vanishing silently.

Known limits: keys are assumed to be snake_case with at least one '_' (all
torch_npu keys are). With the newer parser a key that only c10 (the torch
wheel, not torch_npu) knows is accepted with a warning ("torch_npu not
support key"); such keys are not in the torch_npu wheel and so not listed,
except those torch_npu lists as supported. Key-set builders that build
their strings in ways the constant tracking does not follow only lose
evidence for keys the parser itself compares (so nothing is lost there).

THE OTHER FACTS come from the literals of every .so of the wheel, quoted in
the JSON: the unknown-key wording (with its format pieces), whether the
literal "PYTORCH_ALLOC_CONF" exists and is loaded by code, the "Both
PYTORCH_NPU_ALLOC_CONF and PYTORCH_ALLOC_CONF have been set" error, the
"LD_PRELOAD detected ... RTLD_DEFAULT" path, and how the conflict of
expandable_segments with max_split_size_mb / garbage_collection_threshold
is worded: an error ("cannot be enabled with"), a warning that turns
expandable segments off ("is changed to `False` by default"), or both (the
source then raises the error when expandable_segments is given explicitly
and warns otherwise).
"""

import argparse
import bisect
import datetime
import hashlib
import json
import os
import re
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import time
import zipfile

PROJECT = "torch-npu"
GENERATOR = "scripts/torch-npu-lines.py"
# Bump when the analysis changes: entries made by another revision are redone.
ANALYSIS = 1
DEFAULT_OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "crates", "common", "data",
                           "torch-npu-lines.json")
# Which CPython wheel to read when several are offered (all hold the same C++).
PY_PREFERENCE = ["cp311", "cp310", "cp312", "cp39", "cp313", "cp38", "cp314"]

# Cross-check only (never used to pick keys): what was observed by running the
# real parsers (shared/notes/real-torch-npu.md, torch_npu-alloc-conf.md).
_K251 = ["max_split_size_mb", "garbage_collection_threshold", "expandable_segments", "base_addr_aligned_kb",
         "page_size"]
_K210 = _K251 + ["pin_memory_expandable_segments", "pinned_mem_register", "segment_size_mb",
                 "pinned_reserve_segment_size_mb", "roundup_power2_divisions", "pinned_use_background_threads",
                 "multi_stream_lazy_reclaim", "per_process_memory_fraction"]
CROSS_CHECK = {
    "2.5.1": {"exact": _K251},
    "2.10.0.post4": {"exact": _K210},
    # Observed to be accepted; the full set was not probed.
    "2.14.0": {"at_least": _K210 + ["pinned_max_cached_size_mb", "pinned_max_round_threshold_mb",
                                     "throw_on_npumalloc_oom"]},
}

METHOD = (
    "Keys: the parser is the code that loads the unknown-key message literal ('Unrecognized ...' naming the "
    "allocator), with the hot/cold parts of those functions (direct jumps; function ranges from .eh_frame_hdr). "
    "A key is a snake_case token of the library's .rodata strings that the parser compares tokens with: it loads "
    "that exact literal (lea rip-relative), or (inline comparison, GCC 13 builds) constants it compares with "
    "pointer+0..n-1 (movabs imm64, imm32/16/8, 16-byte .rodata.cst16 constants) cover all n bytes, starting with "
    "an 8+-byte one at +0, and n is compared with a register (or a NUL is stored at +n when a string is built). "
    "Prefixes of a longer key made of its constants only are dropped. The same test on the parser's direct "
    "callees finds key-set builders (newer parser: the device keys registered with c10, the common c10 keys "
    "torch_npu supports), and the callers of a builder (the file's static initializer) are tested too. No hand-typed key "
    "list is used except as a printed cross-check (header.validation). Other facts: literals found in every .so "
    "of the wheel, quoted with the files they are in; conflict mode 'error-if-explicit-else-warning' means both "
    "the error and the warning literal exist (the source raises the error when expandable_segments is given "
    "explicitly, otherwise it warns and turns expandable segments off).")

IDENT = set(b"abcdefghijklmnopqrstuvwxyz0123456789_")
TOKEN_RE = re.compile(rb"(?<![A-Za-z0-9_])[a-z][a-z0-9]*(?:_[a-z0-9]+)+(?![A-Za-z0-9_])")
WORD_RE = re.compile(rb"^[a-z][a-z0-9]*$")
SNAKE_RE = re.compile(rb"^[a-z][a-z0-9]*(?:_[a-z0-9]+)+$")


def log(*a):
    print(*a, file=sys.stderr, flush=True)


# ---------------------------------------------------------------- versions

def version_key(v):
    m = re.fullmatch(r"(\d+(?:\.\d+)*)(?:(a|b|rc)(\d+))?(?:\.post(\d+))?", v)
    if not m:
        return ((9999,), v)
    rel = tuple(int(x) for x in m.group(1).split("."))
    # a final release sorts after its pre-releases
    pre = (0, 0) if m.group(2) is None else ({"a": -3, "b": -2, "rc": -1}[m.group(2)], int(m.group(3)))
    post = -1 if m.group(4) is None else int(m.group(4))
    return (rel, pre, post)


def line_of(v):
    return ".".join(v.split(".")[:2])


def is_pre(v):
    return re.search(r"(a|b|rc)\d+", v) is not None


WHEEL_RE = re.compile(r"^torch_npu-([^-]+)-(?:\d[^-]*-)?([^-]+)-([^-]+)-([^-]+)\.whl$")


def pypi_files():
    """{version: [file names]} from pip's own look-up of the project page."""
    cmd = [sys.executable, "-m", "pip", "index", "versions", PROJECT, "--pre", "-vvv",
           "--disable-pip-version-check", "--no-cache-dir"]
    r = subprocess.run(cmd, capture_output=True, text=True)
    if r.returncode != 0:
        raise SystemExit("pip index versions failed:\n" + r.stdout[-2000:] + r.stderr[-2000:])
    text = r.stdout + r.stderr
    files = {}
    for url in re.findall(r"https?://\S+?\.whl", text):
        name = url.rsplit("/", 1)[-1]
        m = WHEEL_RE.match(name)
        if m:
            files.setdefault(m.group(1), set()).add(name)
    return {v: sorted(s) for v, s in files.items()}


def offered(names):
    py, plat = set(), set()
    for n in names:
        m = WHEEL_RE.match(n)
        py.update(m.group(2).split("."))
        plat.update(m.group(4).split("."))
    return sorted(py, key=lambda t: (t[:2], int(re.sub(r"\D", "", t) or 0))), sorted(plat)


def choose_wheel(names):
    cands = []
    for n in names:
        m = WHEEL_RE.match(n)
        pys, abi, plats = m.group(2).split("."), m.group(3), m.group(4).split(".")
        if not any(p.endswith("x86_64") and "linux" in p for p in plats):
            continue
        for py in pys:
            if py in PY_PREFERENCE:
                cands.append((PY_PREFERENCE.index(py), n, py, abi, plats))
    if not cands:
        return None
    cands.sort()
    _, n, py, abi, plats = cands[0]
    return {"file": n, "python": py, "abi": abi, "platforms": plats}


def download(version, choice, dest):
    py = choice["python"]
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--disable-pip-version-check", "--progress-bar", "off", "-q", "-d", dest,
           "--implementation", "cp", "--python-version", py[2] + "." + py[3:], "--abi", choice["abi"]]
    for p in choice["platforms"]:
        cmd += ["--platform", p]
    cmd.append(f"{PROJECT}=={version}")
    r = subprocess.run(cmd, capture_output=True, text=True)
    whl = [f for f in os.listdir(dest) if f.endswith(".whl")]
    if r.returncode != 0 or len(whl) != 1:
        raise RuntimeError(f"pip download {version} failed: {r.stdout[-1500:]}{r.stderr[-1500:]}")
    return os.path.join(dest, whl[0])


# ---------------------------------------------------------------- ELF

class Elf:
    def __init__(self, data):
        if data[:4] != b"\x7fELF" or data[4] != 2 or data[5] != 1:
            raise ValueError("not a little-endian ELF64 file")
        self.d = data
        (self.machine,) = struct.unpack_from("<H", data, 0x12)
        (shoff,) = struct.unpack_from("<Q", data, 0x28)
        shentsize, shnum, shstrndx = struct.unpack_from("<HHH", data, 0x3A)
        raw = [struct.unpack_from("<IIQQQQ", data, shoff + i * shentsize) for i in range(shnum)]
        stro = raw[shstrndx][4]
        self.secs = {}
        self.order = []
        for name, typ, flags, addr, off, size in raw:
            n = data[stro + name:data.index(b"\0", stro + name)].decode()
            self.secs[n] = dict(type=typ, flags=flags, addr=addr, off=off, size=size)
            self.order.append(n)
        self._ro = None

    def sec(self, n):
        x = self.secs[n]
        return x["addr"], self.d[x["off"]:x["off"] + x["size"]]

    def has(self, n):
        return n in self.secs

    def rodata(self):
        """[(name, addr, bytes)] of the read-only data sections."""
        if self._ro is None:
            self._ro = [(n, *self.sec(n)) for n in self.order
                        if n.startswith(".rodata") and self.secs[n]["type"] == 1]
        return self._ro

    def ro_at(self, va, size=None):
        for n, a, d in self.rodata():
            if a <= va < a + len(d):
                o = va - a
                if size is None:
                    e = d.find(b"\0", o)
                    return d[o:e if e >= 0 else len(d)], n
                return d[o:o + size], n
        return None, None

    def comment(self):
        if not self.has(".comment"):
            return []
        _, d = self.sec(".comment")
        return sorted(set(s.decode("utf-8", "replace") for s in d.split(b"\0") if s))


def _enc(d, off, enc, pc, datarel):
    fmt = enc & 0x0F
    if fmt == 0x0B:
        (v,) = struct.unpack_from("<i", d, off); n = 4
    elif fmt == 0x03:
        (v,) = struct.unpack_from("<I", d, off); n = 4
    elif fmt == 0x0C:
        (v,) = struct.unpack_from("<q", d, off); n = 8
    elif fmt in (0x04, 0x00):
        (v,) = struct.unpack_from("<Q", d, off); n = 8
    else:
        raise ValueError("pointer encoding %#x" % enc)
    app = enc & 0x70
    if app == 0x10:
        v += pc
    elif app == 0x30:
        v += datarel
    return v, n


def functions(elf):
    """Sorted [(start, end)] of every function with an FDE (.eh_frame_hdr table)."""
    ha, h = elf.sec(".eh_frame_hdr")
    fa, f = elf.sec(".eh_frame")
    off = 4
    _, n = _enc(h, off, h[1], ha + off, ha); off += n
    cnt, n = _enc(h, off, h[2], ha + off, ha); off += n
    out = []
    for _ in range(cnt):
        loc, n = _enc(h, off, h[3], ha + off, ha); off += n
        fde, n = _enc(h, off, h[3], ha + off, ha); off += n
        fo = fde - fa
        (pb,) = struct.unpack_from("<i", f, fo + 8)   # pc_begin: pcrel sdata4 (GCC's x86-64 default)
        (pr,) = struct.unpack_from("<i", f, fo + 12)
        if pb + fde + 8 != loc:
            raise ValueError("unexpected FDE encoding")
        out.append((loc, loc + pr))
    out.sort()
    return out


LEA_RE = re.compile(rb"[\x48\x4c]\x8d[\x05\x0d\x15\x1d\x25\x2d\x35\x3d]", re.S)
BR_RE = re.compile(rb"\x0f[\x80-\x8f]|\xe9", re.S)
CALL_RE = re.compile(rb"\xe8", re.S)


class Code:
    """x86-64 .text of one library: rip-relative loads, jumps, function ranges."""

    def __init__(self, elf):
        self.elf = elf
        self.base, self.text = elf.sec(".text")
        self.fns = functions(elf)
        self.starts = [a for a, _ in self.fns]
        self._lea = None

    def fn_of(self, va):
        k = bisect.bisect_right(self.starts, va) - 1
        if k >= 0 and self.fns[k][0] <= va < self.fns[k][1]:
            return self.fns[k]
        return None

    def lea_targets(self):
        if self._lea is None:
            t, base, idx = self.text, self.base, {}
            end = len(t) - 7
            for m in LEA_RE.finditer(t):
                p = m.start()
                if p > end:
                    break
                (disp,) = struct.unpack_from("<i", t, p + 3)
                idx.setdefault(base + p + 7 + disp, []).append(base + p)
            self._lea = idx
        return self._lea

    def refs(self, va):
        return self.lea_targets().get(va, [])

    def rel32_sources(self, regex, oplen, lo, hi):
        """Byte-scan hits of a rel32 branch/call whose target is in [lo, hi)."""
        t, base, out = self.text, self.base, []
        end = len(t) - oplen - 4
        for m in regex.finditer(t):
            p = m.start()
            if p > end:
                break
            ln = m.end() - p
            (disp,) = struct.unpack_from("<i", t, p + ln)
            tg = base + p + ln + 4 + disp
            if lo <= tg < hi:
                out.append(base + p)
        return out


INSN_RE = re.compile(r"^\s*([0-9a-f]+):\s+(\S+)\s*(.*)$")
LEAREF_RE = re.compile(r"\[rip\+0x[0-9a-f]+\]\s+# ([0-9a-f]+)")
RIPMEM_RE = re.compile(r"^(BYTE|WORD|DWORD|QWORD|XMMWORD|YMMWORD) PTR \[rip\+0x[0-9a-f]+\]$")
MEM_RE = re.compile(r"^(?:(BYTE|WORD|DWORD|QWORD|XMMWORD|YMMWORD) PTR )?\[([a-z0-9]+)(?:([+-])0x([0-9a-f]+))?\]$")
IMM_RE = re.compile(r"^(?:0x)?([0-9a-f]+)$")
TARGET_RE = re.compile(r"^([0-9a-f]+)\b")
SIZES = {"BYTE": 1, "WORD": 2, "DWORD": 4, "QWORD": 8, "XMMWORD": 16, "YMMWORD": 32}


def _regs():
    m = {}
    for r in "abcd":
        for n, w in ((f"r{r}x", 8), (f"e{r}x", 4), (f"{r}x", 2), (f"{r}l", 1)):
            m[n] = (f"r{r}x", w)
    for r in ("si", "di", "bp", "sp"):
        for n, w in ((f"r{r}", 8), (f"e{r}", 4), (r, 2), (f"{r}l", 1)):
            m[n] = (f"r{r}", w)
    for i in range(8, 16):
        for n, w in ((f"r{i}", 8), (f"r{i}d", 4), (f"r{i}w", 2), (f"r{i}b", 1)):
            m[n] = (f"r{i}", w)
    for i in range(32):
        m[f"xmm{i}"] = (f"xmm{i}", 16)
    return m


REGS = _regs()
CALLEE_SAVED = {"rbx", "rbp", "rsp", "r12", "r13", "r14", "r15"}
CMP_OPS = {"xor", "cmp", "sub", "pxor", "pcmpeqb", "vpxor", "vpcmpeqb", "test"}
MOV_OPS = {"mov", "movabs", "movdqa", "movdqu", "movaps", "movups", "vmovdqa", "vmovdqu", "vmovups",
           "vmovaps", "movq"}


class FnInfo:
    def __init__(self):
        self.literals = []      # addresses loaded with lea
        self.pos = {}           # base register -> {disp: {bytes}}: [a-z0-9_] bytes compared with or stored at
        self.nul = set()        # (base, disp) where a 0 byte is stored
        self.lengths = set()    # constants a register is compared with
        self.prefixes = set()   # the >= 8-byte chunks
        self.calls = set()
        self.jumps = set()

    def add(self, base, disp, b):
        if b and all(c in IDENT for c in b):
            self.pos.setdefault(base, {}).setdefault(disp, set()).add(b)
            if len(b) >= 8:
                self.prefixes.add(b[:8])


def _split_ops(ops):
    ops = ops.split("#")[0].strip()
    out, depth, cur = [], 0, ""
    for ch in ops:
        if ch == "[":
            depth += 1
        elif ch == "]":
            depth -= 1
        if ch == "," and depth == 0:
            out.append(cur.strip()); cur = ""
        else:
            cur += ch
    if cur.strip():
        out.append(cur.strip())
    return out


def disassemble(path, lo, hi, elf):
    """What one function loads and compares: literals, and the [a-z0-9_] constants it compares with (or
    stores at) base+displacement, the way GCC inlines `str == "literal"` and builds constant strings.
    Callee-saved registers may hold every constant the function ever puts in them (hoisted loop
    constants); the others hold what their last definition, in address order, put there."""
    r = subprocess.run(["objdump", "-d", "-M", "intel", "--no-show-raw-insn", f"--start-address={lo:#x}",
                        f"--stop-address={hi:#x}", path], capture_output=True, text=True)
    if r.returncode != 0:
        raise RuntimeError("objdump failed: " + r.stderr[-500:])
    info = FnInfo()

    def mem(op):
        m = MEM_RE.match(op)
        if not m or m.group(2) not in REGS:
            return None
        d = int(m.group(4), 16) if m.group(4) else 0
        return REGS[m.group(2)][0], (-d if m.group(3) == "-" else d), SIZES.get(m.group(1))

    insns = []
    for line in r.stdout.splitlines():
        m = INSN_RE.match(line)
        if not m:
            continue
        mn, raw = m.group(2), m.group(3)
        if mn == "lea":
            x = LEAREF_RE.search(raw)
            if x:
                info.literals.append(int(x.group(1), 16))
            continue
        if mn.startswith("call"):
            x = TARGET_RE.match(raw)
            if x:
                info.calls.add(int(x.group(1), 16))
            insns.append(("call", None, None, None, None, None, None))
            continue
        if mn.startswith("j"):
            x = TARGET_RE.match(raw)
            if x:
                info.jumps.add(int(x.group(1), 16))
            continue
        ops = _split_ops(raw)
        if len(ops) != 2:
            continue
        if mn not in MOV_OPS and mn not in CMP_OPS:
            r0 = REGS.get(ops[0])
            if r0:   # any other write to a register ends what it held
                insns.append(("clobber", r0, None, None, None, None, None))
            continue
        dst, src = ops
        rip = None
        if "[rip+" in src:
            x, sz = LEAREF_RE.search(raw), RIPMEM_RE.match(src)
            if x and sz:
                b, _ = elf.ro_at(int(x.group(1), 16), SIZES[sz.group(1)])
                rip = bytes(b) if b else None
        imm = IMM_RE.match(src)
        insns.append((mn, REGS.get(dst), mem(dst), REGS.get(src), mem(src), int(imm.group(1), 16) if imm else None,
                      rip))

    # Callee-saved registers: every constant the function ever puts in them (hoisted loop-invariant
    # constants are used far from where they are set, across calls and jumps). Other registers: the
    # value of their last definition in address order.
    hoisted = {}
    for _ in range(4):
        before = sum(map(len, hoisted.values()))
        for mn, rd, md, rs, ms, imm, rip in insns:
            if mn not in MOV_OPS or not rd or rd[0] not in CALLEE_SAVED:
                continue
            name, w = rd
            if imm is not None and imm < 1 << (8 * w):
                hoisted.setdefault(name, set()).add(imm.to_bytes(w, "little"))
            elif rip is not None:
                hoisted.setdefault(name, set()).add(rip)
            elif rs and mn != "movq":
                hoisted.setdefault(name, set()).update(hoisted.get(rs[0], ()))
        if sum(map(len, hoisted.values())) == before:
            break
    cur, loaded = {}, {}   # caller-saved register -> {constant bytes}; any register -> (base, disp)

    def consts(r):
        return hoisted.get(r, ()) if r in CALLEE_SAVED else cur.get(r, ())

    def at(m):
        return m is not None and m[0] != "rip"

    for mn, rd, md, rs, ms, imm, rip in insns:
        if mn == "call":
            for k in [k for k in cur if k not in CALLEE_SAVED]:
                cur.pop(k, None)
            for k in [k for k in loaded if k not in CALLEE_SAVED]:
                loaded.pop(k, None)
            continue
        if mn == "clobber":
            cur[rd[0]] = set()
            loaded.pop(rd[0], None)
            continue
        if mn in MOV_OPS:
            if rd:
                name, w = rd
                new_c, new_l = set(), None
                if imm is not None and imm < 1 << (8 * w):
                    new_c = {imm.to_bytes(w, "little")}
                elif rip is not None:
                    new_c = {rip}
                elif at(ms):
                    new_l = ms[:2]
                elif rs and mn != "movq":
                    new_c = set(consts(rs[0]))
                    new_l = loaded.get(rs[0])
                cur[name] = new_c
                if new_l:
                    loaded[name] = new_l
                else:
                    loaded.pop(name, None)
            elif at(md):
                base, disp, sz = md
                if imm is not None and sz and imm < 1 << (8 * sz):
                    b = imm.to_bytes(sz, "little")
                    if b == b"\0":
                        info.nul.add((base, disp))
                    info.add(base, disp, b)
                elif rs:
                    for v in consts(rs[0]):
                        info.add(base, disp, v)
            continue
        # comparisons: constant against memory, or against a register loaded from memory
        if at(md) and imm is not None and md[2]:
            if imm < 1 << (8 * md[2]):
                info.add(md[0], md[1], imm.to_bytes(md[2], "little"))
        elif rd and imm is not None and mn == "cmp":
            info.lengths.add(imm)
        elif rd:
            a = rd[0]
            if at(ms):
                for v in consts(a):
                    info.add(ms[0], ms[1], v)
            place = loaded.get(a)
            if place:
                if rip is not None:
                    info.add(*place, rip)
                if rs:
                    for v in consts(rs[0]):
                        info.add(*place, v)
            if rs and loaded.get(rs[0]):
                for v in consts(a):
                    info.add(*loaded[rs[0]], v)
            if mn not in ("cmp", "test"):
                cur[a] = set()
                loaded.pop(a, None)
        elif at(md) and rs:
            for v in consts(rs[0]):
                info.add(md[0], md[1], v)
    return info


# ---------------------------------------------------------------- keys

def candidates(elf):
    """Snake_case tokens of every .rodata string, and their '_'-runs."""
    out = set()
    for _, _, d in elf.rodata():
        for m in TOKEN_RE.finditer(d):
            parts = m.group(0).split(b"_")
            if len(parts) > 12:
                continue
            for i in range(len(parts)):
                for j in range(i + 2, len(parts) + 1):
                    s = b"_".join(parts[i:j])
                    if SNAKE_RE.match(s):
                        out.add(s)
    return out


def inline_matches(key, info):
    """How the function compares with (or builds) key byte by byte: [(base, disp, chunks)] where the
    constants at base+disp.. cover key[0:n], starting with a chunk of 8+ bytes, and n is compared with a
    register or a 0 byte is stored right after it. A string starts at displacement 0 of its pointer (or
    anywhere in a stack buffer), so a key's tail is not taken for a key."""
    n, out = len(key), []
    for base, bydisp in info.pos.items():
        for d0, cs in bydisp.items():
            if (d0 != 0 and base not in ("rsp", "rbp")) or not any(len(c) >= 8 and key.startswith(c) for c in cs):
                continue
            if not (n in info.lengths or (base, d0 + n) in info.nul):
                continue
            cov, used = bytearray(n), set()
            for o in range(n):
                for b in bydisp.get(d0 + o, ()):
                    if o + len(b) <= n and key[o:o + len(b)] == b:
                        cov[o:o + len(b)] = b"\1" * len(b)
                        used.add((o, b))
            if all(cov):
                out.append((base, d0, frozenset(used)))
    return out


def keys_in(info, by8, elf):
    """{key: "literal" | "inline"}, {address: literal}, {dropped: longer key} for one function. A
    candidate found inline whose constants are all among those of a longer key it begins ("throw_on",
    "multi_stream_lazy" in "multi_stream_lazy_reclaim") is dropped (and reported)."""
    found, lits, matches = {}, {}, {}
    for a in info.literals:
        s, _ = elf.ro_at(a)
        if s is not None:
            lits[a] = s
            if SNAKE_RE.match(s):
                found[s] = "literal"
    for p in info.prefixes:
        for k in by8.get(p, ()):
            if k not in found and k not in matches:
                m = inline_matches(k, info)
                if m:
                    matches[k] = m
    dropped = {}
    for k, ms in matches.items():
        longer = [(k2, m2) for k2, m2 in matches.items() if len(k2) > len(k) and k2.startswith(k)]
        by = [k2 for k2, m2 in longer if any(u <= u2 for _, _, u in ms for _, _, u2 in m2)]
        if by:
            dropped[k.decode()] = min(by).decode()
            continue
        found[k] = "inline"
    return found, lits, dropped


def analyse_library(path, data):
    elf = Elf(data)
    if elf.machine != 62:
        raise ValueError("not x86-64")
    res = {"linker": elf.comment(), "warnings": []}
    code = Code(elf)

    # 1. the unknown-key message
    # ("Unrecognized CachingAllocator option: " names the allocator itself; "Unrecognized key '" is
    # followed by a piece that does: "' in NPU allocator config")
    unknown = []
    for n, a, d in elf.rodata():
        for m in re.finditer(rb"Unrecognized[^\0]{0,120}", d):
            s = m.group(0)
            names = re.search(rb"[Aa]llocator", s) is not None
            if names or s.endswith(b"'"):
                unknown.append((a + m.start(), s, names))
    parser = {}
    infos = {}

    def info(f):
        if f not in infos:
            infos[f] = disassemble(path, f[0], f[1], elf)
        return infos[f]

    used = []
    for va, s, names in unknown:
        for p in code.refs(va):
            f = code.fn_of(p)
            if not f:
                continue
            if not names:
                pieces = [elf.ro_at(a)[0] or b"" for a in info(f).literals]
                if not any(re.search(rb"[Aa]llocator", x) for x in pieces):
                    continue
            parser[f] = "unknown-key"
            used.append((va, s))
    if not parser:
        res["warnings"].append("no code loads an 'Unrecognized ...' allocator literal")
        return res, elf, code, None

    # hot/cold parts
    for f in list(parser):
        for j in info(f).jumps:
            g = code.fn_of(j)
            if g and g != f and g not in parser:
                parser[g] = "jumped-to"
        for src in code.rel32_sources(BR_RE, 2, f[0], f[1]):
            g = code.fn_of(src)
            if g and g != f and g not in parser and any(f[0] <= j < f[1] for j in info(g).jumps):
                parser[g] = "jumps-in"

    cands = candidates(elf)
    by8 = {}
    for c in cands:
        if len(c) >= 8:
            by8.setdefault(c[:8], []).append(c)

    evidence = {}

    def note(found, f, where):
        for k, how in found.items():
            evidence.setdefault(k.decode(), []).append({"how": how, "where": where, "function": f"{f[0]:#x}"})

    other_words = set()
    dropped = {}
    parser_chunks = set()
    parser_lits = {}
    for f in sorted(parser):
        i = info(f)
        found, lits, dr = keys_in(i, by8, elf)
        dropped.update(dr)
        note(found, f, "parser")
        parser_lits.update(lits)
        parser_chunks |= {b for bd in i.pos.values() for cs in bd.values() for b in cs if len(b) >= 8}
        other_words |= {s for s in lits.values() if WORD_RE.match(s)}

    # key-set builders: callees of the parser with keys, then their callers
    builders = set()
    for f in sorted(parser):
        for c in sorted(info(f).calls):
            g = code.fn_of(c)
            if not g or g in parser or g[0] != c:
                continue
            found, _, dr = keys_in(info(g), by8, elf)
            dropped.update(dr)
            if found:
                builders.add(g)
                note(found, g, "key-set")
    for b in sorted(builders):
        for src in code.rel32_sources(CALL_RE, 1, b[0], b[0] + 1):
            g = code.fn_of(src)
            if not g or g in parser or g in builders:
                continue
            if b[0] not in info(g).calls:
                continue
            found, _, dr = keys_in(info(g), by8, elf)
            dropped.update(dr)
            note(found, g, "key-set")

    keys = sorted(evidence)
    # 5. unexplained immediates in the parser
    explained = set()
    for k in keys:
        kb = k.encode()
        for c in parser_chunks:
            if c in kb:
                explained.add(c)
    stray = sorted(c.decode() for c in parser_chunks - explained if b"_" in c or c.isalpha())
    if stray:
        res["warnings"].append("parser immediates that no found key explains: " + ", ".join(stray))
    words = sorted(w.decode() for w in other_words)

    res["parser"] = {
        "functions": [{"start": f"{f[0]:#x}", "end": f"{f[1]:#x}", "why": parser[f]} for f in sorted(parser)],
        "key_set_builders": [f"{b[0]:#x}" for b in sorted(builders)],
        "one_word_literals": words,
        "prefixes_dropped": {k: v for k, v in sorted(dropped.items()) if k not in evidence},
    }
    res["keys"] = keys
    res["key_evidence"] = {k: sorted({json.dumps(e, sort_keys=True) for e in v}) for k, v in evidence.items()}
    res["key_evidence"] = {k: [json.loads(e) for e in v] for k, v in sorted(res["key_evidence"].items())}
    res["keys_in_parser"] = sorted(k for k, v in evidence.items() if any(e["where"] == "parser" for e in v))
    res["keys_in_key_sets_only"] = sorted(k for k in keys if k not in res["keys_in_parser"])

    # unknown-key wording and format
    used = sorted(set(used))
    lits_in_parser = {s for s in parser_lits.values()}
    fmt = None
    for va, s in used:
        txt = s.decode("utf-8", "replace")
        if txt.endswith("'"):
            # the piece after the key: a parser literal starting with "'"
            tails = sorted({t.decode("utf-8", "replace") for t in lits_in_parser
                            if t.startswith(b"' ") and b"allocator" in t.lower()})
            fmt = txt + "<key>" + (tails[0] if tails else "")
        else:
            fmt = txt + "<key>"
    res["unknown_key"] = {
        "literals": sorted({s.decode("utf-8", "replace") for _, s in used}),
        "format": fmt,
        "wording": None if not fmt else (
            "Unrecognized CachingAllocator option" if "CachingAllocator option" in fmt else
            "Unrecognized key '...' in NPU allocator config" if "NPU allocator config" in fmt else fmt),
    }
    res["other_parser_messages"] = sorted(
        s.decode("utf-8", "replace") for s in lits_in_parser
        if re.search(rb"not support key|unsupported setting|Duplicated key", s))
    return res, elf, code, parser


# ---------------------------------------------------------------- other facts

def strings_with(elf, pattern):
    """[(address, full string)] of .rodata strings matching a regex (bytes)."""
    out = []
    for n, a, d in elf.rodata():
        for m in re.finditer(pattern, d):
            st = d.rfind(b"\0", 0, m.start()) + 1
            en = d.find(b"\0", m.end())
            out.append((a + m.start(), a + st, d[st:en if en >= 0 else len(d)]))
    return out


def literal_refs(elf, code, lit):
    """Code references to lit as a C string (own or tail-merged), and where it lives."""
    total, places = 0, []
    for n, a, d in elf.rodata():
        for m in re.finditer(re.escape(lit) + b"\0", d):
            va = a + m.start()
            r = len(code.refs(va)) if code else 0
            total += r
            places.append({"address": f"{va:#x}", "tail_of_longer_string": m.start() > 0 and d[m.start() - 1] != 0,
                           "code_refs": r})
    return total, places


def other_facts(libs):
    """libs: [(member name, Elf, Code or None)]."""
    def find(pattern):
        seen = {}
        for name, elf, code in libs:
            for va, st, s in strings_with(elf, pattern):
                seen.setdefault(s.decode("utf-8", "replace"), set()).add(name)
        return {k: sorted(v) for k, v in sorted(seen.items())}

    facts = {}
    gen = {"literal": "PYTORCH_ALLOC_CONF", "in": {}}
    reads = False
    for name, elf, code in libs:
        n, places = literal_refs(elf, code, b"PYTORCH_ALLOC_CONF")
        # a place whose string is exactly the literal (not PYTORCH_NPU_ALLOC_CONF's tail, which it can't be)
        if places:
            gen["in"][name] = places
        reads = reads or n > 0
    gen["loaded_by_code"] = reads
    gen["messages"] = find(rb"(?<![A-Z_])PYTORCH_ALLOC_CONF")
    facts["generic_variable"] = gen
    both = find(rb"Both PYTORCH_NPU_ALLOC_CONF and PYTORCH_ALLOC_CONF")
    facts["both_set_error"] = {"literals": both, "present": bool(both)}
    ld = {"detected_literals": find(rb"LD_PRELOAD detected"), "rtld_default_literals": find(rb"RTLD_DEFAULT"),
          "ld_preload_getenv": {}}
    for name, elf, code in libs:
        n, places = literal_refs(elf, code, b"LD_PRELOAD")
        if n:
            ld["ld_preload_getenv"][name] = n
    ld["present"] = bool(ld["detected_literals"])
    ld["messages"] = find(rb"LD_PRELOAD")
    facts["ld_preload"] = ld
    err = find(rb"cannot be enabled with `expandable_segments`")
    warn = find(rb"is changed to `False` by default")
    if err and warn:
        mode = "error-if-explicit-else-warning"
    elif err:
        mode = "error"
    elif warn:
        mode = "warning-disables"
    else:
        mode = None
    facts["conflict"] = {"error_literals": err, "warning_literals": warn, "mode": mode}
    return facts


# ---------------------------------------------------------------- one wheel

def survey_wheel(whl):
    entry = {}
    with zipfile.ZipFile(whl) as z:
        names = z.namelist()
        meta = next((n for n in names if n.endswith(".dist-info/METADATA")), None)
        if meta:
            md = z.read(meta).decode("utf-8", "replace")
            head = md.split("\n\n", 1)[0]
            rd = [l.split(":", 1)[1].strip() for l in head.splitlines() if l.startswith("Requires-Dist:")]
            entry["requires_dist"] = rd
            tr = [r for r in rd if re.match(r"torch\b(?![-_])", r)]
            entry["requires_torch"] = tr[0] if tr else None
            rp = [l.split(":", 1)[1].strip() for l in head.splitlines() if l.startswith("Requires-Python:")]
            entry["requires_python"] = rp[0] if rp else None
        if "torch_npu/version.py" in names:
            vt = z.read("torch_npu/version.py").decode("utf-8", "replace")
            m = re.search(r"git_version\s*=\s*['\"]([^'\"]+)", vt)
            entry["git_version"] = m.group(1) if m else None
            m = re.search(r"__version__\s*=\s*['\"]([^'\"]+)", vt)
            entry["version_py"] = m.group(1) if m else None
        sos = sorted(n for n in names if re.search(r"\.so(\.\d+)*$", n))
        entry["shared_objects"] = sos
        libs = []
        main = None
        tmpd = tempfile.mkdtemp(prefix="torch-npu-so-")
        try:
            for n in sos:
                data = z.read(n)
                try:
                    elf = Elf(data)
                except ValueError:
                    continue
                # a library that may hold the parser: some "Unrecognized ..." text and the word allocator
                maybe = elf.machine == 62 and b"Unrecognized" in data and b"llocator" in data
                code = None
                if maybe:
                    p = os.path.join(tmpd, "lib.so")
                    with open(p, "wb") as fh:
                        fh.write(data)
                    res, elf, code, parser = analyse_library(p, data)
                    os.unlink(p)
                    if parser:
                        res["file"] = n
                        res["size"] = len(data)
                        if main is None:
                            main = res
                        else:
                            entry.setdefault("warnings", []).append(f"{n} also has an allocator parser (not used)")
                libs.append((n, elf, code if code else _light_code(elf)))
                del data
            if main is None:
                entry.setdefault("warnings", []).append("no library of the wheel has an allocator parser")
            entry["library"] = main
            entry["has_expandable_segments"] = bool(main and "expandable_segments" in (main.get("keys") or []))
            entry.update(other_facts(libs))
        finally:
            shutil.rmtree(tmpd, ignore_errors=True)
    return entry


class _LightCode:
    """lea index only (for small libraries where only literal references matter)."""

    def __init__(self, elf):
        self.elf = elf
        self.base, self.text = elf.sec(".text") if elf.has(".text") else (0, b"")
        self._lea = None

    lea_targets = Code.lea_targets

    def refs(self, va):
        return self.lea_targets().get(va, [])


def _light_code(elf):
    return _LightCode(elf) if elf.machine == 62 else None


# ---------------------------------------------------------------- output

def lines_summary(entries):
    by_line = {}
    for v in sorted(entries, key=version_key):
        by_line.setdefault(line_of(v), []).append(entries[v])
    out = []
    prev = None
    for ln in sorted(by_line, key=lambda s: tuple(int(x) for x in s.split("."))):
        es = [e for e in by_line[ln] if e.get("library") and e["library"].get("keys") is not None]
        if not es:
            out.append({"line": ln, "versions": [e["version"] for e in by_line[ln]], "keys_union": None})
            continue
        sets = [set(e["library"]["keys"]) for e in es]
        union, inter = set().union(*sets), set.intersection(*sets)
        finals = [e for e in es if not e.get("prerelease")]
        latest = (finals or es)[-1]

        def modes(f):
            return sorted({json.dumps(f(e)) for e in by_line[ln]})
        out.append({
            "line": ln,
            "versions": [e["version"] for e in by_line[ln]],
            "keys_union": sorted(union),
            "keys_in_every_version": sorted(inter),
            "keys_of_latest_final": sorted(latest["library"]["keys"]),
            "new_vs_previous_line": None if prev is None else sorted(union - prev),
            "gone_vs_previous_line": None if prev is None else sorted(prev - union),
            "keys_by_version_differ": len({tuple(sorted(s)) for s in sets}) > 1,
            "unknown_key_wording": sorted({(e["library"].get("unknown_key") or {}).get("wording") or "?"
                                           for e in es}),
            "generic_variable_loaded": [json.loads(x) for x in modes(
                lambda e: e.get("generic_variable", {}).get("loaded_by_code"))],
            "both_set_error": [json.loads(x) for x in modes(lambda e: e.get("both_set_error", {}).get("present"))],
            "ld_preload_detected": [json.loads(x) for x in modes(lambda e: e.get("ld_preload", {}).get("present"))],
            "conflict_mode": [json.loads(x) for x in modes(lambda e: e.get("conflict", {}).get("mode"))],
            "latest_final": latest["version"],
        })
        prev = union
    return out


def key_history(entries):
    """For each key: the first and last version (in version order) whose parser knows it, and the
    versions after the first that do not."""
    order = [v for v in sorted(entries, key=version_key)
             if entries[v].get("library") and entries[v]["library"].get("keys") is not None]
    out = {}
    for k in sorted({k for v in order for k in entries[v]["library"]["keys"]}):
        have = [v for v in order if k in entries[v]["library"]["keys"]]
        first = order.index(have[0])
        out[k] = {"first": have[0], "last": have[-1], "versions": len(have),
                  "missing_after_first": [v for v in order[first:] if k not in entries[v]["library"]["keys"]]}
    return out


def validate(entries, report=False):
    res = {}
    for v, spec in CROSS_CHECK.items():
        e = entries.get(v)
        if not e or not e.get("library") or e["library"].get("keys") is None:
            res[v] = {"checked": False}
            continue
        got = set(e["library"]["keys"])
        want = set(spec.get("exact") or spec.get("at_least"))
        r = {"checked": True, "kind": "exact" if "exact" in spec else "at_least",
             "missing": sorted(want - got), "found": len(got), "expected": len(want)}
        if "exact" in spec:
            r["extra"] = sorted(got - want)
            r["ok"] = not r["missing"] and not r["extra"]
        else:
            r["beyond_expected"] = sorted(got - want)
            r["ok"] = not r["missing"]
        res[v] = r
        if not report:
            continue
        if not r["ok"]:
            log(f"WARNING cross-check {v}: missing {r['missing']} extra {r.get('extra', [])}")
        else:
            log(f"cross-check {v}: ok ({r['kind']}, {len(got)} keys" +
                (f"; beyond the expected: {', '.join(r['beyond_expected'])}" if r.get("beyond_expected") else "") + ")")
    return res


def write_atomic(path, obj):
    d = os.path.dirname(os.path.abspath(path))
    os.makedirs(d, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".torch-npu-lines.", suffix=".tmp", dir=d)
    try:
        with os.fdopen(fd, "w") as fh:
            json.dump(obj, fh, indent=2, sort_keys=False, ensure_ascii=False)
            fh.write("\n")
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(tmp, 0o666 & ~umask)
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def document(entries, files, run, final=False):
    ordered = {v: entries[v] for v in sorted(entries, key=version_key)}
    return {
        "header": {
            "generator": GENERATOR,
            "analysis_revision": ANALYSIS,
            "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "source": "https://pypi.org/simple/torch-npu/ (via pip index / pip download)",
            "method": METHOD,
            "wheel_choice": "one x86_64 manylinux wheel per version, CPython preference " + ", ".join(PY_PREFERENCE),
            "versions_on_pypi": sorted(files, key=version_key),
            "versions_surveyed": len(ordered),
            "validation": validate(ordered, report=final),
            "key_history": key_history(ordered),
            "last_run": run,
        },
        "lines": lines_summary(ordered),
        "versions": list(ordered.values()),
    }


def main():
    # so that a `kill` still removes the temporary wheel and library (finally blocks)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--versions", help="comma-separated versions to survey (default: all on PyPI)")
    ap.add_argument("--out", default=DEFAULT_OUT)
    ap.add_argument("--refresh", action="store_true", help="redo entries already in the output file")
    ap.add_argument("--no-pre", action="store_true", help="skip pre-releases (rc)")
    ap.add_argument("--wheel", help="analyse this local wheel only and print its entry (no download, no output file)")
    args = ap.parse_args()
    if args.wheel:
        json.dump(survey_wheel(args.wheel), sys.stdout, indent=2, ensure_ascii=False)
        print()
        return 0
    out = os.path.normpath(args.out)

    entries = {}
    if os.path.exists(out):
        with open(out) as fh:
            old = json.load(fh)
        for e in old.get("versions", []):
            if e.get("analysis_revision") == ANALYSIS:
                entries[e["version"]] = e

    t0 = time.time()
    files = pypi_files()
    if not files:
        raise SystemExit("no torch-npu files found on the index")
    todo = sorted(files, key=version_key)
    if args.versions:
        want = [v.strip() for v in args.versions.split(",") if v.strip()]
        bad = [v for v in want if v not in files]
        if bad:
            raise SystemExit("not on PyPI: " + ", ".join(bad))
        todo = sorted(want, key=version_key)
    if args.no_pre:
        todo = [v for v in todo if not is_pre(v)]
    run = {"started": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "downloaded_wheels": 0, "downloaded_bytes": 0, "reused": 0, "failed": []}
    for v in todo:
        if v in entries and not args.refresh:
            run["reused"] += 1
            continue
        pys, plats = offered(files[v])
        choice = choose_wheel(files[v])
        base = {"version": v, "line": line_of(v), "prerelease": is_pre(v), "analysis_revision": ANALYSIS,
                "pypi_python_tags": pys, "pypi_platforms": plats}
        if not choice:
            entries[v] = dict(base, error="no x86_64 manylinux CPython wheel")
            continue
        tmp = tempfile.mkdtemp(prefix="torch-npu-whl-")
        t1 = time.time()
        try:
            whl = download(v, choice, tmp)
            size = os.path.getsize(whl)
            with open(whl, "rb") as fh:
                sha = hashlib.sha256(fh.read()).hexdigest()
            run["downloaded_wheels"] += 1
            run["downloaded_bytes"] += size
            t2 = time.time()
            e = survey_wheel(whl)
            e = dict(base, wheel={"file": os.path.basename(whl), "size": size, "sha256": sha}, **e)
            if os.path.basename(whl) != choice["file"]:
                e.setdefault("warnings", []).append(f"pip fetched {os.path.basename(whl)}, not {choice['file']}")
            entries[v] = e
            lib = e.get("library") or {}
            log(f"{v}: {len(lib.get('keys') or [])} keys, {size / 1e6:.1f} MB, download {t2 - t1:.1f}s, "
                f"analysis {time.time() - t2:.1f}s" + (f"; warnings: {lib.get('warnings')}" if lib.get("warnings")
                                                     else ""))
        except Exception as ex:  # keep going; the entry records why
            log(f"{v}: FAILED {ex}")
            run["failed"].append(v)
            entries.pop(v, None)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        run["seconds"] = round(time.time() - t0, 1)
        write_atomic(out, document(entries, files, run))
    run["seconds"] = round(time.time() - t0, 1)
    run["finished"] = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    write_atomic(out, document(entries, files, run, final=True))
    log(f"done: {run['downloaded_wheels']} wheels, {run['downloaded_bytes'] / 1e6:.1f} MB, "
        f"{run['reused']} reused, {len(run['failed'])} failed, {run['seconds']:.0f}s -> {out}")
    return 1 if run["failed"] else 0


if __name__ == "__main__":
    sys.exit(main())
