"""qvac_nb benchmarks: every figure is a ratio measured within one run, the two sides alternating.

    python benchmarks/run.py [--quick] [--size 256|512] [--repeats N] [--steps N] [--out PATH]

Run it from the repository root with the Python that has qvac_nb installed (the script finds tests/ itself):

    .venv/bin/python benchmarks/run.py   (QVAC_NB_TEST_MODELS picks the test-model cache)

Sections (see RESULTS.md for the latest numbers):
1. end to end: qvac_nb.diffusion (engine in its worker process) vs the peer's StableDiffusion.generate_image
   (identical parameters and threads) and vs qvac_nb's engine call in-process (opening.open_model +
   context.generate) = the cost of the kernel/worker layer;
2. qvac_nb's default settings vs the peer's defaults, and every candidate default's speed and pixel change;
3. progress-tick latency from the engine callback in the worker to a Python consumer in the kernel;
4. bytes and time to deliver a 512x512 result (PNG encode);
5. fresh processes, alternating: generation wall and CPU time, peak RSS (kernel + worker), model load time
   (worker start included; from the page cache and from disk) vs the peer, and the kernel's RSS after
   unload_model; the toy test models and one at SD 1.5's real size (`sd1_full`, 1.4 GB);
6. cache presets: speed and pixel difference against no cache;
7. the worker boundary: a worker's start (spawn to HELLO) and moving a 512x512 result across it.

The peer and qvac_nb share one engine library with process-global callbacks, so each runs in its
own long-lived benchmark process (benchmarks/worker.py; for qvac_nb that process plays the kernel and
starts the model's engine worker) and requests alternate between them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from engine_log import skipped_steps

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
PROMPT = "a lighthouse on a cliff at sunset, oil painting"
# Candidate defaults: qvac_nb model_config keys the engine documents as speed/memory switches.
CANDIDATES = ("flash_attn", "diffusion_fa", "diffusion_conv_direct", "vae_conv_direct", "mmap")
PRESETS = ("slow", "medium", "fast", "ultra")
NOISE = 0.03  # a speed ratio within 3 % of 1 is within this machine's noise
PROBE_ENV = "QVAC_NB_TICK_PROBE"  # qvac_nb.worker.engine_calls.TICK_PROBE_ENV


# ---------------------------------------------------------------------- workers


class Server:
    """One worker process (benchmarks/worker.py) spoken to with JSON lines."""

    def __init__(self, label: str, log_dir: Path, env: dict[str, str] | None = None) -> None:
        self.label = label
        self.log = open(log_dir / f"worker-{label}.log", "ab")  # noqa: SIM115 - closed in close()
        env = {**os.environ, "PYTHONUNBUFFERED": "1", **(env or {})}
        # Its own session, like qvac_nb's engine workers: with the kernel's autogroup scheduling (Linux) a
        # new session gets its own CPU share, so on a shared machine the peer would otherwise get less.
        self.proc = subprocess.Popen([sys.executable, str(HERE / "worker.py")], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=self.log, text=True, env=env, cwd=str(REPO),
                                     start_new_session=os.name == "posix")
        self.ready = self._read()

    def _read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"worker {self.label} died (see {self.log.name})")
        return json.loads(line)

    def call(self, op: str, **kw: Any) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(json.dumps({"op": op, **kw}) + "\n")
        self.proc.stdin.flush()
        reply = self._read()
        if not reply.get("ok"):
            raise RuntimeError(f"worker {self.label} {op}: {reply.get('error')}\n{reply.get('trace', '')}")
        return reply

    def close(self) -> None:
        try:
            if self.proc.poll() is None and self.proc.stdin is not None:
                self.proc.stdin.write(json.dumps({"op": "quit"}) + "\n")
                self.proc.stdin.flush()
            self.proc.wait(timeout=60)
        except (subprocess.TimeoutExpired, BrokenPipeError, OSError):
            self.proc.kill()
            self.proc.wait()
        self.log.close()


# ---------------------------------------------------------------------- helpers


@dataclass
class Row:
    section: str
    figure: str
    measured: str
    goal: str
    met: str  # yes / no / n/a / info
    notes: str = ""


@dataclass
class Report:
    args: argparse.Namespace
    measured: set[str] = field(default_factory=set)
    rows: list[Row] = field(default_factory=list)
    details: list[str] = field(default_factory=list)  # markdown blocks after the summary table
    meta: dict[str, Any] = field(default_factory=dict)

    def row(self, *a: str, **kw: str) -> None:
        self.rows.append(Row(*a, **kw))
        print(f"  -> {a[1]}: {a[2]} ({a[4]})", flush=True)

    def detail(self, title: str, header: Sequence[str], lines: Sequence[Sequence[Any]], note: str = "") -> None:
        text = [f"### {title}", ""]
        if note:
            text += [note, ""]
        text.append("| " + " | ".join(header) + " |")
        text.append("|" + "|".join("---" for _ in header) + "|")
        text += ["| " + " | ".join(str(c) for c in line) + " |" for line in lines]
        self.details.append("\n".join(text))


def med(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def pctl(values: Sequence[float], q: float) -> float:
    return float(np.percentile(np.asarray(values), q)) if values else float("nan")


def diff(a: np.ndarray, b: np.ndarray) -> dict[str, Any]:
    """Pixel difference of two RGB images: identical?, max and mean absolute difference, PSNR."""
    if a.shape != b.shape:
        return {"identical": False, "max": 255, "mean": float("nan"), "psnr": 0.0}
    d = np.abs(a.astype(np.int16) - b.astype(np.int16))
    mse = float((d.astype(np.float64) ** 2).mean())
    psnr = float("inf") if mse == 0 else 10 * np.log10(255**2 / mse)
    return {"identical": bool(d.max() == 0), "max": int(d.max()), "mean": float(d.mean()), "psnr": psnr}


def fmt_diff(d: dict[str, Any]) -> str:
    if d["identical"]:
        return "identical"
    return f"max {d['max']}, mean {d['mean']:.2f}, PSNR {d['psnr']:.1f} dB"


def rotated(items: Sequence[Any], r: int) -> list[Any]:
    """Round r's order: the list rotated by r, so no side always runs first (alternation)."""
    k = r % len(items)
    return list(items[k:]) + list(items[:k])


def test_models(names: Sequence[str]) -> dict[str, Any]:
    sys.path.insert(0, str(REPO / "tests"))
    from testmodels import registry

    return {name: registry.get(name) for name in names}


def files_of(model: Any) -> dict[str, str]:
    return {role: str(path) for role, path in model.files.items()}


def checkpoint_files(model: Any) -> dict[str, str]:
    """The files a plain text-to-image load needs (sd1_full also carries a ControlNet for the feature tests)."""
    return {role: path for role, path in files_of(model).items() if role != "control_net"}


def side_config(a: argparse.Namespace, side: str) -> dict[str, Any]:
    """The load config of one side: the same threads; the peer's rng named (qvac_nb's default is cuda)."""
    return {"threads": a.threads, **({"rng": "cuda"} if side == "peer" else {})}


def fresh_rounds(b: Bench, label: str, measure: Callable[[Server, str, dict[str, Any]], float]
                 ) -> dict[str, list[float]]:
    """`measure(server, side, config)` once per side and round, each in a new benchmark process, alternating."""
    got: dict[str, list[float]] = {"peer": [], "qvac": []}
    for r in range(b.args.repeats):
        for side in rotated(["peer", "qvac"], r):
            server = Server(f"{label}-{side}", b.tmp)
            try:
                got[side].append(measure(server, side, side_config(b.args, side)))
            finally:
                server.close()
    return got


