"""The flow document `maestra.flow/1` (SPEC §11): the one format for import,
export, the API and storage.

- format.py: parse (a malformed document is refused), dump, and the reading
  of settings and graph rows with defaults applied;
- fields.py: the small value formats (durations, zones, datetimes, port
  names, weekdays) that the node kinds judge their configs with;
- validate.py: the semantic validation of a well-formed document, asking each
  node kind (flows/nodes/) to judge its config.

This package root re-exports format and fields only. validate sits above the
node kinds (it asks them), and the node kinds sit above format and fields
(they use them): re-exporting validate here would put the node kinds under
the very package they import, an import circle. Import it as
`flows.document.validate`.
"""

from flows.document.fields import (
    LAUNCH_LIMIT_MODES,
    MAX_PORT_LENGTH,
    WEEKDAYS,
    datetime_problem,
    duration_problem,
    is_int,
    port_name_problem,
    timezone_names,
    timezone_problem,
)
from flows.document.format import (
    DEFAULT_LAUNCH_LIMIT_MODE,
    DEFAULT_TIMEZONE,
    FORMAT,
    KEY_PATTERN,
    MAX_KEY_LENGTH,
    MAX_KIND_LENGTH,
    MAX_NAME_LENGTH,
    MAX_TITLE_LENGTH,
    FlowSettings,
    document_settings,
    dump_document,
    graph_rows,
    parse_document,
)
from flows.errors import DocumentError

__all__ = [
    "DEFAULT_LAUNCH_LIMIT_MODE",
    "DEFAULT_TIMEZONE",
    "FORMAT",
    "KEY_PATTERN",
    "LAUNCH_LIMIT_MODES",
    "MAX_KEY_LENGTH",
    "MAX_KIND_LENGTH",
    "MAX_NAME_LENGTH",
    "MAX_PORT_LENGTH",
    "MAX_TITLE_LENGTH",
    "WEEKDAYS",
    "DocumentError",
    "FlowSettings",
    "datetime_problem",
    "document_settings",
    "dump_document",
    "duration_problem",
    "graph_rows",
    "is_int",
    "parse_document",
    "port_name_problem",
    "timezone_names",
    "timezone_problem",
]
