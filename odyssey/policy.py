"""The PPO allocation policy: seeded training on vectorized PortfolioEnvs with signed checkpoints
that a crashed run resumes from, signed SB3 zips loaded without unpickling, and ONNX export.

Exact resume: rollouts end on episode boundaries (n_steps is a multiple of the episode length),
the global random generators are reseeded from (seed, timesteps) at the start of every rollout,
and each env's episode sequence is a function of (seed, env index, episode number). A run
resumed from a checkpoint therefore produces the same weights as one that never stopped.
"""

from __future__ import annotations

import io
import json
import time
import warnings
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from stable_baselines3 import PPO
from stable_baselines3.common.buffers import RolloutBuffer
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.utils import ConstantSchedule, FloatSchedule, set_random_seed
from stable_baselines3.common.vec_env import DummyVecEnv

from odyssey.hashing import sha256_bytes
from odyssey.portfolio import Constraints, EnvSettings, PolicyMarket, PortfolioEnv
from odyssey.settings import PPOSettings
from odyssey.signing import SignatureError, sign, verify



def env_settings(settings: PPOSettings) -> EnvSettings:
    return EnvSettings(tilt=settings.tilt, trade_rate=settings.trade_rate, risk_aversion=settings.risk_aversion,
                       reward_scale=settings.reward_scale, episode_length=settings.episode_length)


@dataclass
class TrainedPolicy:
    model: PPO
    timesteps: int
    resumed_from: int | None  # timesteps of the checkpoint the run resumed from
    seconds: float
    rollout_rewards: list[float]  # mean reward per step, per rollout (this run's rollouts only)


def make_vec_env(market: PolicyMarket, settings: PPOSettings, constraints: Constraints) -> DummyVecEnv:
    env = env_settings(settings)
    vec = DummyVecEnv([lambda: PortfolioEnv(market, constraints, env)
                       for _ in range(settings.n_envs)])
    vec.seed(settings.seed)
    return vec


def _reseed(settings: PPOSettings, timesteps: int) -> None:
    set_random_seed(settings.seed + timesteps)


class _Checkpoints(BaseCallback):
    """Reseeds at every rollout start, saves a signed checkpoint every `checkpoint_rollouts`
    rollouts, and records the mean reward of each rollout."""

    def __init__(self, settings: PPOSettings, folder: Path | None, key: bytes):
        super().__init__()
        self.settings, self.folder, self.key = settings, folder, key
        self.rewards: list[float] = []
        self._sum = 0.0
        self._count = 0

    def _on_rollout_start(self) -> None:
        steps = self.model.num_timesteps
        rollouts = steps // self.settings.rollout
        if self.folder is not None and steps and rollouts % self.settings.checkpoint_rollouts == 0:
            save_checkpoint(self.model, self.folder, self.key)
        _reseed(self.settings, steps)
        self._sum, self._count = 0.0, 0

    def _on_step(self) -> bool:
        self._sum += float(np.sum(self.locals["rewards"]))
        self._count += len(self.locals["rewards"])
        return True

    def _on_rollout_end(self) -> None:
        self.rewards.append(self._sum / max(self._count, 1))


# Rollout state that SB3 would pickle, and the wall-clock start: left out of saved zips (a resumed
# run starts a new rollout), so the same training gives the same bytes.
TRANSIENT = ("_last_obs", "_last_original_obs", "_last_episode_starts", "ep_info_buffer", "ep_success_buffer",
             "start_time", "_num_timesteps_at_start")


def model_bytes(model: PPO) -> bytes:
    """The SB3 zip, with fixed entry timestamps so that identical models give identical bytes."""
    buffer = io.BytesIO()
    model.save(buffer, exclude=list(TRANSIENT))
    out = io.BytesIO()
    with zipfile.ZipFile(io.BytesIO(buffer.getvalue())) as source, \
            zipfile.ZipFile(out, "w", zipfile.ZIP_DEFLATED) as target:
        for info in source.infolist():
            target.writestr(zipfile.ZipInfo(info.filename, date_time=(1980, 1, 1, 0, 0, 0)), source.read(info),
                            compress_type=zipfile.ZIP_DEFLATED)
    return out.getvalue()