def peak_pss(server: Server, side: str, cfg: dict[str, Any], *, name: str, files: dict[str, str],
             params: dict[str, Any]) -> float:
    """Load and one generation with PSS sampled: reading /proc/<pid>/smaps_rollup holds the sampled process's
    memory-map lock and slowed its generation by 20-30 % when done in the timed rounds, hence rounds of its own."""
    server.call("load", name=name, side=side, files=files, config=cfg, pss=True)
    server.call("gen", name=name, mode=side, params=params)
    return float(server.call("rss")["peak_pss_mb"])


def cold_load(server: Server, side: str, cfg: dict[str, Any], *, name: str, files: dict[str, str]) -> float:
    """A load with the model's files evicted from the page cache first, as on a notebook's first load after a
    download or a reboot (the engine then reads from disk)."""
    evict(list(files.values()))
    return warm_load(server, side, cfg, name=name, files=files)


def warm_load(server: Server, side: str, cfg: dict[str, Any], *, name: str, files: dict[str, str]) -> float:
    """A load with the model's files in the page cache (read once before, by an earlier round or the build)."""
    return float(server.call("load", name=name, side=side, files=files, config=cfg)["load_s"])


def round_ratios(got: dict[str, list[float]]) -> list[float]:
    """qvac_nb / peer for each round of a {side: [value per round]}."""
    return [q / p for q, p in zip(got["qvac"], got["peer"], strict=True)]


def round_range(ratios: list[float]) -> str:
    return f"rounds {min(ratios):.3f}-{max(ratios):.3f}"


def load_pss(server: Server, side: str, cfg: dict[str, Any], *, name: str, files: dict[str, str]) -> float:
    """The peak PSS (kernel + worker for qvac_nb) from the start of a load to its end."""
    server.call("load", name=name, side=side, files=files, config=cfg, pss=True)
    return float(server.call("rss")["peak_pss_mb"])


