"""Errors the lease coordinator reports, as members of the service's one error hierarchy."""

from __future__ import annotations

from gemma_service.errors import RequestTimeoutError, ServiceError


class LeaseConflictError(ServiceError):
    """The request conflicts with the lease as the coordinator holds it (409)."""

    status_code = 409
    error_type = "conflict_error"
    default_code = "conflict"


class LeaseNotHeldError(LeaseConflictError):
    """The lease named was released or has expired; its holder must stop using the GPU."""

    default_code = "lease_not_held"


class StaleTokenError(LeaseNotHeldError):
    """The fencing token is older than one issued since: its holder has lost the GPU."""

    default_code = "stale_token"


class LeaseBusyError(LeaseConflictError):
    """Someone else holds the lease and the request did not ask to wait (wait_s = 0)."""

    default_code = "lease_busy"


class LeaseWaitTimeoutError(RequestTimeoutError):
    """The lease was not granted within the request's wait_s."""

    default_code = "lease_wait_timeout"