def save_checkpoint(model: PPO, folder: Path, key: bytes) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    data = model_bytes(model)
    path = folder / f"ppo_{model.num_timesteps:012d}.zip"
    path.write_bytes(data)
    path.with_suffix(".json").write_text(json.dumps({"sha256": sha256_bytes(data), "signature": sign(data, key),
                                                     "timesteps": model.num_timesteps}))
    return path


def latest_checkpoint(folder: Path | None, key: bytes) -> tuple[bytes, int] | None:
    """The newest checkpoint in `folder` whose hash and signature verify (others are skipped
    with a warning)."""
    if folder is None or not folder.exists():
        return None
    for path in sorted(folder.glob("ppo_*.zip"), reverse=True):
        try:
            meta = json.loads(path.with_suffix(".json").read_text())
            data = path.read_bytes()
            verify(data, key, meta["sha256"], meta["signature"], name=str(path))
            return data, int(meta["timesteps"])
        except (OSError, ValueError, KeyError) as error:
            warnings.warn(f"skipping checkpoint {path.name}: {error}", stacklevel=2)
    return None


def _ppo_kwargs(settings: PPOSettings) -> dict:
    return dict(learning_rate=settings.learning_rate, n_steps=settings.n_steps, batch_size=settings.batch_size,
                n_epochs=settings.n_epochs, gamma=settings.gamma, gae_lambda=settings.gae_lambda,
                clip_range=settings.clip_range, ent_coef=settings.ent_coef)


