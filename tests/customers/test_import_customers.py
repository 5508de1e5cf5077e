import io
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from customers.models import Customer, Event, PromoCode, Subscription

pytestmark = pytest.mark.django_db


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


CSV = """external_id,email,phone,first_name,last_name,timezone,tier,subscriptions.email
u1,ann@example.com,+4930,Ann,Lee,Europe/Berlin,gold,subscribed
u2,,,"Bob, Jr.",,,,
"""


def test_it_imports_a_csv_file(tmp_path):
    out, err = run("import_customers", str(write(tmp_path, "people.csv", CSV)))
    assert out.strip() == "created 2, updated 0, unchanged 0"
    ann = Customer.objects.get(external_id="u1")
    assert (ann.email, ann.phone, ann.first_name, ann.last_name, ann.timezone) == (
        "ann@example.com",
        "+4930",
        "Ann",
        "Lee",
        "Europe/Berlin",
    )
    assert ann.fields == {"tier": "gold"}
    assert Subscription.objects.get(customer=ann).status == "subscribed"
    assert Event.objects.get(type="subscription_changed").payload == {
        "channel": "email",
        "old": None,
        "new": "subscribed",
        "source": "import",
    }
    bob = Customer.objects.get(external_id="u2")
    assert (bob.first_name, bob.email, bob.fields) == ("Bob, Jr.", "", {})
    assert Event.objects.filter(type="customer_created").count() == 2
    assert "rows" in err  # the progress bar went to stderr


def test_empty_csv_cells_leave_attributes_alone_and_reimport_is_a_no_op(tmp_path):
    path = write(tmp_path, "people.csv", CSV)
    run("import_customers", str(path))
    out, _ = run("import_customers", str(path), "--no-progress")
    assert out.strip() == "created 0, updated 0, unchanged 2"
    update = write(
        tmp_path, "update.csv", "external_id,email,tier,points\nu1,,silver,12\nu3,c@example.com,,\n"
    )
    out, _ = run("import_customers", str(update), "--no-progress")
    assert out.strip() == "created 1, updated 1, unchanged 0"
    ann = Customer.objects.get(external_id="u1")
    assert ann.email == "ann@example.com"
    assert ann.fields == {"tier": "silver", "points": "12"}


def test_it_imports_a_jsonl_file_in_chunks(tmp_path):
    lines = [
        json.dumps(
            {
                "external_id": f"j{i}",
                "fields": {"n": i, "vip": i % 2 == 0},
                "subscriptions": {"sms": "subscribed"},
            }
        )
        for i in range(7)
    ]
    path = write(tmp_path, "people.jsonl", "\n".join(lines[:3]) + "\n\n" + "\n".join(lines[3:]) + "\n")
    out, _ = run("import_customers", str(path), "--chunk-size", "3", "--no-progress")
    assert out.strip() == "created 7, updated 0, unchanged 0"
    assert Customer.objects.get(external_id="j4").fields == {"n": 4, "vip": True}
    assert Subscription.objects.filter(channel="sms", status="subscribed").count() == 7


@pytest.mark.parametrize(
    ("name", "text", "expected"),
    [
        ("people.csv", "", "line 1: empty file"),
        ("people.csv", "email\na@example.com\n", "line 1: the header has no external_id column"),
        ("people.csv", "external_id,tier,tier\nu1,a,b\n", "line 1: the header repeats"),
        (
            "people.csv",
            "external_id,email\nu1,a@example.com,extra\n",
            "line 2: 3 cells where the header has 2",
        ),
        ("people.csv", "external_id,email\nu1,a@example.com\nu2,not-an-email\n", "line 3: email:"),
        (
            "people.csv",
            "external_id,subscriptions.fax\nu1,subscribed\n",
            "line 2: subscriptions.fax: unknown channel",
        ),
        ("people.jsonl", '{"external_id": "u1"}\n{"external_id": \n', "line 2: not JSON"),
        ("people.jsonl", '{"external_id": "u1"}\n\n[1, 2]\n', "line 3: expected a JSON object"),
        (
            "people.jsonl",
            '{"external_id": "u1"}\n{"external_id": "u2", "timezone": "Mars"}\n',
            "line 2: timezone:",
        ),
        # A lone surrogate could not be stored: was a DataError with a traceback.
        (
            "people.jsonl",
            '{"external_id": "u1"}\n{"external_id": "u2", "fields": {"a": "\\ud800"}}\n',
            "line 2: fields.a: contains a lone UTF-16 surrogate",
        ),
        ("people.xlsx", "external_id\nu1\n", "unknown extension '.xlsx'"),
    ],
)
def test_it_stops_on_a_bad_file_with_one_line(tmp_path, name, text, expected):
    path = write(tmp_path, name, text)
    with pytest.raises(CommandError) as raised:
        run("import_customers", str(path), "--no-progress")
    message = str(raised.value)
    assert expected in message
    assert "\n" not in message
    assert not Customer.objects.exists()


