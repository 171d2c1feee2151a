"""A long-lived benchmark server: one JSON command per stdin line, one JSON reply per line.

The peer (stable-diffusion-cpp-python) and qvac_nb share one engine library whose callbacks
are process-global, so each side runs in its own worker process and `run.py` alternates
requests between them. Replies go to the original stdout; anything the engine prints is
sent to stderr so it cannot corrupt the protocol.

Commands (`op`): load, gen, latency, rss, quit. See `handle` for their fields.
"""

from __future__ import annotations

import io
import json
import logging
import os
import resource
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any, TextIO

import numpy as np
from engine_log import LogLines

# qvac_nb model_config key -> StableDiffusion() keyword.
PEER_CONFIG = {
    "threads": "n_threads",
    "flash_attn": "flash_attn",
    "diffusion_fa": "diffusion_flash_attn",
    "diffusion_conv_direct": "diffusion_conv_direct",
    "vae_conv_direct": "vae_conv_direct",
    "mmap": "enable_mmap",
    "rng": "rng_type",
}
PEER_FILES = {"model": "model_path", "diffusion_model": "diffusion_model_path", "llm": "llm_path", "vae": "vae_path",
              "clip_l": "clip_l_path", "clip_g": "clip_g_path", "t5xxl": "t5xxl_path"}


