"""import_flow and export_flow: export ∘ import = identity, --launch without a
cluster, and one-line refusals of bad input."""

import io
import json
import subprocess
import sys
from pathlib import Path

import pytest
from django.conf import settings
from django.core.management import CommandError, call_command

from flows import lifecycle
from flows.models import Flow

from .conftest import SPEC_EXAMPLE

S = Flow.Status


def run(*args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(*args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


def refused(*args: str) -> tuple[str, str]:
    """The CommandError's one-line reason and what went to stderr before it."""
    err = io.StringIO()
    with pytest.raises(CommandError) as refusal:
        call_command(*args, stdout=io.StringIO(), stderr=err)
    reason = str(refusal.value)
    assert reason and "\n" not in reason
    return reason, err.getvalue()


def with_order(text: str):
    """The JSON value with every object as its list of (key, value) pairs, so
    two documents compare equal only if their keys come in the same order."""
    return json.loads(text, object_pairs_hook=list)


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return str(path)


@pytest.mark.django_db
def test_it_imports_a_document_and_prints_the_id_last(templates):
    out, err = run("import_flow", str(SPEC_EXAMPLE))

    flow = Flow.objects.get()
    assert out.splitlines()[-1] == str(flow.pk)
    assert (flow.name, flow.status) == ("Subscription confirmation", S.READY)
    assert err == ""


@pytest.mark.django_db
def test_it_exports_exactly_the_imported_document(templates):
    out, _err = run("import_flow", str(SPEC_EXAMPLE))
    flow_id = out.splitlines()[-1]

    exported, _err = run("export_flow", flow_id, "--version", "draft")

    original = SPEC_EXAMPLE.read_text(encoding="utf-8")
    assert json.loads(exported) == json.loads(original)
    assert with_order(exported) == with_order(original)
    assert exported.startswith('{\n  "format": "maestra.flow/1",\n  "name": "Subscription confirmation"')


@pytest.mark.django_db
def test_it_imports_and_launches_in_process(templates):
    out, _err = run("import_flow", str(SPEC_EXAMPLE), "--launch")

    flow = Flow.objects.get(pk=int(out.splitlines()[-1]))
    assert flow.status == S.ACTIVE
    assert (flow.live_version.number, flow.live_version.state) == (1, "launched")
    assert flow.draft is None
    exported, _err = run("export_flow", str(flow.pk))
    assert with_order(exported) == with_order(SPEC_EXAMPLE.read_text(encoding="utf-8"))


@pytest.mark.django_db
def test_it_reads_the_document_from_stdin(templates, monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(SPEC_EXAMPLE.read_text(encoding="utf-8")))

    out, _err = run("import_flow", "-")

    assert Flow.objects.get().pk == int(out.splitlines()[-1])


@pytest.mark.django_db
def test_it_imports_an_invalid_document_as_a_draft_and_lists_its_errors(
    tmp_path, invalid_document, templates
):
    path = write(tmp_path, "invalid.json", json.dumps(invalid_document))

    out, err = run("import_flow", path)

    flow = Flow.objects.get(pk=int(out.splitlines()[-1]))
    assert flow.status == S.DRAFT
    assert err.splitlines() == [f"ask.steps.0.template: {flow.draft.errors[0]['message']}"]


@pytest.mark.django_db
def test_it_exports_a_numbered_version(flow_in, spec_document):
    flow = flow_in(S.ACTIVE)
    spec_document["name"] = "Version two"
    lifecycle.save_draft(flow=flow, document=spec_document)

    one, _err = run("export_flow", str(flow.pk), "--version", "1")
    two, _err = run("export_flow", str(flow.pk), "--version", "2")

    assert json.loads(one)["name"] == "Subscription confirmation"
    assert json.loads(two)["name"] == "Version two"


# --- bad input ---------------------------------------------------------------


@pytest.mark.django_db
def test_it_refuses_a_missing_file(tmp_path):
    reason, _err = refused("import_flow", str(tmp_path / "nope.json"))

    assert reason == f"Cannot read {tmp_path / 'nope.json'}: No such file or directory"
    assert not Flow.objects.exists()


@pytest.mark.django_db
@pytest.mark.parametrize("text", ["", "{oops", '{"format": "maestra.flow/1",}', "NaN"])
def test_it_refuses_a_file_that_is_not_json(tmp_path, text):
    reason, _err = refused("import_flow", write(tmp_path, "bad.json", text))

    assert "is not JSON" in reason
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_it_accepts_a_file_starting_with_a_byte_order_mark(tmp_path, templates):
    path = write(tmp_path, "bom.json", "\ufeff" + SPEC_EXAMPLE.read_text(encoding="utf-8"))

    out, _err = run("import_flow", path)

    assert Flow.objects.get().pk == int(out.splitlines()[-1])


@pytest.mark.django_db
def test_it_refuses_a_file_that_is_not_utf8(tmp_path):
    path = tmp_path / "latin1.json"
    path.write_bytes('{"name": "Caf\u00e9"}'.encode("latin-1"))

    reason, _err = refused("import_flow", str(path))

    assert reason.endswith("is not UTF-8 text")


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("document", "expected_stderr"),
    [
        ([], "a flow document must be a JSON object"),
        ({"format": "maestra.flow/9", "name": "x"}, "format: unknown format"),
        ({"format": "maestra.flow/1", "name": "x", "nodes": [{"kind": "wait"}]}, "nodes.0.key: missing"),
    ],
)
def test_it_refuses_a_malformed_document_listing_the_problems(tmp_path, document, expected_stderr):
    reason, err = refused("import_flow", write(tmp_path, "malformed.json", json.dumps(document)), "--launch")

    assert "is not a valid flow document" in reason
    assert expected_stderr in err
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_it_refuses_to_launch_an_invalid_document_and_keeps_nothing(tmp_path, templates, invalid_document):
    reason, err = refused(
        "import_flow", write(tmp_path, "invalid.json", json.dumps(invalid_document)), "--launch"
    )

    assert reason == "Not imported: The draft has 1 error and cannot be launched"
    assert err.startswith("ask.steps.0.template: ")
    assert len(err.splitlines()) == 1
    assert not Flow.objects.exists()


@pytest.mark.django_db
def test_it_refuses_unknown_flows_and_versions(flow_in):
    ready = flow_in(S.READY)

    assert refused("export_flow", "999999")[0] == "Flow 999999 does not exist"
    assert refused("export_flow", "abc")[0] == "FLOW must be a flow id (a number), not 'abc'"
    assert refused("export_flow", str(ready.pk))[0] == f"Flow {ready.pk} has no live version"
    assert refused("export_flow", str(ready.pk), "--version", "7")[0] == f"Flow {ready.pk} has no version 7"
    assert (
        "use live, draft or a version number"
        in refused("export_flow", str(ready.pk), "--version", "newest")[0]
    )


@pytest.mark.slow
def test_it_exits_non_zero_with_one_line_from_the_shell(tmp_path):
    manage = Path(settings.BASE_DIR) / "manage.py"
    for args in (
        ["import_flow", str(tmp_path / "nope.json")],
        ["import_flow", write(tmp_path, "x.json", "{x")],
    ):
        done = subprocess.run(
            [sys.executable, str(manage), *args], capture_output=True, text=True, timeout=60, check=False
        )
        assert done.returncode == 1
        assert len(done.stderr.strip().splitlines()) == 1, done.stderr
        assert done.stderr.startswith("CommandError: ")
