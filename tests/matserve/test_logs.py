import json
import logging

from matserve.logs import JsonFormatter


def test_log_lines_are_json_with_request_fields():
    record = logging.LogRecord("matserve.access", logging.INFO, __file__, 1, "GET %s %d", ("/v1/status", 200), None)
    record.request_id, record.status = "abc", 200
    line = json.loads(JsonFormatter().format(record))
    assert line["level"] == "info" and line["logger"] == "matserve.access"
    assert line["message"] == "GET /v1/status 200"
    assert line["request_id"] == "abc" and line["status"] == 200
    assert line["time"].endswith("Z")
