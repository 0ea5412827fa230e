"""Multi-host helpers: joining processes, the device mesh and replicated host data.

Every process runs the same program (multi-controller JAX). After
`initialize_distributed`, `jax.devices()` lists the devices of all processes, a jitted
computation over a mesh of those devices runs on all of them, and values replicated
over the mesh are read on each process from its own copy.
"""

from __future__ import annotations

import logging
import os

import jax
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Mesh, NamedSharding, PartitionSpec

logger = logging.getLogger(__name__)

# Name of the mesh axis that splits the candidates of a chunk across devices.
CANDIDATE_AXIS = "candidates"

# Environment variables that make `jax.distributed.initialize` detect a cluster on its own
# (JAX 0.10: coordinator variable, Cloud TPU pods, Slurm and Open MPI launchers).
_CLUSTER_ENVIRONMENT = ("JAX_COORDINATOR_ADDRESS", "TPU_WORKER_HOSTNAMES", "CLOUD_TPU_TASK_ID",
                        "SLURM_JOB_ID", "OMPI_MCA_orte_hnp_uri", "PMIX_NAMESPACE")


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> tuple[int, int]:
    """Join this process to a multi-process JAX run and return (process index, process count).

    With no arguments and no cluster environment (see `_CLUSTER_ENVIRONMENT`) this is a
    single-process run and nothing is initialised. Otherwise JAX's own cluster detection
    fills in what is not given, which is how Cloud TPU pods and Slurm jobs join. On CPU
    the cross-process collectives use gloo. Calling it again after a successful join
    returns the same numbers.

    Must run before any other JAX computation in the process.

    Raises:
        ValueError: the arguments are inconsistent (one-line message naming the argument).
        RuntimeError: the coordinator could not be reached (from JAX).
    """
    if num_processes is not None and num_processes < 1:
        raise ValueError(f"num_processes must be at least 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= process_id < num_processes:
        raise ValueError(f"process_id must lie in 0..{num_processes - 1}, got {process_id}")
    if jax.distributed.is_initialized():
        return jax.process_index(), jax.process_count()

    explicit = coordinator_address is not None or num_processes is not None or process_id is not None
    detected = any(os.environ.get(name) for name in _CLUSTER_ENVIRONMENT)
    if not explicit and not detected:
        return 0, 1
    if num_processes == 1 and coordinator_address is None:
        return 0, 1
    if explicit and coordinator_address is not None and (num_processes is None or process_id is None):
        raise ValueError("coordinator_address needs num_processes and process_id as well, "
                         f"got num_processes={num_processes}, process_id={process_id}")

    # gloo is JAX 0.10's default for CPU collectives; set it anyway so an older default
    # ("none") cannot leave cross-process collectives on CPU unimplemented.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
    logger.info("joined distributed run as process %d of %d (%d local devices, %d in all)",
                jax.process_index(), jax.process_count(), jax.local_device_count(), jax.device_count())
    return jax.process_index(), jax.process_count()


def candidate_mesh() -> Mesh:
    """Build a one-axis mesh over every device of every process, in process order."""
    devices = sorted(jax.devices(), key=lambda device: (device.process_index, device.id))
    return Mesh(np.asarray(devices), (CANDIDATE_AXIS,))


def replicate(mesh: Mesh, tree):
    """Place host arrays on every device of `mesh`; each process must pass equal values."""
    sharding = NamedSharding(mesh, PartitionSpec())

    def place(value):
        value = np.asarray(value)
        return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])

    return jax.tree.map(place, tree)


def per_device(mesh: Mesh, local_value) -> jax.Array:
    """Build a (devices,) array sharded over the candidate axis, with this process's value
    on each of its devices."""
    sharding = NamedSharding(mesh, PartitionSpec(CANDIDATE_AXIS))
    local_value = np.asarray(local_value)
    return jax.make_array_from_callback(
        (mesh.size,), sharding, lambda index: np.full((1,), local_value, dtype=local_value.dtype))


def fetch_replicated(tree):
    """Copy replicated arrays to the host from this process's first device."""
    return jax.tree.map(lambda array: np.asarray(array.addressable_data(0)), tree)


def broadcast_bytes(payload: bytes | None) -> bytes | None:
    """Send process 0's bytes (or None) to every process; a no-op in a single process."""
    if jax.process_count() == 1:
        return payload
    is_source = jax.process_index() == 0
    local_length = 0
    if is_source:
        local_length = -1 if payload is None else len(payload)
    length = int(multihost_utils.broadcast_one_to_all(np.asarray([local_length], dtype=np.int32))[0])
    if length < 0:
        return None
    if is_source:
        buffer = np.frombuffer(payload, dtype=np.uint8)
    else:
        buffer = np.zeros(length, dtype=np.uint8)
    if length == 0:
        return b""
    return multihost_utils.broadcast_one_to_all(buffer).tobytes()
