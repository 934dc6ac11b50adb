"""The playground page at ``/`` and its static files at ``/playground/{name}``.

Plain HTML, CSS and JavaScript modules from ``gateway/static/playground``, no build step and
nothing from another host. These routes need no API key: the page itself asks for one when
the API answers 401, and sends it as ``x-api-key``.
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

from gateway.errors import NotFound

router = APIRouter(include_in_schema=False)

STATIC_DIR = Path(__file__).resolve().parent.parent / "static" / "playground"
MEDIA_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".css": "text/css; charset=utf-8",
}
# Only the files shipped in the folder are served, looked up by name: no path ever reaches the disk.
ASSETS: dict[str, Path] = {path.name: path for path in sorted(STATIC_DIR.iterdir()) if path.suffix in MEDIA_TYPES}
NO_CACHE = {"Cache-Control": "no-cache"}  # revalidate, so an upgraded service never runs yesterday's script


def _file(path: Path) -> FileResponse:
    return FileResponse(path, media_type=MEDIA_TYPES[path.suffix], headers=NO_CACHE)


@router.get("/")
async def index() -> FileResponse:
    return _file(ASSETS["index.html"])


@router.get("/playground/{name}")
async def asset(name: str) -> FileResponse:
    path = ASSETS.get(name)
    if path is None:
        raise NotFound(f"no playground file {name!r}",
                       [{"loc": ["path", "name"], "msg": "unknown file", "type": "not_found"}])
    return _file(path)
