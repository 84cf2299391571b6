"""Evaluate an RL checkpoint: N greedy episodes, mean and std of the return, optionally a video.

    python scripts/evaluate.py logs/runs/dqn-cartpole/<run>/checkpoints/last.ckpt
    python scripts/evaluate.py <ckpt> --episodes 100 --seed 1
    python scripts/evaluate.py <ckpt> --video            # needs moviepy: pip install 'mlzoo[rl]'

Writes nothing but, with --video, <run>/videos/<ckpt>-<time>/ (a new folder each time), and then
prints each video's path first (`video: <path>`). Last, one JSON line: {"episodes",
"mean_return", "std_return", "min_return", "max_return", "env_id"} (with --video also "videos").
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from datetime import datetime
from pathlib import Path

from mlzoo.run.targets import add_allow_targets_argument


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("checkpoint", type=Path)
    p.add_argument("--episodes", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--video", action="store_true", help="record episodes (moviepy)")
    add_allow_targets_argument(p)
    args = p.parse_args(argv)
    if args.episodes < 1:
        print("error: --episodes must be >= 1", file=sys.stderr)
        return 1
    from mlzoo.base.errors import ZooError
    from mlzoo.run.files import check_output

    folder = args.checkpoint.resolve().parent.parent / "videos"
    folder = folder / f"{args.checkpoint.stem}-{datetime.now():%Y-%m-%d_%H-%M-%S_%f}"
    try:
        if args.video:  # before any work: a new folder, in a writable one (<run>/videos/: created)
            check_output(folder, "--video", parents=True)
        # imported after the checks: --help and bad arguments answer at once
        import numpy as np

        from mlzoo.rl.agent import RLModule
        from mlzoo.run.load import load_checkpoint

        model, envs, _ = load_checkpoint(args.checkpoint, allow_targets=args.allow_targets)
        if not isinstance(model, RLModule) or not hasattr(envs, "make_env"):
            raise ZooError(f"{type(model).__name__} is not an RL agent (no act())")
        kwargs = {}
        if args.video:
            try:
                import moviepy  # noqa: F401
            except ImportError:
                raise ZooError("--video needs moviepy: pip install 'mlzoo[rl]'") from None
            kwargs["render_mode"] = "rgb_array"
            # frames are drawn off screen: SDL's dummy video driver needs no display and does not
            # print "error: XDG_RUNTIME_DIR is invalid" where no desktop session is running
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        env = envs.make_env(args.seed, **kwargs)  # with the run's wrappers
        if args.video:
            from gymnasium.wrappers import RecordVideo

            env = RecordVideo(env, str(folder), episode_trigger=lambda i: True)
        returns = model.evaluate(args.episodes, env, args.seed)  # greedy, as in training
        env.close()
        r = np.array(returns)
        out = {
            "env_id": envs.env_id,
            "episodes": len(r),
            "mean_return": float(r.mean()),
            "std_return": float(r.std()),
            "min_return": float(r.min()),
            "max_return": float(r.max()),
        }
        if args.video:  # (episode 2 before episode 10)
            videos = sorted(folder.glob("*.mp4"), key=lambda v: (len(v.name), v.name))
            out["videos"] = [str(v) for v in videos]
            for video in out["videos"]:
                print(f"video: {video}")
        print(json.dumps(out))
        return 0
    except ZooError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
