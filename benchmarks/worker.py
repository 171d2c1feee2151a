"""A long-lived benchmark server: one JSON command per stdin line, one JSON reply per line.

Each side runs in its own server process and `run.py` alternates requests between them:
- peer: stable-diffusion-cpp-python's `StableDiffusion` in this process;
- qvac: `qvac_nb.load_model` / `qvac_nb.diffusion`; this process plays the Jupyter kernel and the
  engine runs in the model's worker process (`qvac_nb.worker`), as in a notebook;
- raw: qvac_nb's engine call without the kernel/worker layer: `qvac_nb.worker.opening.open_model`
  opens a context in this process and `context.generate` runs on this thread.
Replies go to the original stdout; anything the engine prints is sent to stderr so it cannot corrupt
the protocol.

With $QVAC_NB_TICK_PROBE set (run.py does it for the "probe" server), qvac_nb's workers append the
perf_counter_ns of every engine progress callback to that file; perf_counter is CLOCK_MONOTONIC on
Linux, so those times compare with this process's own.

Commands (`op`): load, gen, latency, rss, unload, info, quit. See `handle` for their fields.
"""

from __future__ import annotations

import gc
import io
import json
import logging
import os
import resource
import sys
import threading
import time
import traceback
import types
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
# qvac_nb.diffusion's defaults for what run.py does not pass (the raw side builds the same request).
RAW_DEFAULTS = {"negative_prompt": "", "cfg_scale": 7.0, "guidance": 3.5, "sampling_method": None, "scheduler": None,
                "batch_count": 1, "vae_tiling": False, "cache_preset": None, "strength": 0.75, "clip_skip": -1,
                "eta": None, "mask_image": None, "init_images": None, "control_image": None, "hires": None,
                "lora": None, "pm_id_images": None, "pm_id_embed_path": None}
PROBE_ENV = "QVAC_NB_TICK_PROBE"


def rss_now_mb() -> float:
    import psutil

    return psutil.Process().memory_info().rss / 2**20


SAMPLER_CPU_S = [0.0]  # CPU seconds the PSS sampler thread has used in this process


class PssPeak:
    """The peak of this process's PSS plus its children's (a model's worker), sampled every PERIOD_S.

    PSS splits each shared page among the processes mapping it, so the sum over the kernel and its
    worker counts a shared library once: the memory both need together, unlike a sum of RSS peaks.
    Sampling can miss a peak shorter than the period; both sides are sampled the same way.
    """

    PERIOD_S = 0.05

    def __init__(self) -> None:
        import psutil

        self._me = psutil.Process()
        self.peak_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pss-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            start = time.thread_time()
            total = 0
            for proc in [self._me, *self._me.children(recursive=True)]:
                try:
                    total += proc.memory_full_info().pss
                except Exception:  # noqa: BLE001 - a child that just exited counts nothing
                    pass
            self.peak_mb = max(self.peak_mb, total / 2**20)
            SAMPLER_CPU_S[0] += time.thread_time() - start  # not the benchmarked work: cpu_s() leaves it out
            self._stop.wait(self.PERIOD_S)

    def stop(self) -> float:
        self._stop.set()
        self._thread.join(5)
        return self.peak_mb


