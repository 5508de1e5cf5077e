"""Product modules longer than MAX lines (migrations aside). Exits 1 when
there is one, unless --report is given: then it only lists them.
scripts/test.sh (so CI) runs it enforcing."""

import pathlib
import sys

MAX = 600
APPS = ("maestra", "customers", "channels", "flows")
ROOT = pathlib.Path(__file__).resolve().parent.parent


def long_modules() -> list[tuple[int, str]]:
    found = []
    for app in APPS:
        for path in (ROOT / app).rglob("*.py"):
            if "migrations" in path.parts:
                continue
            lines = len(path.read_text(encoding="utf-8").splitlines())
            if lines > MAX:
                found.append((lines, str(path.relative_to(ROOT))))
    return sorted(found, reverse=True)


def main(argv: list[str]) -> int:
    found = long_modules()
    for lines, path in found:
        print(f"{path}: {lines} lines (max {MAX})")
    if found and "--report" in argv:
        print(f"{len(found)} module(s) over {MAX} lines (report only)")
        return 0
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
