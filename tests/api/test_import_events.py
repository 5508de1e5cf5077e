"""import_events FILE: the same ingestion as the API, from CSV or JSONL."""

import json
from datetime import UTC, datetime

import pytest
import time_machine
from django.core.management import call_command
from django.core.management.base import CommandError

from customers.models import Customer, Event

NOW = datetime(2025, 6, 10, 10, 0, tzinfo=UTC)


@pytest.fixture(autouse=True)
def frozen_clock():
    with time_machine.travel(NOW, tick=False):
        yield


def _jsonl(tmp_path, events, name="events.jsonl"):
    path = tmp_path / name
    path.write_text(
        "\n".join(json.dumps(e) if not isinstance(e, str) else e for e in events) + "\n", encoding="utf-8"
    )
    return path


def _event(n, **changes):
    return {
        "id": f"e-{n}",
        "customer": f"c-{n % 3}",
        "type": "order_created",
        "occurred_at": "2025-06-01T10:00:00Z",
        "payload": {"n": n},
        **changes,
    }


@pytest.mark.django_db
def test_it_imports_jsonl_in_chunks_and_is_idempotent(tmp_path, capsys):
    path = _jsonl(tmp_path, [_event(n) for n in range(25)] + [""])
    call_command("import_events", str(path), "--chunk-size", "10")
    out = capsys.readouterr()
    assert out.out.strip() == "accepted 25, duplicates 0"
    assert "25/" in out.err  # the progress bar, on stderr
    assert Event.objects.filter(type="order_created").count() == 25
    assert Customer.objects.count() == 3
    call_command("import_events", str(path), "--no-progress")
    assert capsys.readouterr().out.strip() == "accepted 0, duplicates 25"


@pytest.mark.django_db
def test_it_imports_csv_with_payload_columns(tmp_path, capsys):
    path = tmp_path / "events.csv"
    path.write_text(
        "id,customer,type,occurred_at,payload,payload.coupon\n"
        'e-1,c-1,order_created,2025-06-01T10:00:00+02:00,"{""total"": 59.9}",SUMMER\n'
        "e-2,c-2,visit,2025-06-01T11:00:00Z,,\n",
        encoding="utf-8",
    )
    call_command("import_events", str(path), "--no-progress")
    assert capsys.readouterr().out.strip() == "accepted 2, duplicates 0"
    first = Event.objects.get(external_id="e-1")
    assert first.payload == {"total": 59.9, "coupon": "SUMMER"}
    assert first.occurred_at == datetime(2025, 6, 1, 8, 0, tzinfo=UTC)
    assert Event.objects.get(external_id="e-2").payload == {}


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("lines", "expected"),
    [
        ([_event(1), _event(2, occurred_at="2025-06-01T10:00:00")], "line 2: occurred_at: has no UTC offset"),
        ([_event(1), "{broken"], "line 2: not JSON"),
        ([_event(1), "[1, 2]"], "line 2: expected a JSON object"),
        ([_event(1), _event(2, type="")], "line 2: type: must not be empty"),
        # Text no database can store: were DataErrors with a traceback.
        ([_event(1), _event(2, customer="c\ud800")], "line 2: customer: contains a lone UTF-16 surrogate"),
        (
            [_event(1), _event(2, payload={"note": "a\x00"})],
            "line 2: payload.note: contains the NUL character",
        ),
    ],
)
def test_it_stops_with_one_line_naming_the_bad_line(tmp_path, lines, expected):
    path = _jsonl(tmp_path, lines)
    with pytest.raises(CommandError) as error:
        call_command("import_events", str(path), "--no-progress")
    assert expected in str(error.value)
    assert "\n" not in str(error.value)
    assert not Event.objects.filter(type="order_created").exists()


@pytest.mark.django_db
def test_it_keeps_the_chunks_before_a_bad_line(tmp_path):
    path = _jsonl(tmp_path, [_event(n) for n in range(4)] + [_event(9, payload=[1])])
    with pytest.raises(CommandError, match="line 5: payload.*4 events before it were imported"):
        call_command("import_events", str(path), "--no-progress", "--chunk-size", "2")
    assert Event.objects.filter(type="order_created").count() == 4


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("", "empty file"),
        ("id,customer,type\n", "no occurred_at column"),
        ("id,customer,type,occurred_at,colour\n", "unknown columns"),
        ("id,customer,type,occurred_at\ne-1,c-1\n", "line 2: 2 cells"),
        (
            'id,customer,type,occurred_at,payload\ne-1,c,t,2025-06-01T10:00:00Z,"[1]"\n',
            "line 2: payload: must be a JSON object",
        ),
    ],
)
def test_it_refuses_a_bad_csv(tmp_path, content, expected):
    path = tmp_path / "events.csv"
    path.write_text(content, encoding="utf-8")
    with pytest.raises(CommandError, match=expected):
        call_command("import_events", str(path), "--no-progress")


@pytest.mark.django_db
def test_it_refuses_bad_arguments(tmp_path):
    with pytest.raises(CommandError, match="no such file"):
        call_command("import_events", str(tmp_path / "none.jsonl"))
    other = tmp_path / "events.txt"
    other.write_text("x", encoding="utf-8")
    with pytest.raises(CommandError, match="unknown extension"):
        call_command("import_events", str(other))
    with pytest.raises(CommandError, match="chunk-size"):
        call_command("import_events", str(other), "--chunk-size", "1001")
    binary = tmp_path / "events.jsonl"
    binary.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(CommandError, match="UTF-8"):
        call_command("import_events", str(binary), "--no-progress")