def peak_mb(pid: int) -> float:
    """A process's peak RSS (VmHWM) in MB."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    import psutil

    return psutil.Process(pid).memory_info().rss / 2**20


def cpu_s(pid: int | None = None) -> float:
    """User + system CPU seconds of this process (all threads but the PSS sampler), or of process `pid`."""
    if pid is None:
        return time.process_time() - SAMPLER_CPU_S[0]
    import psutil

    t = psutil.Process(pid).cpu_times()
    return t.user + t.system


class Worker:
    def __init__(self) -> None:
        self.models: dict[str, Any] = {}  # name -> peer StableDiffusion, qvac_nb model id, or raw OpenModel
        self.sides: dict[str, str] = {}
        self.pss: PssPeak | None = None  # sampling from the first load until the next rss command
        self.probe_path = os.environ.get(PROBE_ENV)
        self.log_lines: list[str] | None = None

    # ------------------------------------------------------------------ load
    def load(self, name: str, side: str, files: dict[str, str], config: dict[str, Any],
             pss: bool = False) -> dict[str, Any]:
        # Each library's imports happen before the timed load, and are timed on their own: the peer opens
        # its engine library at import; qvac_nb imports its API on first use (qvac_nb.load_model below).
        t_import = time.perf_counter()
        if side == "peer":
            from stable_diffusion_cpp import StableDiffusion
        else:
            import qvac_nb
            from qvac_nb.models import COMPANION_KEYS

            qvac_nb.load_model  # noqa: B018 - resolves the lazy name: the API's modules import here
        import_s = time.perf_counter() - t_import
        if side != "peer":
            primary = files.get("model") or files["diffusion_model"]
            cfg = {key: files[role] for key, role in COMPANION_KEYS.items() if role in files}
            cfg.update(config)
        if side == "raw":
            from qvac_nb import engine, models
            from qvac_nb.worker import opening

            engine.ensure_loaded()  # the peer opens the library at import; time the load alone
            # The spec a worker would get: LoadedModel.worker_spec() of the model qvac_nb would load.
            spec = models._prepare(primary, "diffusion", cfg, None).worker_spec()
        rss_before = rss_now_mb()
        if pss and self.pss is None:  # only in memory rounds: reading smaps slows the sampled processes
            self.pss = PssPeak()
        t0 = time.perf_counter()
        out: dict[str, Any] = {}
        if side == "peer":
            kwargs: dict[str, Any] = {PEER_FILES[role]: path for role, path in files.items()}
            kwargs.update({PEER_CONFIG[k]: v for k, v in config.items()})
            kwargs.setdefault("verbose", False)
            self.models[name] = StableDiffusion(**kwargs)
        elif side == "raw":
            self.models[name] = opening.open_model(spec, None)
        else:  # includes starting the model's worker process
            self.models[name] = qvac_nb.load_model(primary, model_config=cfg)
            out["worker_pid"] = self._worker_pid(name)
        self.sides[name] = side
        return {**out, "load_s": time.perf_counter() - t0, "import_s": import_s, "rss_before_mb": rss_before}

    def _worker_pid(self, name: str) -> int:
        from qvac_nb import runner

        model_runner = runner.runner_for(self.models[name])
        assert model_runner is not None and model_runner.worker is not None
        return int(model_runner.worker.proc.pid)

    # ------------------------------------------------------------------ generate
    def gen(self, name: str, mode: str, params: dict[str, Any], save: str | None) -> dict[str, Any]:
        mark = self._probe_mark()
        if mode == "peer":
            secs, cpu, pixels = self._gen_peer(name, params)
        elif mode == "raw":
            secs, cpu, pixels = self._gen_raw(name, params)
        else:
            secs, cpu, pixels = self._gen_qvac(name, params)
        if save:
            np.save(save, pixels)
        out: dict[str, Any] = {"s": secs, "cpu_s": cpu, "shape": list(pixels.shape)}
        if mark is not None and mode == "qvac":
            # The callback's seconds are a running per-step figure, so time the sampling by its ticks instead:
            # first to last sample tick spans steps 2..n; scale to n steps.
            ns = [t for t, phase, step in self._probe_since(mark) if phase == "sample" and step > 0]
            n = len(ns)
            out["sample_span_s"] = (ns[-1] - ns[0]) / 1e9 * n / (n - 1) if n > 1 else float("nan")
        if self.log_lines is not None:
            out["cache_log"] = [m for m in self.log_lines if "cache" in m.lower() or "skip" in m.lower()]
        return out

    def _gen_peer(self, name: str, p: dict[str, Any]) -> tuple[float, float, np.ndarray]:
        sd = self.models[name]
        kwargs = {"prompt": p["prompt"], "negative_prompt": p.get("negative_prompt", ""), "width": p["width"],
                  "height": p["height"], "sample_steps": p["steps"], "cfg_scale": p["cfg_scale"],
                  "guidance": p.get("guidance", 3.5), "seed": p["seed"]}
        for key in ("sampling_method", "scheduler", "eta"):
            if p.get(key) is not None:
                kwargs["sample_method" if key == "sampling_method" else key] = p[key]
        c0, t0 = cpu_s(), time.perf_counter()
        images = sd.generate_image(**kwargs)
        secs, cpu = time.perf_counter() - t0, cpu_s() - c0
        return secs, cpu, np.asarray(images[0].convert("RGB"))

    def _gen_qvac(self, name: str, p: dict[str, Any]) -> tuple[float, float, np.ndarray]:
        """Wall time in the kernel; CPU time of the kernel (this process) plus the model's worker."""
        from PIL import Image

        import qvac_nb

        pid = self._worker_pid(name)
        c0, w0, t0 = cpu_s(), cpu_s(pid), time.perf_counter()
        pngs = qvac_nb.diffusion(model_id=self.models[name], **p).outputs.result()
        secs = time.perf_counter() - t0
        cpu = cpu_s() - c0 + cpu_s(pid) - w0
        with Image.open(io.BytesIO(pngs[0])) as img:
            return secs, cpu, np.asarray(img.convert("RGB"))

    def _gen_raw(self, name: str, p: dict[str, Any]) -> tuple[float, float, np.ndarray]:
        """The engine call alone: the _engine.Request a worker builds (engine_calls._request), on this thread."""
        from qvac_nb import _engine
        from qvac_nb.worker import engine_calls

        model = self.models[name]
        c0, t0 = cpu_s(), time.perf_counter()
        params = {**RAW_DEFAULTS, **p}
        sampler = params["sampling_method"] or model.context.default_sample_method()
        params["sampling_method"] = sampler
        params["scheduler"] = params["scheduler"] or model.context.default_scheduler(sampler)
        request = types.SimpleNamespace(**params, family=model.family, init_image=None)  # a DiffusionRequest's fields
        pixels = model.context.generate(engine_calls._request(request, model.family), _engine.Job())[0]
        return time.perf_counter() - t0, cpu_s() - c0, pixels

    # ------------------------------------------------------------------ the worker's tick probe
    def _probe_mark(self) -> int | None:
        if not self.probe_path:
            return None
        try:
            return os.path.getsize(self.probe_path)
        except OSError:
            return 0

    def _probe_since(self, mark: int) -> list[tuple[int, str, int]]:
        """(perf_counter_ns, phase, step) of every engine progress callback since `mark` (a file offset)."""
        with open(self.probe_path or "", "rb") as f:
            f.seek(mark)
            lines = f.read().decode().splitlines()
        out = []
        for line in lines:
            ns, phase, step = line.split()
            out.append((int(ns), phase, int(step)))
        return out

    def set_log(self, on: bool) -> None:
        """Collect the engine's log lines (forwarded to the kernel's qvac_nb.engine logger)."""
        log = logging.getLogger("qvac_nb.engine")
        for handler in [h for h in log.handlers if isinstance(h, LogLines)]:
            log.removeHandler(handler)
        self.log_lines = [] if on else None
        if on:
            log.addHandler(LogLines(self.log_lines))
            log.setLevel(logging.INFO)
            log.propagate = False

    # ------------------------------------------------------------------ progress latency
    def latency(self, name: str, params: dict[str, Any], consumer: str) -> dict[str, Any]:
        """Engine callback in the worker -> a consumer of job.progress_stream in this process (the kernel)."""
        import asyncio

        import qvac_nb

        mark = self._probe_mark()
        if mark is None:
            raise RuntimeError(f"latency needs ${PROBE_ENV} (run.py sets it for the 'probe' server)")
        got: list[tuple[int, int]] = []
        job = qvac_nb.diffusion(model_id=self.models[name], **params)

        def read_thread() -> None:
            for tick in job.progress_stream:
                got.append((tick.step, time.perf_counter_ns()))

        async def read_async() -> None:
            async for tick in job.progress_stream:
                got.append((tick.step, time.perf_counter_ns()))

        if consumer == "listener":  # ProgressStream.subscribe: called on the runner's thread as each tick arrives
            job.progress_stream.subscribe(lambda tick: got.append((tick.step, time.perf_counter_ns())))
            job.outputs.result()
        else:
            target = read_thread if consumer == "thread" else lambda: asyncio.run(read_async())
            reader = threading.Thread(target=target)
            reader.start()
            job.outputs.result()
            reader.join()
        raw = [(step, ns) for ns, phase, step in self._probe_since(mark) if phase == "sample" and step > 0]
        seen: dict[int, int] = {}
        for step, ns in got:
            seen.setdefault(step, ns)  # the first tick with this step (the "decode" tick repeats the last)
        lat = [(seen[step] - ns) / 1e6 for step, ns in raw if step in seen]
        return {"latency_ms": lat, "ticks": len(raw)}

    # ------------------------------------------------------------------ memory
    def rss(self) -> dict[str, Any]:
        """Peak RSS: this process; plus, for qvac_nb, each loaded model's worker (sum of the peaks)."""
        own = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        workers = [peak_mb(self._worker_pid(n)) for n, side in self.sides.items() if side == "qvac"]
        pss = self.pss.stop() if self.pss is not None else float("nan")
        self.pss = None
        return {"maxrss_mb": own + sum(workers), "kernel_mb": own, "workers_mb": workers, "peak_pss_mb": pss}

    def unload(self) -> dict[str, Any]:
        """unload_model every qvac_nb model; this process's RSS afterwards (after a gc pass)."""
        import qvac_nb

        for name, side in list(self.sides.items()):
            if side == "qvac":
                qvac_nb.unload_model(model_id=self.models.pop(name))
                del self.sides[name]
        gc.collect()
        return {"rss_mb": rss_now_mb()}

    # ------------------------------------------------------------------ dispatch
    def handle(self, cmd: dict[str, Any]) -> dict[str, Any]:
        op = cmd["op"]
        if op == "load":
            return self.load(cmd["name"], cmd["side"], cmd["files"], cmd.get("config", {}), bool(cmd.get("pss")))
        if op == "gen":
            self.set_log(bool(cmd.get("probe")))
            try:
                return self.gen(cmd["name"], cmd["mode"], cmd["params"], cmd.get("save"))
            finally:
                self.set_log(False)
        if op == "latency":
            return self.latency(cmd["name"], cmd["params"], cmd.get("consumer", "thread"))
        if op == "rss":
            return self.rss()
        if op == "unload":
            return self.unload()
        if op == "info":
            return info()
        raise ValueError(f"unknown op {op!r}")


def info() -> dict[str, Any]:
    from importlib.metadata import version

    out: dict[str, Any] = {"python": sys.version.split()[0], "peer": version("stable-diffusion-cpp-python")}
    try:
        import qvac_nb
        from qvac_nb import engine

        engine.ensure_loaded()  # the library this process would open (the workers open the same one)
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
