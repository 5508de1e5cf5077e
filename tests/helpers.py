"""Assertions shared by test packages."""


def assert_json_errors(response, code: int) -> list[dict]:
    """The response is the JSON error contract with status `code`; its errors."""
    assert response.status_code == code, response.content[:500]
    assert response["Content-Type"] == "application/json"
    errors = response.json()["errors"]
    assert errors and all({"field", "message"} <= set(item) for item in errors)
    return errors