def evict(paths: Sequence[str]) -> None:
    """Drop the files' pages from the page cache, so the next read comes from disk (a first load)."""
    for path in paths:
        fd = os.open(path, os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
        finally:
            os.close(fd)


def gen_params(args: argparse.Namespace, family: str, size: int, steps: int, seed: int = 42) -> dict[str, Any]:
    """Identical generation parameters for both sides (eta explicit: the engine's euler_a default is 1)."""
    p: dict[str, Any] = {"prompt": PROMPT, "negative_prompt": "", "width": size, "height": size, "steps": steps,
                         "seed": seed, "eta": 0.0}
    if family == "flux2":
        p.update(cfg_scale=1.0, guidance=3.5, sampling_method="euler", scheduler="discrete")
    else:
        # --quick checks the harness, not the figures: cfg 1 (one text encoding and one U-Net pass a step) halves
        # every generation it makes.
        p.update(cfg_scale=1.0 if args.quick else 7.0, sampling_method="euler_a", scheduler="discrete")
    return p


class Bench:
    def __init__(self, args: argparse.Namespace, report: Report, tmp: Path) -> None:
        self.args = args
        self.report = report
        self.tmp = tmp
        self.servers: dict[str, Server] = {}
        self.loaded: set[tuple[str, str]] = set()
        self._n = 0

    def server(self, label: str) -> Server:
        if label not in self.servers:
            # The "probe" server's model workers log every engine progress callback (sections 3 and 6).
            env = {PROBE_ENV: str(self.tmp / "tick-probe.txt")} if label == "probe" else None
            self.servers[label] = Server(label, self.tmp, env)
        return self.servers[label]

    def load(self, label: str, name: str, side: str, model: Any, config: dict[str, Any]) -> float:
        key = (label, name)
        if key in self.loaded:
            return 0.0
        reply = self.server(label).call("load", name=name, side=side, files=files_of(model), config=config)
        self.loaded.add(key)
        return float(reply["load_s"])

    def gen(self, label: str, name: str, mode: str, params: dict[str, Any], probe: bool = False
            ) -> tuple[dict[str, Any], np.ndarray]:
        self._n += 1
        path = self.tmp / f"img{self._n}.npy"
        reply = self.server(label).call("gen", name=name, mode=mode, params=params, save=str(path), probe=probe)
        pixels = np.load(path)
        path.unlink()
        return reply, pixels

    def warm(self, label: str, name: str, mode: str, params: dict[str, Any]) -> None:
        """An untimed 64x64 1-step generation: pages weights in, first-call allocations (skipped by --quick)."""
        if not self.args.quick:
            self.gen(label, name, mode, {**params, "width": 64, "height": 64, "steps": 1})

    def close(self) -> None:
        for server in self.servers.values():
            server.close()
        self.servers.clear()
        self.loaded.clear()


# ---------------------------------------------------------------------- 1. end to end


Side = tuple[str, str, str]  # (worker label, model name in that worker, mode: peer | qvac | raw)


@dataclass
class Block:
    times: dict[str, list[float]]  # "first" / "second" side
    cpu: dict[str, list[float]]  # CPU seconds (qvac: kernel + worker)
    ratios: list[float]  # per round: first side / second side, from adjacent runs
    images: dict[str, list[np.ndarray]]


def alternate(b: Bench, first: Side, second: Side, params: dict[str, Any], repeats: int, tag: str) -> Block:
    """A B, B A, A B ...: each side waits exactly one run of the other between its own runs.

    An idle process (or an idle model's memory) is slower on its next run on this kind of machine
    (memory reclaimed while idle), so sides are only ever compared inside such a block, after one
    untimed run each.
    """
    keys = ["first", "second"]
    out = Block({k: [] for k in keys}, {k: [] for k in keys}, [], {k: [] for k in keys})
    if not b.args.quick:
        for side in (first, second):
            b.gen(*side, params)
    for r in range(repeats):
        t: dict[str, float] = {}
        for side, key in (zip((first, second), keys, strict=True) if r % 2 == 0
                          else zip((second, first), keys[::-1], strict=True)):
            reply, px = b.gen(*side, params)
            t[key] = reply["s"]
            out.times[key].append(reply["s"])
            out.cpu[key].append(reply["cpu_s"])
            out.images[key].append(px)
        out.ratios.append(t[keys[0]] / t[keys[1]])
    pair = f"{first[0]}:{first[2]} / {second[0]}:{second[2]}"
    print(f"  [{tag}] {pair}: " + ", ".join(f"{x:.3f}" for x in out.ratios), flush=True)
    return out


def section_end_to_end(b: Bench, models: dict[str, Any]) -> None:
    a = b.args
    for name in a.families:
        model = models[name]
        params = gen_params(a, model.family, a.size, a.steps)
        cfg = {"threads": a.threads}
        b.load("qvac", name, "qvac", model, cfg)
        b.load("qvac", f"raw:{name}", "raw", model, cfg)
        b.load("peer", name, "peer", model, {**cfg, "rng": "cuda"})
        qvac, raw, peer = ("qvac", name, "qvac"), ("qvac", f"raw:{name}", "raw"), ("peer", name, "peer")
        vs_peer = alternate(b, qvac, peer, params, a.repeats, f"1 {name}")
        vs_raw = alternate(b, qvac, raw, params, a.repeats, f"1 {name}")
        control = ""
        if a.control and name == "sd1":
            # A/A control: qvac_nb against itself in another process shows this machine's process-to-process noise.
            b.load("qvac-2", name, "qvac", model, cfg)
            aa = alternate(b, qvac, ("qvac-2", name, "qvac"), params, a.repeats, f"1 {name} A/A").ratios
            control = f"; A/A control (qvac_nb vs itself, another process) {med(aa):.3f} ({min(aa):.3f}-{max(aa):.3f})"
        q_imgs, p_imgs = vs_peer.images["first"], vs_peer.images["second"]
        d_peer = [diff(x, y) for x, y in zip(q_imgs, p_imgs, strict=True)]
        same_peer = all(d["identical"] for d in d_peer)
        same_raw = all(diff(x, y)["identical"]
                       for x, y in zip(vs_raw.images["first"], vs_raw.images["second"], strict=True))
        repeatable = all(diff(q_imgs[0], x)["identical"] for x in q_imgs + vs_raw.images["first"])
        overhead_ms = med([(x - y) * 1000 for x, y in zip(vs_raw.times["first"], vs_raw.times["second"], strict=True)])
        label = f"{name} {a.size}x{a.size}, {a.steps} step(s), {a.threads} threads"
        r_peer = med(vs_peer.ratios)
        cpu_peer = med([q / p for q, p in zip(vs_peer.cpu["first"], vs_peer.cpu["second"], strict=True)])
        cpu_raw = med([q / p for q, p in zip(vs_raw.cpu["first"], vs_raw.cpu["second"], strict=True)])
        b.report.row("1", f"end-to-end qvac_nb / peer ({label})", f"{r_peer:.3f}", "<= 1.01",
                     "yes" if r_peer <= 1.01 else "no",
                     f"pixels {'identical' if same_peer else 'DIFFER: ' + fmt_diff(d_peer[0])} to the peer; "
                     f"rounds {min(vs_peer.ratios):.3f}-{max(vs_peer.ratios):.3f}; CPU time (kernel + worker / peer) "
                     f"{cpu_peer:.3f}{control}")
        b.report.row("1", f"end-to-end qvac_nb / in-process engine call ({label})", f"{med(vs_raw.ratios):.3f}",
                     "info (kernel/worker layer)", "info",
                     f"CPU time {cpu_raw:.3f}; "
                     f"median layer cost {overhead_ms:+.1f} ms per image (rounds {min(vs_raw.ratios):.3f}-"
                     f"{max(vs_raw.ratios):.3f}); pixels {'identical' if same_raw else 'DIFFER'}; repeat runs "
                     f"{'identical' if repeatable else 'DIFFER'}")
        rows = []
        for i in range(a.repeats):
            rows.append([i + 1, f"{vs_peer.times['second'][i]:.3f}", f"{vs_peer.times['first'][i]:.3f}",
                         f"{vs_peer.ratios[i]:.3f}", f"{vs_raw.times['second'][i]:.3f}",
                         f"{vs_raw.times['first'][i]:.3f}", f"{vs_raw.ratios[i]:.3f}"])
        b.report.detail(
            f"1. End to end, {name} ({label})",
            ["round", "peer s", "qvac_nb s", "qvac_nb / peer", "raw s", "qvac_nb s", "qvac_nb / raw"], rows,
            note="peer = StableDiffusion.generate_image in its own process; qvac_nb = qvac_nb.diffusion(...).outputs"
                 ".result() in another (the kernel; the engine runs in the model's worker process); raw = the same "
                 "engine call in-process (qvac_nb.worker.opening.open_model, context.generate with the "
                 "request engine_calls._request builds) in qvac_nb's kernel process. Each pair of columns is "
                 "one alternating block (one untimed run each first). Identical parameters: "
                 f"{json.dumps({k: v for k, v in params.items() if k != 'prompt'})}, rng cuda.",
        )


def section_defaults(b: Bench, models: dict[str, Any]) -> dict[str, Any]:
    a = b.args
    name = "sd1"
    model = models[name]
    params = gen_params(a, model.family, a.size, a.steps)
    base = "qvac_nb now"  # qvac_nb.load_model(path): threads = physical cores, engine defaults otherwise
    configs: dict[str, tuple[str, dict[str, Any]]] = {base: ("qvac", {}), "peer defaults": ("peer", {})}
    for cand in a.candidates:
        configs[f"+{cand}"] = ("qvac", {cand: True})

    def side(key: str) -> Side:
        label, cfg = configs[key]
        b.load(label, f"def:{key}", label, model, cfg)  # StableDiffusion(model_path) alone for the peer
        return (label, f"def:{key}", label)

    rel: dict[str, list[float]] = {}
    images: dict[str, np.ndarray] = {}
    for key in configs:
        # --quick leaves out the peer's defaults here: 2b times exactly that pair (or the peer against the
        # recommended config) with the same code.
        if key == base or (a.quick and key == "peer defaults"):
            continue
        block = alternate(b, side(key), side(base), params, a.repeats, f"2a {key}")
        rel[key] = block.ratios
        images[key], images[base] = block.images["first"][-1], block.images["second"][-1]
    rows = []
    recommended: dict[str, Any] = {}
    for key, ratios in rel.items():
        d = diff(images[key], images[base])
        keep = key.startswith("+") and d["identical"] and med(ratios) < 1 - NOISE
        if keep:
            recommended[key[1:]] = True
        rows.append([key, f"{med(ratios):.3f}", f"{min(ratios):.3f}-{max(ratios):.3f}", fmt_diff(d),
                     "adopt" if keep else ("—" if not key.startswith("+") else "no")])
    b.report.row("2", f"candidate defaults (time / qvac_nb now, sd1 {a.size}x{a.size})",
                 ", ".join(f"{k[1:]} {med(v):.2f}" for k, v in rel.items() if k.startswith("+")),
                 "adopt if faster and pixels identical", "info", f"adopt: {', '.join(recommended) or 'none'} (see 2a)")
    b.report.detail(
        f"2a. Candidate defaults, sd1 {a.size}x{a.size}, {a.steps} step(s): time / qvac_nb's current default",
        ["config", "time ratio (median)", "rounds", "pixels vs qvac_nb now", "verdict"], rows,
        note="Each candidate alternates with qvac_nb's current default in its own block. A candidate is adopted "
             f"when it leaves the image identical and is faster by more than the noise ({NOISE:.0%}). qvac_nb now = "
             f"threads = physical cores ({a.physical} here). The peer's default n_threads=-1 means "
             f"max(os.cpu_count() // 2, 1) = {max((os.cpu_count() or 2) // 2, 1)} here.",
    )
    best = base
    if recommended:
        best = "qvac_nb recommended"
        configs[best] = ("qvac", dict(recommended))
    block = alternate(b, side("peer defaults"), side(best), params, a.repeats, "2b")
    speedups = block.ratios
    d = diff(block.images["second"][-1], block.images["first"][-1])
    b.report.row("2", f"qvac_nb defaults vs peer defaults (sd1 {a.size}x{a.size}, {a.steps} step(s))",
                 f"{med(speedups):.2f}x faster", ">= 1.3x", "yes" if med(speedups) >= 1.3 else "no",
                 f"{best}: {json.dumps(recommended) if recommended else 'threads = physical cores, no extra switch'}; "
                 f"rounds {min(speedups):.2f}-{max(speedups):.2f}; pixels vs peer default: {fmt_diff(d)}")
    return recommended


# ---------------------------------------------------------------------- 3. progress latency


def section_latency(b: Bench, models: dict[str, Any]) -> None:
    a = b.args
    model = models["sd1"]
    b.load("probe", "sd1", "qvac", model, {"threads": a.threads})
    params = gen_params(a, model.family, 64, a.latency_steps)
    lat: dict[str, list[float]] = {"thread": [], "async": [], "listener": []}
    for r in range(1 if a.repeats < 5 else 2):
        for consumer in rotated(list(lat), r):
            reply = b.server("probe").call("latency", name="sd1", params=params, consumer=consumer)
            lat[consumer] += reply["latency_ms"]
    rows = []
    for consumer, values in lat.items():
        p50, p95 = pctl(values, 50), pctl(values, 95)
        rows.append([consumer, len(values), f"{p50:.2f}", f"{p95:.2f}", f"{max(values):.2f}"])
        where = {"thread": "a thread iterating job.progress_stream", "async": "`async for` over progress_stream",
                 "listener": "progress_stream.subscribe listener"}[consumer]
        b.report.row("3", f"progress tick latency, engine callback (worker) -> {where} (kernel)",
                     f"p50 {p50:.2f} ms, p95 {p95:.2f} ms",
                     "p95 <= 10 ms", "yes" if p95 <= 10 else "no", f"{len(values)} ticks, max {max(values):.2f} ms")
    rows += _browser_latency(b, model)
    b.report.detail(
        "3. Progress-tick latency (ms)", ["consumer", "ticks", "p50", "p95", "max"], rows,
        note="From the entry of the engine's progress callback in the model's worker process (perf_counter_ns "
             "written by qvac_nb.worker.engine_calls when $QVAC_NB_TICK_PROBE is set) to the consumer in the kernel "
             "process receiving the tick (perf_counter_ns there; CLOCK_MONOTONIC, one clock for both processes): "
             "the worker's send, the socket, the kernel's runner thread and the stream. sd1 64x64, "
             f"{a.latency_steps} steps, {a.threads} engine threads busy on the same cores. The hop from the engine's C "
             "callback into Python (taking the GIL) is before the first timestamp and not included. The browser row "
             "starts later, at ProgressStream.push in the kernel.",
    )


def _browser_latency(b: Bench, model: Any) -> list[list[Any]]:
    """Engine callback -> the Studio's progress label in Chromium (benchmarks/browser_latency.py)."""
    import browser_latency

    a = b.args
    what = "progress tick latency, ProgressStream.push (kernel) -> the Studio's label in Chromium"
    missing = browser_latency.available()
    if missing:
        b.report.row("3", what, "not measured", "info", "n/a", missing)
        return []
    size = 64 if a.quick else a.size
    got = browser_latency.measure(model, size=size, steps=a.latency_steps, threads=a.threads,
                                  tmp=b.tmp / "browser")
    values = got["latency_ms"]
    if not values:
        raise RuntimeError(f"the Studio's label showed none of the {got['ticks']} sampling ticks")
    p50, p95 = pctl(values, 50), pctl(values, 95)
    b.report.row("3", what, f"p50 {p50:.2f} ms, p95 {p95:.2f} ms", "info (goal is to Python)", "info",
                 f"{len(values)} of {got['ticks']} ticks shown ({got['merged']} merged by the Studio's 0.1 s "
                 f"throttle), sd1 {size}x{size}; generation {got['generate_s']:.1f} s")
    return [[f"browser (Studio label, {size}x{size})", len(values), f"{p50:.2f}", f"{p95:.2f}", f"{max(values):.2f}"]]


# ---------------------------------------------------------------------- 4. result delivery


def section_delivery(b: Bench) -> None:
    from qvac_nb.png import encode_png

    rng = np.random.default_rng(1)
    images = {"photo-like (gradient + mild grain)": _photo_like(),
              "noise (worst case, random weights)": rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)}
    params = {"prompt": PROMPT, "width": 512, "height": 512, "steps": 20, "seed": 42}
    rows = []
    reps = 3 if b.args.quick else 15
    for label, px in images.items():
        secs = []
        for _ in range(reps):
            t0 = time.perf_counter()
            png = encode_png(px, params)
            secs.append(time.perf_counter() - t0)
        rows.append([label, f"{len(png):,}", f"{med(secs) * 1000:.1f}", f"{len(png) * 4 // 3:,}"])
        b.report.row("4", f"512x512 PNG, {label}", f"{len(png) / 1024:.0f} KiB, encode {med(secs) * 1000:.1f} ms",
                     "PNG bytes once, binary", "info", f"raw RGB is {px.nbytes / 1024:.0f} KiB")
    widget = _widget_bytes(images["photo-like (gradient + mild grain)"], params)
    b.report.row("4", "bytes a widget message carries for one 512x512 result", widget["measured"],
                 "the PNG bytes once, binary", widget["met"], widget["notes"])
    b.report.detail("4. Delivering a 512x512 result", ["image", "PNG bytes", "encode ms (median)",
                                                      "bytes if base64 in JSON"], rows,
                    note="qvac_nb.png.encode_png (zlib level 1, parameters embedded). Binary transfer sends the PNG "
                         "bytes as a Jupyter comm buffer; base64 inside the JSON would add a third.")