class Worker:
    def __init__(self) -> None:
        self.models: dict[str, Any] = {}  # name -> peer StableDiffusion or qvac_nb model id
        self.sides: dict[str, str] = {}
        self.probe: dict[str, Any] | None = None  # per-step records of the raw engine callback
        self._hooked = False

    # ------------------------------------------------------------------ load
    def load(self, name: str, side: str, files: dict[str, str], config: dict[str, Any]) -> dict[str, Any]:
        if side == "peer":
            from stable_diffusion_cpp import StableDiffusion
        else:
            import qvac_nb
            from qvac_nb.models import COMPANION_KEYS

            qvac_nb.engine.ensure_loaded()  # the peer opens the library at import; time the load alone
        rss_before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        t0 = time.perf_counter()
        if side == "peer":
            kwargs: dict[str, Any] = {PEER_FILES[role]: path for role, path in files.items()}
            kwargs.update({PEER_CONFIG[k]: v for k, v in config.items()})
            kwargs.setdefault("verbose", False)
            self.models[name] = StableDiffusion(**kwargs)
        else:
            primary = files.get("model") or files["diffusion_model"]
            cfg = {key: files[role] for key, role in COMPANION_KEYS.items() if role in files}
            cfg.update(config)
            self.models[name] = qvac_nb.load_model(primary, model_config=cfg)
        self.sides[name] = side
        return {"load_s": time.perf_counter() - t0, "rss_before_mb": rss_before}

    # ------------------------------------------------------------------ generate
    def gen(self, name: str, mode: str, params: dict[str, Any], save: str | None) -> dict[str, Any]:
        if mode == "peer":
            secs, pixels = self._gen_peer(name, params)
        elif mode == "raw":
            secs, pixels = self._gen_raw(name, params)
        else:
            secs, pixels = self._gen_qvac(name, params)
        if save:
            np.save(save, pixels)
        out: dict[str, Any] = {"s": secs, "shape": list(pixels.shape)}
        if self.probe is not None:
            # The callback's seconds are a running per-step figure, so time the sampling by its ticks instead:
            # first to last sample tick spans steps 2..n; scale to n steps.
            ns = [t for phase, _step, t, _s in self.probe["raw"] if phase == "sample"]
            n = len(ns)
            out["sample_span_s"] = (ns[-1] - ns[0]) / 1e9 * n / (n - 1) if n > 1 else float("nan")
            out["cache_log"] = [m for m in self.probe["log"] if "cache" in m.lower() or "skip" in m.lower()]
        return out

    def _gen_peer(self, name: str, p: dict[str, Any]) -> tuple[float, np.ndarray]:
        sd = self.models[name]
        kwargs = {"prompt": p["prompt"], "negative_prompt": p.get("negative_prompt", ""), "width": p["width"],
                  "height": p["height"], "sample_steps": p["steps"], "cfg_scale": p["cfg_scale"],
                  "guidance": p.get("guidance", 3.5), "seed": p["seed"]}
        for key in ("sampling_method", "scheduler", "eta"):
            if p.get(key) is not None:
                kwargs["sample_method" if key == "sampling_method" else key] = p[key]
        t0 = time.perf_counter()
        images = sd.generate_image(**kwargs)
        secs = time.perf_counter() - t0
        return secs, np.asarray(images[0].convert("RGB"))

    def _gen_qvac(self, name: str, p: dict[str, Any]) -> tuple[float, np.ndarray]:
        from PIL import Image

        import qvac_nb

        t0 = time.perf_counter()
        pngs = qvac_nb.diffusion(model_id=self.models[name], **p).outputs.result()
        secs = time.perf_counter() - t0
        with Image.open(io.BytesIO(pngs[0])) as img:
            return secs, np.asarray(img.convert("RGB"))

    def _gen_raw(self, name: str, p: dict[str, Any]) -> tuple[float, np.ndarray]:
        """The extension's own call: an _engine.Request built as qvac_nb.generation._request builds it."""
        from qvac_nb import _engine, cache_presets, engine, models

        model = models.get_model(self.models[name])
        names = engine.enum_names()
        t0 = time.perf_counter()
        req = _engine.Request()
        req.prompt, req.negative_prompt = p["prompt"], p.get("negative_prompt", "")
        req.width, req.height, req.steps = p["width"], p["height"], p["steps"]
        req.cfg_scale, req.guidance, req.seed = p["cfg_scale"], p.get("guidance", 3.5), p["seed"]
        req.sample_method = names["sample_method"].index(p.get("sampling_method") or model.default_sampler)
        req.scheduler = names["scheduler"].index(p.get("scheduler") or model.default_scheduler)
        if p.get("eta") is not None:
            req.eta = p["eta"]
        if p.get("cache_preset"):
            cache_presets.apply(req, p["cache_preset"], model.family)
        job = _engine.Job()
        if self.probe is not None:
            job.on_progress = self._raw_recorder(None)
        pixels = model.context.generate(req, job)[0]
        return time.perf_counter() - t0, pixels

    # ------------------------------------------------------------------ probing the raw callback
    def _raw_recorder(self, inner: Any) -> Any:
        probe = self.probe

        def on_progress(step: int, total: int, secs: float, phase: str) -> None:
            if probe is not None:
                probe["raw"].append((phase, step, time.perf_counter_ns(), secs))
            if inner is not None:
                inner(step, total, secs, phase)

        return on_progress

    def set_probe(self, on: bool) -> None:
        """Record every raw engine progress callback (entry time, step seconds) of qvac_nb jobs."""
        if on and not self._hooked:
            from qvac_nb import generation

            original = generation._progress_hooks

            def hooks(job: Any, batch: int, engine_job: Any, preview: bool) -> None:
                original(job, batch, engine_job, preview)
                if self.probe is not None:
                    engine_job.on_progress = self._raw_recorder(engine_job.on_progress)

            generation._progress_hooks = hooks
            self._hooked = True
        self.probe = {"raw": [], "log": []} if on else None
        log = logging.getLogger("qvac_nb.engine")
        if on:
            self._log_handler = LogLines(self.probe["log"])
            log.addHandler(self._log_handler)
            log.setLevel(logging.INFO)
            log.propagate = False
        elif getattr(self, "_log_handler", None) is not None:
            log.removeHandler(self._log_handler)
            self._log_handler = None

    # ------------------------------------------------------------------ progress latency
    def latency(self, name: str, params: dict[str, Any], consumer: str) -> dict[str, Any]:
        """Raw engine callback -> a consumer of job.progress_stream (a thread, an asyncio task, or a listener)."""
        import asyncio

        import qvac_nb

        self.set_probe(True)
        got: list[tuple[int, int]] = []
        job = qvac_nb.diffusion(model_id=self.models[name], **params)

        def read_thread() -> None:
            for tick in job.progress_stream:
                got.append((tick.step, time.perf_counter_ns()))

        async def read_async() -> None:
            async for tick in job.progress_stream:
                got.append((tick.step, time.perf_counter_ns()))

        if consumer == "listener":  # ProgressStream.subscribe: called on the engine's thread as each tick is pushed
            job.progress_stream.subscribe(lambda tick: got.append((tick.step, time.perf_counter_ns())))
            job.outputs.result()
        else:
            target = read_thread if consumer == "thread" else lambda: asyncio.run(read_async())
            reader = threading.Thread(target=target)
            reader.start()
            job.outputs.result()
            reader.join()
        raw = [(step, ns) for phase, step, ns, _ in self.probe["raw"] if phase == "sample"]  # type: ignore[index]
        self.set_probe(False)
        seen: dict[int, int] = {}
        for step, ns in got:
            seen.setdefault(step, ns)  # the first tick with this step (the "decode" tick repeats the last)
        lat = [(seen[step] - ns) / 1e6 for step, ns in raw if step in seen]
        return {"latency_ms": lat, "ticks": len(raw)}

    # ------------------------------------------------------------------ dispatch
    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "load":
            return self.load(cmd["name"], cmd["side"], cmd["files"], cmd.get("config", {}))
        if op == "gen":
            self.set_probe(bool(cmd.get("probe")))
            try:
                return self.gen(cmd["name"], cmd["mode"], cmd["params"], cmd.get("save"))
            finally:
                self.set_probe(False)
        if op == "latency":
            return self.latency(cmd["name"], cmd["params"], cmd.get("consumer", "thread"))
        if op == "rss":
            return {"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}
        if op == "info":
            return info()
        raise ValueError(f"unknown op {op!r}")


def info() -> dict[str, Any]:
    from importlib.metadata import version

    out: dict[str, Any] = {"python": sys.version.split()[0], "peer": version("stable-diffusion-cpp-python")}
    try:
        import qvac_nb
        from qvac_nb import engine

        out["qvac_nb"] = qvac_nb.__version__
        out["qvac_nb_path"] = str(Path(qvac_nb.__file__).parent)
        out["engine"] = {k: v for k, v in engine.info().items() if k != "system_info"}
        out["system_info"] = " ".join(str(engine.info()["system_info"]).split())
    except Exception as exc:  # noqa: BLE001 - informational only
        out["qvac_nb_error"] = repr(exc)
    return out


def serve(proto: TextIO) -> None:
    for line in sys.stdin:
        if not line.strip():
            continue
        cmd = json.loads(line)
        if cmd["op"] == "quit":
            break
        try:
            reply = {"ok": True, **WORKER.handle(cmd)}
        except Exception as exc:  # noqa: BLE001 - reported to the driver
            reply = {"ok": False, "error": f"{type(exc).__name__}: {exc}", "trace": traceback.format_exc()}
        proto.write(json.dumps(reply) + "\n")
        proto.flush()


WORKER = Worker()

if __name__ == "__main__":
    # Keep the protocol on a private copy of stdout; engine prints go to stderr.
    protocol = os.fdopen(os.dup(1), "w")
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    protocol.write(json.dumps({"ok": True, "ready": True, "pid": os.getpid(),
                               "rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}) + "\n")
    protocol.flush()
    serve(protocol)
