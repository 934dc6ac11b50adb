"""Reading the structure of a prediction request: form field ``file`` (urlencoded or multipart), JSON, or raw text."""

from __future__ import annotations

import json

from fastapi import Request
from starlette.datastructures import UploadFile

from gateway.errors import BadRequest, Unprocessable
from matserve.structures import StructureParseError, System, parse_structure_text


async def structure_text(request: Request) -> str:
    content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        form = await request.form()
        value = form.get("file")
        if value is None:
            raise Unprocessable("form field 'file' is missing", [{"loc": ["body", "file"], "msg": "field required",
                                                                 "type": "missing"}])
        if isinstance(value, UploadFile):
            return _decode(await value.read())
        return str(value)
    body = await request.body()
    if content_type == "application/json":
        try:
            data = json.loads(body)
        except (json.JSONDecodeError, UnicodeDecodeError):  # bytes that are not UTF-8 are not JSON either
            raise BadRequest("malformed JSON body",
                             [{"loc": ["body"], "msg": "JSON decode error", "type": "json_invalid"}]) from None
        if not isinstance(data, dict) or not isinstance(data.get("file"), str):
            raise Unprocessable("JSON body needs a string field 'file'",
                               [{"loc": ["body", "file"], "msg": "field required", "type": "missing"}])
        return data["file"]
    return _decode(body)


def _decode(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("the structure file is not UTF-8 text") from None


def parse_or_422(text: str) -> System:
    try:
        system = parse_structure_text(text)
    except StructureParseError as error:
        raise Unprocessable(str(error), [{"loc": ["body", "file"], "msg": str(error), "type": "value_error"}]) from None
    return system


def system_to_json(system: System) -> dict:
    return {"positions": system.positions.tolist(), "numbers": system.numbers.tolist(), "cell": system.cell.tolist()}


def system_from_json(data: dict) -> System:
    return System(data["positions"], data["numbers"], data["cell"])