def _widget_bytes(pixels: np.ndarray, params: dict[str, Any]) -> dict[str, str]:
    """Bytes the widget sends for a result, when qvac_nb.widgets exists (built in parallel)."""
    import importlib.util

    from qvac_nb.png import encode_png

    png = encode_png(pixels, params)
    if importlib.util.find_spec("qvac_nb.widgets") is None:
        return {"measured": "n/a (qvac_nb.widgets not present)", "met": "n/a",
                "notes": f"protocol to check: one binary buffer of {len(png):,} PNG bytes per result, no base64 copy"}
    try:
        return _measure_widget(png)
    except Exception as exc:  # noqa: BLE001 - the widget is another engineer's moving target
        return {"measured": "not measured", "met": "n/a", "notes": f"widget probe failed: {type(exc).__name__}: {exc}"}


def _measure_widget(png: bytes) -> dict[str, str]:
    """A result through qvac_nb.widgets.Gallery (JobView shares its image store): count the comm's bytes."""
    from qvac_nb.widgets import Gallery

    gallery = Gallery()
    sent: list[tuple[Any, list[bytes]]] = []
    original = gallery.comm.send

    def capture(data: Any = None, metadata: Any = None, buffers: Any = None, **kw: Any) -> Any:
        sent.append((data, [bytes(x) for x in buffers or []]))
        return original(data=data, metadata=metadata, buffers=buffers, **kw)

    gallery.comm.send = capture
    t0 = time.perf_counter()
    gallery.add(png)  # what a finished job does: a synced entry with a thumbnail
    add_ms = (time.perf_counter() - t0) * 1000
    state = list(sent)
    sent.clear()
    t0 = time.perf_counter()
    gallery._on_msg(gallery, {"type": "image", "id": gallery.images[-1]["id"]}, [])  # the front-end asks for it
    view_ms = (time.perf_counter() - t0) * 1000
    view = list(sent)

    def size(msgs: list[tuple[Any, list[bytes]]]) -> tuple[int, int]:
        return len(json.dumps([d for d, _ in msgs], default=str)), sum(len(x) for _, bufs in msgs for x in bufs)

    (state_json, state_bin), (view_json, view_bin) = size(state), size(view)
    copies = sum(1 for _, bufs in state + view for x in bufs if x == png)
    # A PNG smuggled into JSON (base64) would make a JSON part as large as the image.
    b64 = max(state_json, view_json) > len(png) // 2
    met = "yes" if copies == 1 and not b64 else "no"
    return {"measured": f"{view_bin:,} B binary + {view_json} B JSON on view; sync {state_bin:,} B "
                        f"binary + {state_json:,} B JSON", "met": met,
            "notes": f"PNG copies sent: {copies}; sync = JPEG thumbnail + params ({add_ms:.0f} ms kernel-side); "
                     f"full PNG only when the front-end asks ({view_ms:.1f} ms)"}


# ---------------------------------------------------------------------- 5. memory and load time