def test_a_bad_row_keeps_the_chunks_before_it(tmp_path):
    rows = "".join(f"u{i},u{i}@example.com\n" for i in range(5)) + "bad,oops\n"
    path = write(tmp_path, "people.csv", "external_id,email\n" + rows)
    with pytest.raises(CommandError) as raised:
        run("import_customers", str(path), "--chunk-size", "2", "--no-progress")
    assert "line 7: email:" in str(raised.value)
    assert "(4 rows before it were imported)" in str(raised.value)
    # chunks [u0,u1], [u2,u3] written; [u4,bad] not
    assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["u0", "u1", "u2", "u3"]


def test_a_parse_error_keeps_the_chunks_before_it(tmp_path):
    lines = "".join(json.dumps({"external_id": f"u{i}"}) + "\n" for i in range(3)) + "{broken\n"
    path = write(tmp_path, "people.jsonl", lines)
    with pytest.raises(CommandError) as raised:
        run("import_customers", str(path), "--chunk-size", "2", "--no-progress")
    assert "line 4: not JSON" in str(raised.value)
    assert sorted(Customer.objects.values_list("external_id", flat=True)) == ["u0", "u1"]


def test_it_refuses_a_missing_file_and_a_bad_chunk_size(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        run("import_customers", str(tmp_path / "nope.csv"))
    with pytest.raises(CommandError, match="--chunk-size"):
        run("import_customers", str(write(tmp_path, "a.csv", "external_id\n")), "--chunk-size", "0")


def test_it_refuses_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "people.csv"
    path.write_bytes("external_id,first_name\nu1,Jos\u00e9\n".encode("latin-1"))
    with pytest.raises(CommandError, match="not UTF-8"):
        run("import_customers", str(path), "--no-progress")


def test_the_command_exits_non_zero_with_one_line(tmp_path):
    env = {**os.environ, "SECRET_KEY": "test", "DEBUG": "1"}
    done = subprocess.run(
        [sys.executable, "manage.py", "import_customers", str(tmp_path / "missing.csv")],
        cwd=settings.BASE_DIR,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == [f"CommandError: {tmp_path / 'missing.csv'}: no such file"]


# --- load_codes ---------------------------------------------------------------


def test_it_loads_promo_codes(tmp_path, make_pool):
    make_pool("welcome")
    path = write(tmp_path, "codes.txt", "A1\nA2\n\nA1\nA3\n")
    out, _ = run("load_codes", "welcome", str(path), "--chunk-size", "2", "--no-progress")
    assert out.strip() == "added 3, duplicates 1"
    assert sorted(PromoCode.objects.values_list("code", flat=True)) == ["A1", "A2", "A3"]


def test_it_refuses_codes_for_an_unknown_pool_or_bad_lines(tmp_path, make_pool):
    with pytest.raises(CommandError, match="promo pool 'ghost' does not exist"):
        run("load_codes", "ghost", str(write(tmp_path, "codes.txt", "A\n")), "--no-progress")
    make_pool("welcome")
    with pytest.raises(CommandError, match="line 3: must be at most 100 characters"):
        run(
            "load_codes",
            "welcome",
            str(write(tmp_path, "long.txt", "A\n\n" + "x" * 101 + "\n")),
            "--no-progress",
        )
    assert not PromoCode.objects.exists()
