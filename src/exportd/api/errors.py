"""Domain errors become HTTP here, and only here."""

from __future__ import annotations

import logging

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException

from exportd.domain import errors
from exportd.faults import storage_fault, store_fault
from exportd.views import error_view

log = logging.getLogger(__name__)

STATUS_BY_CODE = {
    "BAD_REQUEST": 400,
    "UNAUTHORIZED": 401,
    "FORBIDDEN": 403,
    "NOT_FOUND": 404,
    "CONFLICT": 409,
    "GONE": 410,
    "PAYLOAD_TOO_LARGE": 413,
    "RATE_LIMIT_EXCEEDED": 429,
    "INTERNAL_ERROR": 500,
    "SERVICE_UNAVAILABLE": 503,
}
CODE_BY_STATUS = {status: code for code, status in STATUS_BY_CODE.items()}


def error_response(status: int, message: str, code: str, **extra) -> JSONResponse:
    return JSONResponse({"success": False, "error": message, "code": code, **extra}, status_code=status)


def describe_validation(error: RequestValidationError) -> tuple[str, str]:
    """The first problem, naming its field in the client's own terms (e.g. options.pixelToMicrometerScale)."""
    first = error.errors()[0]
    location = [str(part) for part in first.get("loc", ()) if part not in ("body", "query", "path", "header")]
    field = ".".join(location) or ("body" if first.get("loc", ())[:1] == ("body",) else "")
    if first.get("type") == "json_invalid":
        return "The request body is not valid JSON.", "body"
    if first.get("type") == "missing" and not field:
        return "A request body is required.", "body"
    message = first.get("msg", "Invalid value")
    return (f"{field}: {message}" if field else message), field


def domain_response(error: errors.ExportdError) -> JSONResponse:
    headers = None
    if isinstance(error, (errors.TooManyActiveExports, errors.ServiceUnavailable)):
        headers = {"Retry-After": str(error.retry_after)}
    elif isinstance(error, errors.Unauthorized):
        headers = {"WWW-Authenticate": "Bearer"}
    return JSONResponse(error_view(error), status_code=STATUS_BY_CODE[error.code], headers=headers)


def unavailable(error: BaseException) -> errors.ServiceUnavailable | None:
    """The 503 for a full or read-only disk or database met outside the storage and the store."""
    if storage_fault(error):
        return errors.StorageUnavailable()
    if store_fault(error):
        return errors.StoreUnavailable()
    return None


def install(app: FastAPI) -> None:
    @app.exception_handler(errors.ExportdError)
    async def _domain(request: Request, error: errors.ExportdError) -> JSONResponse:
        if isinstance(error, errors.ServiceUnavailable):
            log.warning("%s %s: %s (%r)", request.method, request.url.path, error.message, error.__cause__)
        return domain_response(error)

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, error: RequestValidationError) -> JSONResponse:
        message, field = describe_validation(error)
        return error_response(400, message, "BAD_REQUEST", field=field)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, error: StarletteHTTPException) -> JSONResponse:
        code = CODE_BY_STATUS.get(error.status_code, "BAD_REQUEST" if error.status_code < 500 else "INTERNAL_ERROR")
        message = error.detail if isinstance(error.detail, str) else "Request failed"
        return error_response(error.status_code, message, code)

    @app.exception_handler(Exception)
    async def _unexpected(request: Request, error: Exception) -> JSONResponse:
        translated = unavailable(error)
        if translated is not None:  # e.g. a request body spooled to a full temporary folder
            log.warning("%s %s: %s (%r)", request.method, request.url.path, translated.message, error)
            return domain_response(translated)
        log.exception("unhandled error on %s %s", request.method, request.url.path)
        return error_response(500, "Internal server error", "INTERNAL_ERROR")
