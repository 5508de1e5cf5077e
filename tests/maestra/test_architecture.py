"""The architecture checks scripts/test.sh runs before pytest: the import
contracts of .importlinter and the module-size report."""

import importlib.util
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_size_check():
    spec = importlib.util.spec_from_file_location(
        "check_module_size", ROOT / "scripts" / "check_module_size.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_import_contracts_are_kept():
    done = subprocess.run(
        [str(ROOT / ".venv" / "bin" / "lint-imports"), "--no-cache", "--no-logo"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout[-3000:]
    assert "0 broken" in done.stdout


def test_the_size_check_lists_long_modules_and_fails_only_when_enforcing(tmp_path, monkeypatch, capsys):
    check = load_size_check()
    (tmp_path / "flows" / "migrations").mkdir(parents=True)
    (tmp_path / "flows" / "big.py").write_text("x = 1\n" * (check.MAX + 1))
    (tmp_path / "flows" / "fine.py").write_text("x = 1\n" * check.MAX)
    (tmp_path / "flows" / "migrations" / "0001_initial.py").write_text("x = 1\n" * 5000)
    monkeypatch.setattr(check, "ROOT", tmp_path)

    assert check.main(["--report"]) == 0
    assert check.main([]) == 1
    out = capsys.readouterr().out
    assert f"flows/big.py: {check.MAX + 1} lines" in out
    assert "fine.py" not in out and "migrations" not in out

    (tmp_path / "flows" / "big.py").unlink()
    assert check.main([]) == 0


def test_no_product_module_is_over_the_limit():
    # Enforced since issue 12: a module that grows past MAX is split by concern.
    assert load_size_check().long_modules() == []