def train_ppo(market: PolicyMarket, settings: PPOSettings = PPOSettings(),
              constraints: Constraints = Constraints(), checkpoint_dir: Path | None = None, key: bytes = b"",
              callbacks: Sequence[BaseCallback] = ()) -> TrainedPolicy:
    """Train (or resume from the newest valid checkpoint in `checkpoint_dir`) to total_timesteps.

    `market` holds the training period only (scaled out-of-sample forecasts, their context, the
    baseline and the returns); the caller keeps the validation and test periods out."""
    started = time.perf_counter()
    torch.set_num_threads(settings.torch_threads)
    env = make_vec_env(market, settings, constraints)
    total = -(-settings.total_timesteps // settings.rollout) * settings.rollout  # whole rollouts
    found = latest_checkpoint(checkpoint_dir, key)
    resumed_from = None
    if found is not None and found[1] <= total:
        data, steps = found
        model = load_model(data, env=env, clip_range=settings.clip_range)
        env.env_method("start_at_episode", steps // settings.n_envs // settings.episode_length)
        env.seed(settings.seed)
        resumed_from = steps
        _reseed(settings, steps)
    else:
        _reseed(settings, 0)
        model = PPO("MlpPolicy", env, seed=settings.seed, device="cpu", verbose=0,
                    policy_kwargs={"net_arch": list(settings.net_arch)}, **_ppo_kwargs(settings))
        env.seed(settings.seed)
    checkpoints = _Checkpoints(settings, checkpoint_dir, key)
    remaining = total - model.num_timesteps
    if remaining > 0:
        model.set_logger(Logger(folder=None, output_formats=[]))  # SB3's default makes a tempdir/SB3-<time> folder
        model.learn(remaining, callback=[checkpoints, *callbacks], reset_num_timesteps=False)
        if checkpoint_dir is not None:  # a repeat of the same training then loads instead of training
            save_checkpoint(model, checkpoint_dir, key)
    return TrainedPolicy(model, model.num_timesteps, resumed_from, time.perf_counter() - started, checkpoints.rewards)


# -- loading without unpickling -----------------------------------------------------------------

def _safe_objects(data: dict, clip_range: float) -> dict:
    """Replacements for every cloudpickled entry of an SB3 zip's `data` file, so loading never
    unpickles; an entry we do not know is refused."""
    learning_rate = data.get("learning_rate")
    learning_rate = float(learning_rate) if isinstance(learning_rate, (int, float)) else 0.0
    known = {
        "policy_class": ActorCriticPolicy,
        "rollout_buffer_class": RolloutBuffer,
        "lr_schedule": ConstantSchedule(learning_rate),
        "clip_range": FloatSchedule(clip_range),
        "learning_rate": learning_rate,
    }
    out = {}
    for name, value in data.items():
        if isinstance(value, dict) and ":serialized:" in value:
            if name in known:
                out[name] = known[name]
            elif name in ("observation_space", "action_space") or name in TRANSIENT:
                out[name] = None  # spaces come from the caller; rollout state starts afresh
            else:
                raise SignatureError(f"PPO zip: field {name!r} is pickled and has no safe replacement")
    return out


def load_model(data: bytes, env=None, observation_space=None, action_space=None, clip_range: float = 0.2) -> PPO:
    """An SB3 PPO from zip bytes, without executing pickled content: spaces come from `env` (or
    the given spaces), schedules are rebuilt, tensors load with torch's weights-only loader."""
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        meta = json.loads(archive.read("data"))
    custom = _safe_objects(meta, clip_range)
    if env is not None:
        observation_space, action_space = env.observation_space, env.action_space
    if observation_space is None or action_space is None:
        raise ValueError("load_model needs an env or both spaces")
    custom.update(observation_space=observation_space, action_space=action_space)
    return PPO.load(io.BytesIO(data), env=env, device="cpu", custom_objects=custom)


def load_verified(data: bytes, sha256: str, signature: str, key: bytes, observation_space,
                  action_space) -> PPO:
    verify(data, key, sha256, signature, name="ppo policy")
    return load_model(data, observation_space=observation_space, action_space=action_space)


# -- deterministic actions: torch and ONNX ------------------------------------------------------

class _DeterministicActor(torch.nn.Module):
    """obs -> clipped mean action, exactly what PPO.predict(deterministic=True) returns."""

    def __init__(self, policy: ActorCriticPolicy):
        super().__init__()
        self.policy = policy

    def forward(self, obs: torch.Tensor) -> torch.Tensor:
        features = self.policy.extract_features(obs, self.policy.pi_features_extractor)
        latent = self.policy.mlp_extractor.forward_actor(features)
        return torch.clamp(self.policy.action_net(latent), -1.0, 1.0)


def export_onnx(model: PPO) -> bytes:
    """The deterministic actor as ONNX (input `obs` [batch, 2N] float32, output `action`)."""
    actor = _DeterministicActor(model.policy).eval()
    dummy = torch.zeros((1, *model.observation_space.shape), dtype=torch.float32)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(actor, (dummy,), buffer, input_names=["obs"], output_names=["action"],
                          dynamic_axes={"obs": {0: "batch"}, "action": {0: "batch"}}, opset_version=17,
                          dynamo=False)
    return buffer.getvalue()


def torch_decider(model: PPO) -> Callable[[np.ndarray], np.ndarray]:
    def decide(obs: np.ndarray) -> np.ndarray:
        action, _ = model.predict(obs, deterministic=True)
        return action
    return decide


def onnx_decider(onnx_bytes: bytes) -> Callable[[np.ndarray], np.ndarray]:
    """A single-threaded onnxruntime session deciding one observation (or a batch)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    options.inter_op_num_threads = 1
    session = ort.InferenceSession(onnx_bytes, options, providers=["CPUExecutionProvider"])

    def decide(obs: np.ndarray) -> np.ndarray:
        batch = np.asarray(obs, dtype=np.float32)
        single = batch.ndim == 1
        out = session.run(["action"], {"obs": batch[None, :] if single else batch})[0]
        return out[0] if single else out
    return decide
