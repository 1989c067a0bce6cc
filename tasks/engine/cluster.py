"""The `TF_CONFIG` cluster: which tasks train together and this process's place among them.

Every task of a multi-worker run gets the same cluster and its own `task` in `TF_CONFIG`
(see docs/distributed.md). `tasks.engine.distribute` builds the strategy over it and decides the
roles (who writes the run directory, how the tasks leave together).
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass

from common.errors import InputError

# Jobs of TF_CONFIG that train under MultiWorkerMirroredStrategy.
TRAINING_JOBS = ("chief", "worker")
EXAMPLE_TF_CONFIG = ('{"cluster": {"worker": ["host1:12345", "host2:12345"]}, '
                     '"task": {"type": "worker", "index": 0}}')


@dataclass(frozen=True)
class Cluster:
    """This process's place in the `TF_CONFIG` cluster.

    Attributes:
        tasks: Processes that train (chief and workers).
        task_type: `chief` or `worker`.
        task_index: Index within `task_type`.
        has_chief: The cluster names a `chief` task (else worker 0 is the chief).
    """

    tasks: int
    task_type: str
    task_index: int
    has_chief: bool = False

    @property
    def is_chief(self) -> bool:
        """The task that writes the run directory: `chief`, or worker 0 when there is none."""
        return self.task_type == "chief" or (self.task_type == "worker" and self.task_index == 0
                                             and not self.has_chief)

    @property
    def name(self) -> str:
        """`chief` or `worker-<index>`, as in the scratch folder names."""
        return "chief" if self.task_type == "chief" else f"worker-{self.task_index}"


def read_cluster() -> Cluster | None:
    """Parses `TF_CONFIG`; None when it is unset or empty.

    Raises:
        InputError: Not JSON, or not a cluster of chief/worker tasks that includes this task.
    """
    text = os.environ.get("TF_CONFIG", "").strip()
    if not text:
        return None
    how = f"TF_CONFIG should look like {EXAMPLE_TF_CONFIG}, the same cluster on every task"
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as error:
        raise InputError(f"TF_CONFIG is not valid JSON ({error}). {how}.") from None
    cluster = spec.get("cluster") if isinstance(spec, dict) else None
    task = spec.get("task") if isinstance(spec, dict) else None
    if not isinstance(cluster, dict) or not cluster or not isinstance(task, dict):
        raise InputError(f"TF_CONFIG needs a 'cluster' and a 'task'. Received: {text}. {how}.")
    other = [job for job in cluster if job not in TRAINING_JOBS]
    if other:
        raise InputError(f"TF_CONFIG has jobs {', '.join(other)}; multi-worker training takes "
                         f"only chief and worker tasks (no parameter servers or evaluators). "
                         f"{how}.")
    if not all(isinstance(hosts, list) and hosts for hosts in cluster.values()):
        raise InputError(f"TF_CONFIG: each job is a non-empty list of host:port. Received: "
                         f"{json.dumps(cluster)}. {how}.")
    task_type, index = task.get("type"), task.get("index", 0)
    if task_type not in cluster or not isinstance(index, int) or not (
            0 <= index < len(cluster[task_type])):
        raise InputError(f"TF_CONFIG's task {json.dumps(task)} is not in its cluster "
                         f"({json.dumps(cluster)}). {how}.")
    tasks = sum(len(hosts) for hosts in cluster.values())
    return Cluster(tasks, task_type, index, has_chief="chief" in cluster)
