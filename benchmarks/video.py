"""qvac_nb's video() against the peer's generate_video: wall time of one tiny Wan 2.1 video, same files, same call.

    python benchmarks/video.py [--rounds 3] [--steps 2] [--frames 5] [--size 64] [--cfg 1] [--out benchmarks/VIDEO.md]

Each round runs both sides in fresh processes (the order alternates between rounds), each loading the
random-weight Wan 2.1 T2V test model (tests/testmodels/wan.py: full-size UMT5-XXL and DiT) and timing one
video from the call to the frames in hand: qvac_nb's from `video()` to `job.video()` (worker round trip and
MP4 encoding included), the peer's `generate_video` call. The frames must be equal, or the round is void.
Reported: each round's ratio qvac_nb / peer and their median (goal <= 1.01).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import textwrap
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
THREADS = 2


def _run(code: str, timeout: float = 1800.0) -> dict:
    env = {**os.environ, "PYTHONPATH": str(ROOT / "tests")}
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True,
                            timeout=timeout, env=env, cwd=ROOT / "tests")
    if result.returncode != 0:
        raise RuntimeError(result.stderr[-3000:])
    return json.loads(result.stdout.strip().splitlines()[-1])


def ours(call: dict, out: Path) -> dict:
    return _run(f"""
        import json, time
        import numpy as np
        import qvac_nb
        from testmodels import registry
        m = registry.get("wan21_t2v")
        model_id = qvac_nb.load_model(str(m.primary), model_config={{"mode": "video", "threads": {THREADS},
                                                                     **m.model_config()}})
        t0 = time.perf_counter()
        job = qvac_nb.video(model_id=model_id, **{call!r})
        clip = job.video(timeout=1800)
        wall = time.perf_counter() - t0
        np.save({str(out)!r}, clip.array)
        print(json.dumps({{"wall_s": wall, "engine_s": job.stats.result().generation_ms / 1000}}))
    """)


def peer(call: dict, out: Path) -> dict:
    kwargs = {k: v for k, v in call.items() if k != "steps"} | {"sample_steps": call["steps"]}
    return _run(f"""
        import json, time
        import numpy as np
        from stable_diffusion_cpp import StableDiffusion
        from testmodels import registry
        m = registry.get("wan21_t2v")
        sd = StableDiffusion(diffusion_model_path=str(m.files["diffusion_model"]), t5xxl_path=str(m.files["t5xxl"]),
                             vae_path=str(m.files["vae"]), n_threads={THREADS}, rng_type="cuda",
                             vae_decode_only=False, verbose=False)
        t0 = time.perf_counter()
        frames = sd.generate_video(**{kwargs!r})
        wall = time.perf_counter() - t0
        np.save({str(out)!r}, np.stack([np.asarray(f.convert("RGB")) for f in frames]))
        print(json.dumps({{"wall_s": wall}}))
    """)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=2)
    parser.add_argument("--frames", type=int, default=5)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--cfg", type=float, default=1.0, help="cfg_scale (1: one UMT5 pass; else two)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "VIDEO.md")
    args = parser.parse_args(argv)
    import numpy as np

    call = {"prompt": "a lovely cat walking", "negative_prompt": "blurry", "width": args.size, "height": args.size,
            "video_frames": args.frames, "steps": args.steps, "cfg_scale": args.cfg, "flow_shift": 3.0,
            "sample_method": "euler", "seed": 11}
    ours_call = {k: v for k, v in call.items() if k != "sample_method"} | {"sampling_method": "euler"}
    tmp = Path(os.environ.get("TMPDIR", "/tmp")) / f"qvac_nb-video-bench-{os.getpid()}"
    tmp.mkdir(parents=True, exist_ok=True)
    rows, ratios = [], []
    started = time.time()
    for r in range(args.rounds):
        sides = [("qvac_nb", lambda: ours(ours_call, tmp / "ours.npy")), ("peer", lambda: peer(call, tmp / "peer.npy"))]
        got = {}
        for name, run in (sides if r % 2 == 0 else sides[::-1]):
            got[name] = run()
        equal = bool(np.array_equal(np.load(tmp / "ours.npy"), np.load(tmp / "peer.npy")))
        ratio = got["qvac_nb"]["wall_s"] / got["peer"]["wall_s"]
        rows.append((r + 1, got["qvac_nb"]["wall_s"], got["peer"]["wall_s"], ratio, equal))
        if equal:
            ratios.append(ratio)
        print(f"round {r + 1}: qvac_nb {got['qvac_nb']['wall_s']:.1f} s, peer {got['peer']['wall_s']:.1f} s, "
              f"ratio {ratio:.3f}, frames equal: {equal}", flush=True)
    load = os.getloadavg()
    lines = [
        "# Video: qvac_nb video() / peer generate_video", "",
        f"Wan 2.1 T2V test model (tests/testmodels/wan.py), {args.size}x{args.size}, {args.frames} frames, "
        f"{args.steps} steps, cfg {args.cfg:g} with a negative prompt, euler, {THREADS} threads; fresh processes, "
        f"order alternating. Run {time.strftime('%Y-%m-%d %H:%M', time.gmtime(started))} UTC, load average at the end "
        f"{load[0]:.2f} / {load[1]:.2f}.", "",
        "| round | qvac_nb (s) | peer (s) | ratio | frames equal |", "|---|---|---|---|---|",
        *[f"| {n} | {a:.1f} | {b:.1f} | {q:.3f} | {e} |" for n, a, b, q, e in rows], "",
        f"Median ratio: **{statistics.median(ratios):.3f}**" if ratios else "No round had equal frames.", "",
    ]
    args.out.write_text("\n".join(lines))
    print(f"wrote {args.out}")
    return 0 if ratios else 1


if __name__ == "__main__":
    sys.exit(main())
