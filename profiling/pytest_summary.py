"""Summarise a `pytest -v` log (with or without pytest-xdist's -n): outcome counts and the failed tests.

Usage: python profiling/pytest_summary.py LOG [--exit-status RC] [--time-limit SECONDS]

Prints how far the run got (items reported of those collected), pytest's own
summary line where the run reached it, the count of each outcome, then every
distinct test that failed or errored, one id a line, sorted. It reads the
per-test outcome lines `-v` writes as each test ends, so a log cut off by a
time limit (exit status 124 from `timeout`) still gives every failure reported
before the cut. profiling/gpu_check.sh's "tests" group writes its pytest.txt
with it; run it by hand on a pytest_full.log a cut-off call left behind.
Exits 0 after summarising, 2 if LOG cannot be read or holds no pytest run.
"""
import argparse
import re
import sys

OUTCOMES = ("PASSED", "FAILED", "ERROR", "SKIPPED", "XFAIL", "XPASS")
_OUTCOME = "|".join(OUTCOMES)
# pytest-xdist: "[gw3] [ 12%] PASSED tests/test_a.py::test_b[x y]"
_XDIST_LINE = re.compile(rf"^\[gw\d+\] \[\s*\d+%\] ({_OUTCOME}) (\S.*?)\s*$")
# pytest alone: "tests/test_a.py::test_b[x y] SKIPPED (reason)     [ 12%]"
_PLAIN_LINE = re.compile(rf"^(\S+::\S.*?) ({_OUTCOME})(?: \(.*\))?\s+\[\s*\d+%\]\s*$")
_COLLECTED = re.compile(r"^(?:collecting \.\.\. )?collected (\d+) items?|^\d+ workers? \[(\d+) items?\]")
# A file that failed to import: its header in the ERRORS section, or its line in the short summary.
_COLLECTION_ERROR = re.compile(r"^_+ ERROR collecting (\S+) _+$|^ERROR (\S+\.py)(?: - .*)?$")
_FINAL = re.compile(r"^=+ (.*\b(?:passed|failed|error|errors|skipped|xfailed|xpassed|deselected|no tests ran)\b"
                    r".* in [\d.]+s.*) =+$")


def summarise(lines):
    """Parse a -v log's lines: (items collected or None, outcome -> report count,
    tests that failed or errored, ids reported, pytest's final summary line or None)."""
    collected, final = None, None
    counts = dict.fromkeys(OUTCOMES, 0)
    bad, seen = set(), set()
    for raw in lines:
        line = raw.rstrip("\n")
        match = _XDIST_LINE.match(line)
        if match:
            outcome, test = match.groups()
        else:
            match = _PLAIN_LINE.match(line)
            if match:
                test, outcome = match.groups()
        if match:
            counts[outcome] += 1
            seen.add(test)
            if outcome in ("FAILED", "ERROR"):
                bad.add(test)
            continue
        match = _COLLECTED.match(line)
        if match:
            collected = int(match.group(1) or match.group(2))
            continue
        match = _COLLECTION_ERROR.match(line)
        if match:
            bad.add(f"{match.group(1) or match.group(2)} (collection error)")
            continue
        match = _FINAL.match(line)
        if match:
            final = match.group(1)
    return collected, counts, sorted(bad), seen, final


def report(lines, exit_status=None, time_limit=None):
    """The summary's text lines for a -v log's lines."""
    collected, counts, bad, seen, final = summarise(lines)
    out = []
    if collected is not None and collected > 0:
        out.append(f"items reported: {len(seen)} of {collected} ({100 * len(seen) // collected}%)")
    else:
        out.append(f"items reported: {len(seen)} (no count of collected items in the log)")
    if final is not None:
        out.append(f"pytest's summary: {final}")
    else:
        why = "the log ends"
        if exit_status == 124:
            why = f"the run was stopped by its time limit{f' of {time_limit} s' if time_limit else ''}"
        elif exit_status is not None:
            why = f"the run ended with exit status {exit_status}"
        out.append(f"no pytest summary: {why} before pytest's summary")
    reports = ", ".join(f"{name} {counts[name]}" for name in OUTCOMES if counts[name])
    out.append(f"outcomes reported: {reports or 'none'}")
    out.append(f"failed or errored tests ({len(bad)}):")
    out.extend(bad)
    return out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("log", help="the output of `pytest -v` (with or without -n)")
    parser.add_argument("--exit-status", type=int, help="pytest's exit status (124: stopped by `timeout`)")
    parser.add_argument("--time-limit", type=int, help="the time limit in seconds the run had, for the report")
    args = parser.parse_args(argv)
    try:
        with open(args.log, encoding="utf-8", errors="replace") as f:
            lines = f.readlines()
    except OSError as e:
        print(f"pytest_summary: cannot read the log {args.log!r}: {e.strerror}", file=sys.stderr)
        return 2
    if not any(line.startswith(("=", "collect")) or _XDIST_LINE.match(line) or _PLAIN_LINE.match(line)
               for line in lines):
        print(f"pytest_summary: {args.log!r} holds no pytest run (no session header, collection or outcome line)",
              file=sys.stderr)
        print(f"pytest_summary: it ends with: {''.join(lines[-5:]).strip() or '(empty file)'}", file=sys.stderr)
        return 2
    print("\n".join(report(lines, args.exit_status, args.time_limit)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
