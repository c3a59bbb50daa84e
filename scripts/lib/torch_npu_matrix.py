#!/usr/bin/env python3
"""Keeps the results of scripts/torch-npu-matrix.sh and renders their table.

    torch_npu_matrix.py record RESULTS LINE STATUS SECONDS TEST_LOG VALUE_RULES VENV_LOG NPU TORCH VALUES
    torch_npu_matrix.py render RESULTS MARKDOWN

`record` replaces LINE's entry in RESULTS (JSON, created when missing) with
what one run found: STATUS is "ran" or "not-hostable"; TEST_LOG is cargo's
output for the line_matrix tests, VALUE_RULES the value-rules-LINE.json the
value-rule check wrote, VENV_LOG the venv script's stderr (its last line is
the reason a line could not be hosted), NPU and TORCH the versions
installed ("" when none), VALUES the file that keeps every line's verdicts
(crates/common/data/torch-npu-values.json). `render` rewrites the part of
MARKDOWN between the matrix markers from RESULTS.
"""

import json
import pathlib
import re
import sys

BEGIN, END = "<!-- torch-npu-matrix: begin -->", "<!-- torch-npu-matrix: end -->"
# The checks, in the order of the table's columns (tests/real_clients/torch_npu.rs).
CHECKS = [
    ("default_config_runs_out_of_memory", "OOM without"),
    ("expandable_path_completes", "completes with"),
    ("recording_matches_runtime_through_oom", "recording = runtime"),
    ("conflicting_config_left_alone", "conflict left alone"),
    ("sleep_mode_left_alone", "sleep mode left alone"),
    ("refused_values_left_alone", "refused values unchanged"),
    ("report_and_diff_show_the_oom_and_its_absence", "report/diff"),
    ("the_librarys_writes_keep_the_real_parsers_verdict", "writes keep verdict"),
]


def line_key(name):
    return tuple(int(part) for part in name.split("."))


def read_tests(log):
    results, failures = {}, {}
    text = pathlib.Path(log).read_text(errors="replace") if log else ""
    for name, outcome in re.findall(r"test torch_npu::line_matrix::(\w+) \.\.\. (ok|FAILED)", text):
        results[name] = outcome
    for name, message in re.findall(
        r"thread 'torch_npu::line_matrix::(\w+)' \(\d+\) panicked at [^\n]*\n((?:[^\n]*\n){1,6})", text
    ):
        said = [l.strip() for l in message.splitlines() if l.strip() and not re.match(r"\d+: |at ", l.strip())]
        failures[name] = " ".join(said[:3])[:300]
    dump = re.search(r"memUsageInfo dump on out-of-memory: (true|false)", text)
    return results, failures, dump.group(1) == "true" if dump else None


def read_rules(path):
    if not path or not pathlib.Path(path).exists():
        return None
    rows = json.loads(pathlib.Path(path).read_text())
    accepted = sum(1 for r in rows if r["verdict"] == "accepted")
    written = [r for r in rows if r["written"]]
    return {
        "probed": len(rows),
        "accepted": accepted,
        "written": len(written),
        "written_accepted": sum(1 for r in written if r["verdict"] == "accepted"),
        "accepted_keys": sorted({r["value"].split(":")[0] for r in rows if r["verdict"] == "accepted"}),
    }


def record_verdicts(values_path, line, rules, npu):
    """Keeps every verdict of LINE's parser (value -> "accepted" or its
    error) in VALUES, the data crates/common's tests hold the value rules to."""
    path = pathlib.Path(values_path)
    data = json.loads(path.read_text()) if path.exists() else {"lines": {}}
    if not rules or not pathlib.Path(rules).exists():
        data["lines"].pop(line, None)
    else:
        rows = json.loads(pathlib.Path(rules).read_text())
        data["lines"][line] = {"torch_npu": npu, "verdicts": {r["value"]: r["verdict"] for r in rows}}
    path.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")


def record(results_path, line, status, seconds, test_log=None, rules=None, venv_log=None, npu=None, torch=None,
           values_path=None):
    path = pathlib.Path(results_path)
    results = json.loads(path.read_text()) if path.exists() else {"lines": {}}
    entry = {"status": status, "seconds": int(float(seconds))}
    if venv_log and pathlib.Path(venv_log).exists():
        lines = [l for l in pathlib.Path(venv_log).read_text(errors="replace").splitlines() if l.strip()]
        if status != "ran":
            entry["reason"] = lines[-1][:300] if lines else "the venv script failed without a message"
    if npu:
        entry["torch_npu"] = npu
    if torch:
        entry["torch"] = torch
    if status == "ran":
        tests, failures, dump = read_tests(test_log)
        entry["checks"] = tests
        entry["failures"] = failures
        entry["oom_dump"] = dump
        entry["value_rules"] = read_rules(rules)
    if values_path:
        record_verdicts(values_path, line, rules if status == "ran" else None, npu)
    results["lines"][line] = entry
    path.write_text(json.dumps(results, indent=1, sort_keys=True) + "\n")


def render(results_path, markdown_path):
    results = json.loads(pathlib.Path(results_path).read_text())
    header = ["line", "torch_npu", "torch"] + [title for _, title in CHECKS] + ["values accepted / written", "minutes"]
    rows = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    notes = []
    for line in sorted(results["lines"], key=line_key):
        entry = results["lines"][line]
        cells = [line, entry.get("torch_npu", "-"), entry.get("torch", "-")]
        if entry["status"] != "ran":
            cells += ["not hosted"] + [""] * (len(CHECKS) - 1) + ["", str(round(entry["seconds"] / 60, 1))]
            notes.append(f"- {line}: {entry.get('reason', entry['status'])}")
        else:
            for name, _ in CHECKS:
                outcome = entry["checks"].get(name)
                cells.append({"ok": "yes", "FAILED": "**failed**", None: "-"}[outcome])
                if outcome == "FAILED":
                    notes.append(f"- {line}, {name}: {entry['failures'].get(name, '(see the log)')}")
            rules = entry.get("value_rules")
            cells.append(f"{rules['accepted']} of {rules['probed']} / {rules['written']}" if rules else "-")
            cells.append(str(round(entry["seconds"] / 60, 1)))
        rows.append("| " + " | ".join(cells) + " |")
    body = "\n".join(rows) + "\n"
    if notes:
        body += "\nNot hosted, or failed:\n\n" + "\n".join(notes) + "\n"
    text = pathlib.Path(markdown_path).read_text()
    start, end = text.index(BEGIN) + len(BEGIN), text.index(END)
    pathlib.Path(markdown_path).write_text(text[:start] + "\n" + body + text[end:])


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    if command == "record":
        record(*args)
    elif command == "render":
        render(*args)
    else:
        sys.exit(__doc__)