def section_memory(b: Bench, models: dict[str, Any]) -> None:
    """Fresh processes, alternating: load (worker start included), one generation, peak RSS, unload."""
    a = b.args
    rows = []
    keys = ("load", "first_cell", "wall", "cpu", "peak", "kernel_peak", "delta", "unload_delta")
    timed_loads: dict[str, tuple[dict[str, list[float]], dict[str, list[float]]]] = {}
    for name in a.fresh_families:
        model = models[name]
        files = checkpoint_files(model)
        params = gen_params(a, model.family, a.size, a.steps)
        res: dict[str, dict[str, list[float]]] = {s: {k: [] for k in keys} for s in ("peer", "qvac")}
        images: dict[str, list[np.ndarray]] = {"peer": [], "qvac": []}
        for r in range(a.repeats):
            for side in rotated(["peer", "qvac"], r):
                cfg = side_config(a, side)
                server = Server(f"fresh-{side}", b.tmp)
                save = b.tmp / f"fresh-{side}.npy"
                try:
                    loaded = server.call("load", name=name, side=side, files=files, config=cfg)
                    gen = server.call("gen", name=name, mode=side, params=params, save=str(save))
                    rss = server.call("rss")
                    after = server.call("unload")["rss_mb"] if side == "qvac" else float("nan")
                finally:
                    server.close()
                images[side].append(np.load(save))
                save.unlink()
                got = {"load": loaded["load_s"], "first_cell": loaded["import_s"] + loaded["load_s"],
                       "wall": gen["s"], "cpu": gen["cpu_s"], "peak": rss["maxrss_mb"],
                       "kernel_peak": rss.get("kernel_mb", rss["maxrss_mb"]),
                       "delta": rss["maxrss_mb"] - loaded["rss_before_mb"],
                       "unload_delta": after - loaded["rss_before_mb"]}
                for k in keys:
                    res[side][k].append(got[k])
            print(f"  [5 {name}] round {r + 1}: " + ", ".join(
                f"{s} load {res[s]['load'][-1]:.2f}s gen {res[s]['wall'][-1]:.2f}s cpu {res[s]['cpu'][-1]:.2f}s "
                f"peak {res[s]['peak'][-1]:.0f}MB" for s in res), flush=True)

        # Memory rounds of their own (sampling PSS slows the sampled process), then load-from-disk rounds.
        pss_rounds = fresh_rounds(b, "mem", partial(peak_pss, name=name, files=files, params=params))
        cold_rounds = fresh_rounds(b, "cold", partial(cold_load, name=name, files=files))
        for side in ("peer", "qvac"):
            res[side]["pss"], res[side]["cold"] = pss_rounds[side], cold_rounds[side]
        timed_loads[name] = ({side: res[side]["load"] for side in res}, cold_rounds)

        def ratio(k: str, res: dict[str, dict[str, list[float]]] = res) -> list[float]:
            return round_ratios({side: res[side][k] for side in res})

        wall, cpu, load, peak, pss = ratio("wall"), ratio("cpu"), ratio("load"), ratio("peak"), ratio("pss")
        cold = ratio("cold")
        first_cell = ratio("first_cell")
        same = all(diff(q, p)["identical"] for q, p in zip(images["qvac"], images["peer"], strict=True))
        label = f"{name}, {a.size}x{a.size}, {a.steps} step(s), {a.threads} threads, fresh processes"
        pix = "pixels identical to the peer" if same else \
            f"pixels DIFFER: {fmt_diff(diff(images['qvac'][0], images['peer'][0]))}"
        b.report.row("5", f"generation wall time qvac_nb / peer ({label})", f"{med(wall):.3f}", "<= 1.01",
                     "yes" if med(wall) <= 1.01 else "no",
                     f"{round_range(wall)}; median {med(res['qvac']['wall']):.2f} s vs "
                     f"{med(res['peer']['wall']):.2f} s; {pix}")
        b.report.row("5", f"generation CPU time qvac_nb (kernel + worker) / peer ({label})", f"{med(cpu):.3f}",
                     "<= 1.01", "yes" if med(cpu) <= 1.01 else "no",
                     f"{round_range(cpu)}; median {med(res['qvac']['cpu']):.2f} s vs {med(res['peer']['cpu']):.2f} s")
        b.report.row("5", f"peak memory kernel + worker / peer: peak of the PSS sum ({label})",
                     f"{(med(pss) - 1) * 100:+.1f} %", "<= +5 %", "yes" if med(pss) <= 1.05 else "no",
                     f"median {med(res['qvac']['pss']):.0f} MB vs {med(res['peer']['pss']):.0f} MB "
                     f"(+{med(res['qvac']['pss']) - med(res['peer']['pss']):.0f} MB); sampled every 50 ms")
        b.report.row("5", f"sum of the peak RSS of kernel and worker / peer's peak RSS ({label})",
                     f"{(med(peak) - 1) * 100:+.1f} %", "info (upper bound)", "info",
                     f"median {med(res['qvac']['peak']):.0f} MB (kernel {med(res['qvac']['kernel_peak']):.0f} MB) "
                     f"vs {med(res['peer']['peak']):.0f} MB; shared pages counted in both processes")
        b.report.row("5", f"model load time, worker start included, qvac_nb / peer ({label})", f"x{med(load):.3f}",
                     "<= x1.05", "yes" if med(load) <= 1.05 else "no",
                     f"median {med(res['qvac']['load']):.2f} s vs {med(res['peer']['load']):.2f} s; "
                     f"{round_range(load)}; "
                     "files in the page cache; each library imported before the timer")
        b.report.row("5", f"model load time from disk (page cache evicted), worker start included, qvac_nb / peer "
                          f"({label})", f"x{med(cold):.3f}", "<= x1.05", "yes" if med(cold) <= 1.05 else "no",
                     f"median {med(res['qvac']['cold']):.2f} s vs {med(res['peer']['cold']):.2f} s; "
                     f"{round_range(cold)}; "
                     "the first load after a download or reboot")
        b.report.row("5", f"first cell: import + load, qvac_nb / peer ({label})", f"x{med(first_cell):.3f}",
                     "info", "info",
                     f"median {med(res['qvac']['first_cell']):.2f} s vs {med(res['peer']['first_cell']):.2f} s; "
                     f"{round_range(first_cell)}; "
                     "`import qvac_nb` + `load_model` vs `import stable_diffusion_cpp` + load")
        unload = med(res["qvac"]["unload_delta"])
        b.report.row("5", f"kernel RSS after unload_model - before load_model ({name})", f"{unload:+.1f} MB",
                     "<= 50 MB", "yes" if abs(unload) <= 50 else "no",
                     f"max {max(res['qvac']['unload_delta']):+.1f} MB over {a.repeats} process(es)")
        for side in ("peer", "qvac"):
            rows.append([name, side, f"{med(res[side]['load']):.3f}", f"{med(res[side]['cold']):.3f}",
                         f"{med(res[side]['first_cell']):.3f}",
                         f"{med(res[side]['wall']):.3f}",
                         f"{med(res[side]['cpu']):.3f}", f"{med(res[side]['pss']):.0f}",
                         f"{med(res[side]['peak']):.0f}", f"{med(res[side]['delta']):.0f}",
                         f"{med(res[side]['unload_delta']):+.1f}" if side == "qvac" else "—"])
    b.report.detail("5. Fresh processes: generation time, memory, load time (alternating)",
                    ["model", "side", "load s", "load from disk s", "import + load s", "generation s",
                     "generation CPU s",
                     "peak PSS sum MB",
                     "peak RSS (sum of peaks) MB", "peak - RSS before load MB",
                     "kernel RSS after unload - before load MB"], rows,
                    note=f"Medians over {a.repeats} round(s); each sample is a new benchmark process: import (timed "
                         "apart: `from stable_diffusion_cpp import StableDiffusion`, which opens the engine library, "
                         "vs `import qvac_nb` and `qvac_nb.load_model`, which imports the API on first use), load "
                         f"(timed; for qvac_nb `load_model`, which starts the model's worker process), one "
                         f"{a.size}x{a.size} {a.steps}-step generation (wall and CPU time), peak RSS, then for qvac_nb "
                         "unload_model and the kernel's RSS. qvac_nb's figures are the kernel (the benchmark process) "
                         "plus its worker: CPU = the kernel's process_time + the worker's user+system time (psutil); "
                         "peak PSS sum = the peak over 50 ms samples of the kernel's PSS + the worker's PSS from the "
                         "start of the load (shared pages counted once: what the two processes need together), "
                         "taken in separate rounds (load + one generation) since sampling slows the sampled process; "
                         "peak RSS = the kernel's ru_maxrss + the worker's VmHWM (a sum of peaks: an upper bound). "
                         "The peer: its process's CPU time and ru_maxrss, with n_threads and rng cuda. Ratios are "
                         "taken per round, then the median. Load from disk: separate rounds (load only) with the "
                         "model files evicted from the page cache (posix_fadvise DONTNEED) just before the load. "
                         "The engine looks at its tensor-loading threads every 200 ms and waits for them "
                         "only once they have taken the file's last tensor, so load times move in steps of up to "
                         "200 ms per file (both sides). sd1_full is SD 1.5's real layout with "
                         "random weights (1.4 GB, q4_0); sd1 and flux2 are the toy test models.")
    load_only(b, models, timed_loads)


