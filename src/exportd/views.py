"""The JSON shapes of jobs, projects and errors, shared by HTTP routes and socket acks."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Row

from exportd.domain.errors import ExportdError
from exportd.store.repository import download_path, iso


def user_view(user: Row) -> dict[str, Any]:
    return {"id": user.id, "email": user.email, "createdAt": iso(user.created_at)}


def project_view(project: Row, user_id: str) -> dict[str, Any]:
    view = {"id": project.id, "name": project.name, "ownerId": project.owner_id,
            "role": "owner" if project.owner_id == user_id else "shared", "createdAt": iso(project.created_at)}
    if "image_count" in project._fields:
        view["imageCount"] = project.image_count
    return view


def image_view(image: Row, polygon_count: int) -> dict[str, Any]:
    return {"id": image.id, "name": image.name, "width": image.width, "height": image.height,
            "contentType": image.content_type, "size": image.size, "polygonCount": polygon_count,
            "createdAt": iso(image.created_at)}


def job_view(job: Row) -> dict[str, Any]:
    available = job.status == "completed" and job.file_path is not None
    return {
        "id": job.id,
        "projectId": job.project_id,
        "userId": job.user_id,
        "status": job.status,
        "progress": job.progress,
        "stage": job.stage,
        "message": job.message,
        "seq": job.seq,
        "attempt": job.attempt,
        "createdAt": iso(job.created_at),
        "startedAt": iso(job.started_at),
        "completedAt": iso(job.completed_at),
        "failedAt": iso(job.failed_at),
        "cancelledAt": iso(job.cancelled_at),
        "reason": job.reason,
        "cancelledBy": job.cancelled_by,
        "error": job.error,
        "errorCode": job.error_code,
        "retryable": job.retryable,
        "options": job.options,
        "projectName": job.project_name,
        "warnings": job.warnings or [],
        "exportSize": job.export_size,
        "fileName": job.file_name,
        "available": available,
        "downloadUrl": download_path(job.project_id, job.id) if available else None,
    }


def start_view(job: Row) -> dict[str, Any]:
    """The answer to starting an export: the job, plus `jobId` and `success` as clients of the
    replaced platform read them."""
    return {**job_view(job), "jobId": job.id, "success": True}


def cancel_view(job: Row) -> dict[str, Any]:
    return {"success": True, "status": job.status, "jobId": job.id, "cancelledAt": iso(job.cancelled_at),
            "reason": job.reason, "previousStatus": job.previous_status, "job": job_view(job)}


def error_view(error: ExportdError) -> dict[str, Any]:
    body: dict[str, Any] = {"success": False, "error": error.message, "code": error.code}
    for key, value in error.details.items():
        body[key] = job_view(value) if key == "job" else value  # a conflict shows the job as it stands
    return body
