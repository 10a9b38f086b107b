"""GPU sharing: the lease coordinator, the lease client, and the engine's residency state machine.

Importing this package starts nothing; the coordinator server lives in ``coordinator_app``.
"""

from gemma_service.gpu.lease import (
    CoordinatorUnavailable,
    Lease,
    LeaseError,
    LeaseLost,
    LeaseNotGranted,
)
from gemma_service.gpu.lease_client import AsyncLeaseClient, LeaseClient
from gemma_service.gpu.residency import GpuResidency, ModelPlacement

__all__ = [
    "AsyncLeaseClient",
    "CoordinatorUnavailable",
    "GpuResidency",
    "Lease",
    "LeaseClient",
    "LeaseError",
    "LeaseLost",
    "LeaseNotGranted",
    "ModelPlacement",
]
