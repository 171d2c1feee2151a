"""Batch workers as Ray actors: each actor loads its own copy of the model once and makes items one at a time.

Inside an actor the model lives where it lives in a notebook: in a qvac_nb engine worker process
(`models.load_copy`), fetched through the node's model cache, so a node downloads a file once
however many actors it runs. An item runs as a plain `diffusion()` call in the actor, so its image
is the one a local run makes. Ray is imported only here, and only when a batch asks for it.
"""

from __future__ import annotations

import os
import socket
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import EngineCrashedError, InvalidParameterError
from .backend import WorkerLost
from .items import Item

INSTALL_HINT = "pip install 'qvac_nb[ray]' (or: pip install 'ray>=2.9')"
DEFAULT_ACTOR_OPTIONS: dict[str, Any] = {"num_cpus": 1}
AUTH_MODE_ENV = "RAY_AUTH_MODE"  # Ray's switch for token authentication ("token" or "disabled")


def import_ray() -> Any:
    """The `ray` module, or an ImportError that says how to install it."""
    try:
        import ray
    except ImportError:
        raise ImportError(f"cluster='ray' needs Ray, which is not installed: {INSTALL_HINT}") from None
    return ray


def new_cluster_env(cluster: str, environ: Mapping[str, str], ray_imported: bool) -> dict[str, str]:
    """What to add to the environment before Ray starts a new local cluster for a batch.

    RAY_AUTH_MODE=token: the mode Ray (2.59 on) gives a new local cluster anyway, but set explicitly, which is
    how Ray's docs turn token authentication on, so Ray does not warn about choosing it on every run. Nothing
    when the batch joins an existing cluster (its mode is its own), when the user set RAY_AUTH_MODE, or when
    Ray is already imported: Ray reads the mode once, at import, and a later setting would give the cluster
    a mode its driver does not use.
    """
    if cluster != "ray" or environ.get("RAY_ADDRESS") or AUTH_MODE_ENV in environ or ray_imported:
        return {}
    return {AUTH_MODE_ENV: "token"}


def connect(cluster: str) -> Any:
    """Ray, connected: the session this process already has, else `cluster` ('ray': RAY_ADDRESS or a new
    local cluster; 'auto': the cluster `ray start` began on this machine; 'ray://host:10001', 'host:6379')."""
    env = new_cluster_env(cluster, os.environ, ray_imported="ray" in sys.modules)
    os.environ.update(env)  # left set once Ray runs, as Ray itself leaves it when it turns token mode on
    try:
        ray = import_ray()
    except ImportError:
        for name in env:
            os.environ.pop(name, None)
        raise
    if not ray.is_initialized():
        ray.init(address=None if cluster == "ray" else cluster, logging_level="warning")
    return ray


class ModelActor:
    """Lives in a Ray worker process: one private copy of the model and the items sent to it."""

    def __init__(self, model_src: str, model_config: Mapping[str, Any] | None) -> None:
        from .. import models

        self._model_id = models.load_copy(model_src, model_config=model_config)

    def info(self) -> dict[str, Any]:
        package = str(Path(__file__).resolve().parent.parent)  # which qvac_nb this node imported
        return {"pid": os.getpid(), "host": socket.gethostname(), "qvac_nb": package}

    def generate(self, params: dict[str, Any]) -> tuple[bytes, dict[str, Any], float]:
        from .. import models, records
        from ..generation import diffusion
        from ..video_generation import video

        if models.get_model(self._model_id).mode == "video":
            video_job = video(model_id=self._model_id, **params)
            clip = video_job.video()
            return bytes(clip), clip.record, video_job.stats.result().generation_ms
        job = diffusion(model_id=self._model_id, **params)
        pngs = job.outputs.result()
        return pngs[0], records.image_record(job.params, 0), job.stats.result().generation_ms


@dataclass(eq=False)
class Actor:
    """A slot: one actor and what it reported about itself."""

    handle: Any
    number: int
    info: dict[str, Any] = field(default_factory=dict)