def load_only(b: Bench, models: dict[str, Any],
              timed_loads: dict[str, tuple[dict[str, list[float]], dict[str, list[float]]]]) -> None:
    """Section 5's load figures for models too slow to generate with in every round (SDXL at its real size):
    alternating fresh processes, loads only. Under --quick, a model the rounds above have just loaded in fresh
    processes (from the page cache, then from disk; --quick's sd1) keeps those load times and gets the PSS rounds."""
    rows = []
    reused = []
    for name in b.args.load_families:
        files = checkpoint_files(models[name])
        size_gb = sum(os.path.getsize(f) for f in files.values()) / 1e9
        if b.args.quick and name in timed_loads:
            warm, cold = timed_loads[name]
            reused.append(name)
        else:
            warm = fresh_rounds(b, "load", partial(warm_load, name=name, files=files))
            cold = fresh_rounds(b, "cold", partial(cold_load, name=name, files=files))
        pss = fresh_rounds(b, "mem", partial(load_pss, name=name, files=files))
        label = f"{name}, {size_gb:.1f} GB, {b.args.threads} threads, fresh processes, load only"
        for what, got, note in (("model load time, worker start included", warm, "files in the page cache"),
                                ("model load time from disk (page cache evicted), worker start included", cold,
                                 "the first load after a download or reboot")):
            ratios = round_ratios(got)
            b.report.row("5", f"{what}, qvac_nb / peer ({label})", f"x{med(ratios):.3f}", "<= x1.05",
                         "yes" if med(ratios) <= 1.05 else "no",
                         f"median {med(got['qvac']):.2f} s vs {med(got['peer']):.2f} s; "
                         f"{round_range(ratios)}; {note}")
        ratios = round_ratios(pss)
        b.report.row("5", f"peak memory during the load, kernel + worker / peer: peak of the PSS sum ({label})",
                     f"{(med(ratios) - 1) * 100:+.1f} %", "<= +5 %", "yes" if med(ratios) <= 1.05 else "no",
                     f"median {med(pss['qvac']):.0f} MB vs {med(pss['peer']):.0f} MB "
                     f"(+{med(pss['qvac']) - med(pss['peer']):.0f} MB); sampled every 50 ms")
        for side in ("peer", "qvac"):
            rows.append([name, side, f"{med(warm[side]):.3f}", f"{med(cold[side]):.3f}", f"{med(pss[side]):.0f}"])
    if rows:
        b.report.detail("5b. Fresh processes, loads only (models too slow to generate with every round)",
                        ["model", "side", "load s", "load from disk s", "peak PSS sum during the load MB"], rows,
                        note=f"Medians over {b.args.repeats} round(s), alternating sides, each a new benchmark "
                             "process; as in 5, but without a generation. sdxl_full is SDXL base's real layout "
                             "(2.6 B-parameter U-Net, CLIP ViT-L and bigG, the full autoencoder) with random "
                             "weights in q4_0."
                             + (f" --quick: the load times of {', '.join(reused)} are section 5's." if reused else ""))


# ---------------------------------------------------------------------- 7. the worker boundary


def section_worker(b: Bench) -> None:
    """A worker's start (spawn to HELLO) and a 512x512 result moved across a Connection."""
    import socket
    import threading
    from multiprocessing.connection import Connection

    from qvac_nb.png import encode_png
    from qvac_nb.worker.process import WorkerProcess

    starts = []
    for i in range(2 if b.args.quick else 7):
        t0 = time.perf_counter()
        worker = WorkerProcess(f"bench-{i}")
        try:
            worker.wait_ready()
            starts.append(time.perf_counter() - t0)
        finally:
            worker.kill()
    b.report.row("7", "worker start: spawn `python -m qvac_nb.worker` to its HELLO",
                 f"p50 {med(starts) * 1000:.0f} ms", "info (part of load_model)", "info",
                 f"{len(starts)} starts, {min(starts) * 1000:.0f}-{max(starts) * 1000:.0f} ms; WorkerProcess(label)."
                 "wait_ready(): interpreter start, the worker modules, the engine library opened "
                 "(numpy and PIL import on a thread meanwhile)")
    png = encode_png(_photo_like(), {"prompt": PROMPT, "width": 512, "height": 512, "steps": 20, "seed": 42})
    left, right = socket.socketpair()
    sender, receiver = Connection(left.detach()), Connection(right.detach())
    sent_at: list[int] = []
    secs: list[float] = []
    reps = 5 if b.args.quick else 50

    def send_all() -> None:
        for _ in range(reps):
            sent_at.append(time.perf_counter_ns())
            sender.send_bytes(png)

    thread = threading.Thread(target=send_all)
    try:
        thread.start()
        for i in range(reps):
            data = receiver.recv_bytes()
            secs.append((time.perf_counter_ns() - sent_at[i]) / 1e9)
            assert len(data) == len(png)
            time.sleep(0.005)  # let the next send start from an empty socket, like one result at a time
    finally:
        thread.join()
        sender.close()
        receiver.close()
    b.report.row("7", f"result transfer worker -> kernel, one 512x512 PNG ({len(png) / 1024:.0f} KiB)",
                 f"p50 {med(secs) * 1000:.2f} ms, p95 {pctl(secs, 95) * 1000:.2f} ms",
                 "info (one pipe write per image)", "info",
                 f"{reps} loopbacks through Connection.send_bytes/recv_bytes over a Unix socket pair (what the "
                 f"worker's RESULT uses), send start to bytes received; {len(png) / med(secs) / 2**20:.0f} MiB/s")
    b.report.detail("7. The worker boundary", ["what", "n", "p50 ms", "p95 ms", "max ms"],
                    [["worker start (spawn to HELLO)", len(starts), f"{med(starts) * 1000:.0f}",
                      f"{pctl(starts, 95) * 1000:.0f}", f"{max(starts) * 1000:.0f}"],
                     [f"512x512 PNG, {len(png):,} B, Connection loopback", reps, f"{med(secs) * 1000:.2f}",
                      f"{pctl(secs, 95) * 1000:.2f}", f"{max(secs) * 1000:.2f}"]],
                    note="Worker start is part of every load_model (it overlaps the kernel's file checks) and of the "
                         "reload after a crash. The transfer is a loopback in one process (a sender thread and the "
                         "main thread), the same Connection calls the worker and the kernel's runner use; the PNG is "
                         "encoded in the worker, so what crosses is the PNG bytes once.")


