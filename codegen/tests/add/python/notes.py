#!/usr/bin/env python3
"""Summarises notes."""

from __future__ import annotations

import json


# The entry point.
def main() -> None:
    print(json.dumps({"ok": True}))


if __name__ == "__main__":
    main()