class RayBackend:
    kind = "ray"

    def __init__(self, model_src: str, model_config: Mapping[str, Any] | None, cluster: str,
                 actor_options: Mapping[str, Any] | None) -> None:
        self.ray = connect(cluster)
        self.model_src = model_src
        self.model_config = dict(model_config) if model_config is not None else None
        self.options = {**DEFAULT_ACTOR_OPTIONS, **(actor_options or {}), "max_restarts": 0}
        self._remote = self.ray.remote(ModelActor)
        self._actors: list[Actor] = []
        self._dead: set[int] = set()
        self._tasks: dict[Any, int] = {}  # a running call -> the number of its actor
        self._numbers = iter(range(1, 1 << 30))

    def default_workers(self) -> int:
        """One actor per GPU the options ask for when they ask for GPUs, else one per node."""
        gpus = float(self.options.get("num_gpus") or 0)
        if gpus > 0:
            return max(1, int(self.ray.cluster_resources().get("GPU", 0) // gpus))
        return max(1, sum(1 for node in self.ray.nodes() if node.get("Alive")))

    def check_fits(self, count: int) -> None:
        """Refuse more actors than the cluster can ever place (they would wait forever)."""
        resources = self.ray.cluster_resources()
        for option, resource in (("num_cpus", "CPU"), ("num_gpus", "GPU")):
            need = float(self.options.get(option) or 0) * count
            have = float(resources.get(resource, 0))
            if need > have:
                raise InvalidParameterError(
                    f"workers: {count} actors with {option}={self.options.get(option)} need {need:g} {resource}s "
                    f"but the Ray cluster has {have:g}; use fewer workers or ray_options={{'{option}': ...}}",
                    param="workers")

    def _start(self) -> Actor:
        handle = self._remote.options(**self.options).remote(self.model_src, self.model_config)
        actor = Actor(handle, next(self._numbers))
        self._actors.append(actor)
        return actor

    def open(self, count: int) -> list[Actor]:
        actors = [self._start() for _ in range(count)]
        try:
            infos = self.ray.get([a.handle.info.remote() for a in actors])
        except self.ray.exceptions.RayActorError as exc:
            self.stop()
            raise _load_error(exc) from None
        for actor, info in zip(actors, infos, strict=True):
            actor.info = info
        return actors

    def submit(self, slot: Actor, item: Item) -> Any:
        task = slot.handle.generate.remote(item.params)
        self._tasks[task] = slot.number
        return task

    def wait(self, tasks: list[Any], timeout: float) -> list[Any]:
        ready, _ = self.ray.wait(tasks, num_returns=1, timeout=timeout)
        return ready

    def collect(self, task: Any) -> tuple[bytes, dict[str, Any], float]:
        exceptions = self.ray.exceptions
        owner = self._tasks.pop(task, -1)
        try:
            return self.ray.get(task)
        except (exceptions.RayActorError, exceptions.ActorUnavailableError) as exc:
            self._dead.add(owner)
            raise WorkerLost(f"Ray actor lost: {exc}") from None
        except exceptions.RayTaskError as exc:
            cause = getattr(exc, "cause", None) or exc
            if isinstance(cause, EngineCrashedError):  # the actor's engine worker died; the actor restarts it
                raise WorkerLost(str(cause)) from None
            raise cause from None

    def replace(self, slot: Actor) -> Actor:
        if slot.number not in self._dead:
            return slot
        self._kill(slot)
        fresh = self._start()  # its calls queue in Ray until the model has loaded in it
        try:
            fresh.info = self.ray.get(fresh.handle.info.remote())
        except self.ray.exceptions.RayActorError:
            self._dead.add(fresh.number)  # its items fail with WorkerLost and run again (at most twice)
        return fresh

    def describe(self, slot: Actor) -> str:
        return f"ray-{slot.number}@{slot.info.get('host', '?')}"

    def worker_pid(self, slot: Actor) -> int | None:
        """The process id of the actor (the Ray worker process that holds the model's engine worker)."""
        return slot.info.get("pid")

    def cancel(self, task: Any) -> None:
        try:
            self.ray.cancel(task)
        except Exception:  # noqa: BLE001 - stop() ends the actor anyway
            pass

    def _kill(self, actor: Actor) -> None:
        try:
            self.ray.kill(actor.handle, no_restart=True)
        except Exception:  # noqa: BLE001 - already gone
            pass

    def stop(self) -> None:
        """End every actor; each one's engine worker exits with it."""
        actors, self._actors = list(self._actors), []
        for actor in actors:
            self._kill(actor)


def _load_error(exc: Exception) -> Exception:
    from ..errors import EngineError

    return EngineError(f"model_src: the Ray actors could not load the model: {exc}")