def _photo_like() -> np.ndarray:
    rng = np.random.default_rng(0)
    yy, xx = np.mgrid[0:512, 0:512].astype(np.float32)
    smooth = np.stack([xx / 2, yy / 2, (xx + yy) / 4], -1) + rng.normal(0, 6, (512, 512, 3))
    return np.clip(smooth, 0, 255).astype(np.uint8)


# ---------------------------------------------------------------------- 6. cache presets


def section_cache(b: Bench, models: dict[str, Any]) -> dict[str, Any]:
    a = b.args
    verdicts: dict[str, Any] = {}
    for name in a.families:
        model = models[name]
        b.load("probe", name, "qvac", model, {"threads": a.threads})
        params = gen_params(a, model.family, a.cache_size, a.cache_steps)
        b.warm("probe", name, "qvac", params)
        keys = ["none", *PRESETS]
        times: dict[str, list[float]] = {k: [] for k in keys}
        sample: dict[str, list[float]] = {k: [] for k in keys}
        images: dict[str, np.ndarray] = {}
        logs: dict[str, list[str]] = {}
        for r in range(a.repeats):
            for key in rotated(keys, r):
                p = {**params, "cache_preset": None if key == "none" else key}
                reply, px = b.gen("probe", name, "qvac", p, probe=True)
                times[key].append(reply["s"])
                sample[key].append(reply.get("sample_span_s", float("nan")))
                images[key] = px
                logs[key] = reply.get("cache_log", [])
            print(f"  [6 {name}] round {r + 1}: " + ", ".join(f"{k} {times[k][-1]:.2f}s" for k in keys), flush=True)
        speed = {k: med([n / t for n, t in zip(times["none"], times[k], strict=False)]) for k in keys}
        sspeed = {k: med([n / t for n, t in zip(sample["none"], sample[k], strict=False)]) for k in keys}
        skipped = {k: skipped_steps(logs[k]) for k in keys}
        # Skipped steps are deterministic (timings are not, on a shared machine): they must rise strictly,
        # and the measured speed-up must rise from slow to ultra.
        counts = [skipped[k] for k in PRESETS]
        rising = all(c is not None for c in counts) and all(y > x for x, y in zip(counts, counts[1:], strict=False))
        monotone = rising and sspeed["ultra"] > sspeed["slow"] + NOISE
        verdicts[name] = {"monotone": monotone, "speed": sspeed, "skipped": skipped}
        rows = [[k, f"{med(times[k]):.2f}", f"{speed[k]:.2f}x", f"{sspeed[k]:.2f}x",
                 "off" if k == "none" else (skipped[k] if skipped[k] is not None else "?"),
                 fmt_diff(diff(images[k], images["none"]))]
                for k in keys]
        mode = "EasyCache" if model.family in ("flux", "flux2", "sd3") else "UCache"
        b.report.detail(
            f"6. Cache presets, {name} ({mode}), {a.cache_size}x{a.cache_size}, {a.cache_steps} steps",
            ["preset", "median s", "speed-up (total)", "speed-up (sampling)", "steps skipped", "pixels vs no cache"],
            rows, note=f"PRESETS (threshold, start, end) = {_presets()}. Sampling time = the time between the first "
                       "and last sampling progress ticks, scaled to all steps; speed-up = no-cache time / preset time, "
                       "median of the per-round ratios. Steps skipped from the engine's cache log line.",
        )
        b.report.row("6", f"cache presets speed rises slow -> ultra ({name}, {mode})",
                     ", ".join(f"{k} {sspeed[k]:.2f}x" for k in PRESETS), "monotonic (steps skipped rise strictly)",
                     "yes" if monotone else "no",
                     "skipped steps " + "/".join(str(skipped[k]) for k in PRESETS)
                     + f"; ultra pixels vs none: {fmt_diff(diff(images['ultra'], images['none']))}")
    return verdicts


def _presets() -> str:
    from qvac_nb.cache_presets import PRESETS as values

    return ", ".join(f"{k} {v}" for k, v in values.items())


# ---------------------------------------------------------------------- RESULTS.md


def machine() -> dict[str, Any]:
    import psutil

    cpu = platform.processor()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {"cpu": cpu, "logical": os.cpu_count(), "physical": psutil.cpu_count(logical=False),
            "ram_gib": round(psutil.virtual_memory().total / 2**30, 1), "os": platform.platform(),
            "load": [round(x, 2) for x in os.getloadavg()]}


def merge_from(report: Report, old: dict[str, Any], sections: set[str] | None = None) -> None:
    """Take `sections` (default: every section it has that this run did not measure) from another run's results."""
    have = {r["section"] for r in old["rows"]}
    present = {r.section for r in report.rows}  # an earlier --merge source wins
    take = (have - report.measured - present) if sections is None else (sections & have)
    if not take:
        return
    report.rows = sorted([r for r in report.rows if r.section not in take]
                         + [Row(**r) for r in old["rows"] if r["section"] in take], key=lambda r: r.section)
    report.details = sorted([d for d in report.details if d[4] not in take]
                            + [d for d in old["details"] if d[4] in take], key=lambda d: d[4])
    report.meta.setdefault("merged", []).append(
        f"section(s) {','.join(sorted(take))} from the run of {old['meta']['date']} "
        f"(`python benchmarks/run.py {' '.join(old['argv'])}`, load {old['meta'].get('machine', {}).get('load')} "
        f"→ {old['meta'].get('load_end')})")


BUSY_LOAD_PER_CORE = 1.5  # the benchmark alone keeps about one per core busy; more means other work


