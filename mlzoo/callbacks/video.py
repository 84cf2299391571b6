"""EpisodeVideo: the trained agent's greedy episode as a video in TensorBoard (its Images tab).

After testing (the best checkpoint), one episode of the evaluation env, rendered off screen, goes
into TensorBoard as an animated GIF, ``test/episode`` (TensorBoard shows videos as GIF images;
torch's ``add_video`` would encode them with moviepy 1's ``moviepy.editor``, which moviepy 2 no
longer has, so Pillow encodes them here), at the agent's environment step, the x-axis of every RL
scalar. Frames are subsampled (``every``-th frame, ``max_frames`` at most) and shrunk
(``scale``), so the event file stays small. The RL presets add it (``callbacks.video``); any RL
run can: ``+callbacks.video._target_=mlzoo.callbacks.video.EpisodeVideo``.
"""

from __future__ import annotations

import io
import os

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import TensorBoardLogger
from PIL import Image
from tensorboard.compat.proto.summary_pb2 import Summary


class EpisodeVideo(Callback):
    def __init__(
        self, every: int = 2, max_frames: int = 300, scale: int = 2, fps: int = 25, seed: int = 0
    ) -> None:
        if every < 1 or max_frames < 1 or scale < 1 or fps < 1:
            raise ValueError("every, max_frames, scale and fps must be >= 1")
        self.every, self.max_frames, self.scale, self.fps, self.seed = (
            every,
            max_frames,
            scale,
            fps,
            seed,
        )

    def on_test_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        loggers = [lg for lg in trainer.loggers if isinstance(lg, TensorBoardLogger)]
        if not trainer.is_global_zero or not loggers or not hasattr(module, "env_action"):
            return
        frames = self.episode(trainer, module)
        gif = io.BytesIO()
        first, *rest = (Image.fromarray(f) for f in frames)
        first.save(gif, "GIF", save_all=True, append_images=rest, duration=1000 // self.fps, loop=0)
        height, width = frames[0].shape[:2]
        image = Summary.Image(
            height=height, width=width, colorspace=3, encoded_image_string=gif.getvalue()
        )
        summary = Summary(value=[Summary.Value(tag="test/episode", image=image)])
        step = getattr(module, "env_steps", trainer.global_step)
        for lg in loggers:
            lg.experiment.file_writer.add_summary(summary, step)
            lg.experiment.flush()

    @torch.no_grad()
    def episode(self, trainer: L.Trainer, module: L.LightningModule) -> list[np.ndarray]:
        """The frames of one greedy episode, subsampled and shrunk, as (H, W, 3) uint8 arrays."""
        os.environ.setdefault("SDL_VIDEODRIVER", "dummy")  # off screen; no display needed
        env = trainer.datamodule.make_env(self.seed, render_mode="rgb_array")
        obs, _ = env.reset(seed=self.seed)
        frames, done, t = [], False, 0
        while not done:
            if t % self.every == 0 and len(frames) < self.max_frames:
                frames.append(np.asarray(env.render())[:: self.scale, :: self.scale, :3])
            action = module.env_action(module.act(torch.as_tensor(obs, dtype=torch.float32)[None]))
            obs, _, terminated, truncated, _ = env.step(action[0])
            done, t = terminated or truncated, t + 1
        env.close()
        return frames
