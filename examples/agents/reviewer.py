"""The reviewer agent's implementation: reads a diff and reports findings.

Run it with `symbiont run examples/agents/reviewer.sym --input '{"target": "change.diff"}'`:
the diff is read from the agent's workspace through the broker, never from the host directly.
"""

import json

import symbiont


def review(target: str, diff: str) -> dict:
    findings = [
        {"file": target, "line": number, "severity": "warning", "message": "TODO left in code"}
        for number, line in enumerate(diff.splitlines(), start=1)
        if "TODO" in line
    ]
    return {"findings": findings, "verdict": "approve" if not findings else "changes_requested"}


if __name__ == "__main__":
    target = (symbiont.input() or {}).get("target", "change.diff")
    print(json.dumps(review(target, symbiont.fs.read(target)), indent=2))