def write_results(report: Report, path: Path) -> None:
    a, m = report.args, report.meta
    path.parent.mkdir(parents=True, exist_ok=True)
    path.with_suffix(".json").write_text(json.dumps(
        {"rows": [r.__dict__ for r in report.rows], "details": report.details, "argv": a.argv,
         "meta": {k: v for k, v in m.items() if k in ("date", "machine", "info", "load_end")}}, indent=1, default=str))
    cmd = "python benchmarks/run.py " + " ".join(a.argv)
    lines = [
        "# qvac_nb benchmarks",
        "",
        f"Written by `{cmd.strip()}` on {m['date']} ({m['wall_s']:.0f} s)"
        + (" — **partial: the run had not finished its sections when this was written**." if m.get("partial") else "."),
        "",
        "Every figure is a ratio within one run, the two sides alternating (A B, B A, ...), median over rounds. "
        "Random-weight test models from `tests/testmodels`. How each figure is measured: `benchmarks/README.md`.",
        "",
        "## Machine and versions",
        "",
        f"- CPU: {m['machine']['cpu']}, {m['machine']['physical']} physical / {m['machine']['logical']} logical "
        f"cores, {m['machine']['ram_gib']} GiB RAM, {m['machine']['os']}",
        *([f"- load average at start {m['machine']['load']}, at end {m['load_end']}"
           + (" — **the machine was shared and busy: absolute times are inflated and ratios noisier than usual**"
              if max(m["machine"]["load"] + m["load_end"]) > (m["machine"]["logical"] or 2) * BUSY_LOAD_PER_CORE
              else ""),
           f"- settings: size {a.size}, steps {a.steps}, repeats {a.repeats}, threads {a.threads}, cache section "
           f"{a.cache_size}x{a.cache_size} / {a.cache_steps} steps, models {', '.join(a.families)}"]
          if report.measured else ["- settings and load averages: those of each merged run below (load averages "
                                   f"above {BUSY_LOAD_PER_CORE} per core mean a shared, busy machine: times inflated, "
                                   "ratios noisy; the benchmark alone keeps about one per core busy)"]),
        f"- Python {m['info'].get('python')}, qvac_nb {m['info'].get('qvac_nb')} ({m['info'].get('qvac_nb_path')}), "
        f"stable-diffusion-cpp-python {m['info'].get('peer')}",
        f"- engine library {m['info'].get('engine', {}).get('path')} — {m['info'].get('system_info', '')}",
        *[f"- merged: {line}" for line in m.get("merged", [])],
        "",
        "## Summary",
        "",
        "| # | figure | measured | goal | met | notes |",
        "|---|---|---|---|---|---|",
    ]
    for row in report.rows:
        lines.append(f"| {row.section} | {row.figure} | {row.measured} | {row.goal} | {row.met} | {row.notes} |")
    lines += ["", "## Details", ""]
    for block in report.details:
        lines += [block, ""]
    if m.get("errors"):
        lines += ["## Errors", ""] + [f"- {e}" for e in m["errors"]] + [""]
    # benchmarks/batch.py writes its own block into the same file: keep it.
    previous = path.read_text(encoding="utf-8") if path.is_file() else ""
    kept = previous[previous.find("<!-- BEGIN batch -->"):] if "<!-- BEGIN batch -->" in previous else ""
    path.write_text("\n".join(lines) + ("\n" + kept if kept else ""))


# ---------------------------------------------------------------------- main


def parse(argv: Sequence[str]) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true",
                    help="tiny sizes, cfg 1 and one repeat: checks the harness (minutes on a busy 2-core machine)")
    ap.add_argument("--size", type=int, default=None, help="image side for sections 1, 2, 5 (256 or 512)")
    ap.add_argument("--repeats", type=int, default=None, help="alternating rounds per figure")
    ap.add_argument("--steps", type=int, default=None, help="sampling steps for sections 1 and 2")
    ap.add_argument("--threads", type=int, default=None, help="engine threads (default: physical cores)")
    ap.add_argument("--cache-size", type=int, default=None, help="image side for the cache-preset section")
    ap.add_argument("--cache-steps", type=int, default=None, help="steps for the cache-preset section")
    ap.add_argument("--models", default=None, help="comma list of test models (default sd1,flux2)")
    ap.add_argument("--fresh-models", default=None, help="comma list of test models for section 5 (default "
                    "sd1,flux2,sd1_full: the toy models and one at SD 1.5's real size)")
    ap.add_argument("--load-models", default=None, help="comma list of test models for section 5's load-only "
                    "rounds (default sdxl_full: SDXL base at its real size, whose generation is too slow to repeat)")
    ap.add_argument("--sections", default="1,2,3,4,5,6,7", help="comma list of sections to run")
    ap.add_argument("--update", action="store_true", help="keep the sections not run now from the previous "
                    "<out>.json (re-run some sections only)")
    ap.add_argument("--merge", type=Path, action="append", default=[], help="take the sections this run did not "
                    "measure from another run's results JSON (e.g. one run concurrently with other --sections)")
    ap.add_argument("--out", type=Path, default=HERE / "RESULTS.md", help="where to write the results table")
    a = ap.parse_args(argv)
    a.argv = list(argv)
    quick = a.quick
    a.size = a.size or (64 if quick else 256)
    a.repeats = a.repeats or (1 if quick else 3)
    a.steps = a.steps or (1 if quick else 2)
    a.cache_size = a.cache_size or (64 if quick else 128)
    a.cache_steps = a.cache_steps or (2 if quick else 20)
    a.latency_steps = 2 if quick else 12
    a.control = not quick
    a.families = (a.models or ("sd1" if quick else "sd1,flux2")).split(",")
    a.fresh_families = (a.fresh_models or ("sd1" if quick else "sd1,flux2,sd1_full")).split(",")
    a.load_families = [m for m in (a.load_models or ("sd1" if quick else "sdxl_full")).split(",") if m]
    a.candidates = ("vae_conv_direct",) if quick else CANDIDATES
    a.sections = {s.strip() for s in a.sections.split(",") if s.strip()}
    previous = a.out.with_suffix(".json")
    a.previous = json.loads(previous.read_text()) if a.update and previous.exists() else None
    return a


def main(argv: Sequence[str] | None = None) -> int:
    a = parse(sys.argv[1:] if argv is None else argv)
    start = time.perf_counter()
    report = Report(a)
    report.meta["machine"] = machine()
    a.physical = report.meta["machine"]["physical"] or 1
    a.threads = a.threads or a.physical
    report.meta["date"] = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    errors: list[str] = []
    models = test_models(sorted(set(a.families) | set(a.fresh_families) | set(a.load_families) | {"sd1"}))
    steps: list[tuple[str, Callable[[Bench], Any]]] = [
        ("1", lambda b: section_end_to_end(b, models)),
        ("2", lambda b: section_defaults(b, models)),
        ("3", lambda b: section_latency(b, models)),
        ("4", section_delivery),
        ("5", lambda b: section_memory(b, models)),
        ("6", lambda b: section_cache(b, models)),
        ("7", section_worker),
    ]
    with tempfile.TemporaryDirectory(prefix="qvac-bench-") as tmp:
        bench = Bench(a, report, Path(tmp))
        try:
            info = bench.server("qvac").call("info")
            report.meta["info"] = info
            for number, run in steps:
                if number not in a.sections:
                    continue
                print(f"section {number} ...", flush=True)
                try:
                    run(bench)
                    report.measured.add(number)
                except Exception as exc:  # noqa: BLE001 - one section's failure is reported, the rest still run
                    errors.append(f"section {number}: {type(exc).__name__}: {str(exc)[:2000]}")
                    print(errors[-1], file=sys.stderr, flush=True)
                if number == "2":  # section 2 holds many contexts: free them
                    bench.close()
                finish(report, errors, start, partial=True)  # a killed run keeps its finished sections
            if errors:
                _keep_logs(Path(tmp), a.out)
        finally:
            bench.close()
    finish(report, errors, start, partial=False)
    print(f"wrote {a.out} in {time.perf_counter() - start:.0f} s", flush=True)
    return 1 if errors else 0


def finish(report: Report, errors: list[str], start: float, partial: bool) -> None:
    a = report.args
    report.meta.update(errors=errors, wall_s=time.perf_counter() - start, partial=partial,
                       load_end=[round(x, 2) for x in os.getloadavg()])
    final = Report(a, set(report.measured), list(report.rows), list(report.details), dict(report.meta))
    final.meta.pop("merged", None)
    if a.previous is not None:
        merge_from(final, a.previous)
    for source in a.merge:
        merge_from(final, json.loads(source.read_text()))
    write_results(final, a.out)


def _keep_logs(tmp: Path, out: Path) -> None:
    """Worker stderr (engine logs) next to the results, for a failure's post-mortem."""
    logs = out.parent / (out.stem + "-logs")
    logs.mkdir(exist_ok=True)
    for log in tmp.glob("worker-*.log"):
        (logs / log.name).write_bytes(log.read_bytes())


if __name__ == "__main__":
    sys.exit(main())
