"""The pages: resident chat and staff lookup (plain HTML, CSS and JS; no build step)."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import FileResponse

router = APIRouter(tags=["pages"])
STATIC = Path(__file__).resolve().parent.parent / "static"


@router.get("/", include_in_schema=False)
def resident_chat() -> FileResponse:
    return FileResponse(STATIC / "chat.html", media_type="text/html; charset=utf-8")


@router.get("/staff", include_in_schema=False)
def staff_lookup() -> FileResponse:
    return FileResponse(STATIC / "staff.html", media_type="text/html; charset=utf-8")
