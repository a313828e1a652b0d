"""Reading and writing HF safetensors checkpoints (single file or sharded with an index), tensor by tensor.

Never pickle: only `*.safetensors` files are read. Tensors are read one at a time (memory-mapped), so
converting holds about one copy of the weights.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from pathlib import Path

import jax
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save_file

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class SafetensorsReader:
    """name -> numpy array over a directory's safetensors files, with errors naming file and tensor."""

    def __init__(self, directory: str | Path):
        self.dir = Path(directory)
        index = self.dir / INDEX
        if index.is_file():
            weight_map = json.loads(index.read_text()).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ValueError(f"{index}: no 'weight_map'")
            self.files = {name: self.dir / f for name, f in weight_map.items()}
            missing = sorted({str(f) for f in self.files.values() if not f.is_file()})
            if missing:
                raise FileNotFoundError(f"{index} names shards that are missing: {missing}")
        elif (self.dir / SINGLE).is_file():
            with safe_open(self.dir / SINGLE, framework="flax") as f:
                self.files = {name: self.dir / SINGLE for name in f.keys()}
        else:
            pickles = [p.name for p in self.dir.glob("*.bin")] + [p.name for p in self.dir.glob("*.pt*")]
            hint = f" (found {pickles}: pickle checkpoints are not loaded; re-save with safetensors)" \
                if pickles else ""
            raise FileNotFoundError(f"{self.dir}: neither {SINGLE} nor {INDEX}{hint}")
        self._open: dict[Path, object] = {}

    def names(self) -> list[str]:
        return sorted(self.files)

    def get(self, name: str, shape: tuple[int, ...] | None = None, dtype=None) -> np.ndarray:
        if name not in self.files:
            raise KeyError(f"{self.dir}: tensor {name!r} missing from the checkpoint")
        path = self.files[name]
        if path not in self._open:
            self._open[path] = safe_open(path, framework="flax")
        # framework="flax" reads bfloat16 (numpy cannot); pin to host memory so no accelerator round trip
        with jax.default_device(jax.devices("cpu")[0]):
            x = np.asarray(self._open[path].get_tensor(name))
        if shape is not None and tuple(x.shape) != tuple(shape):
            raise ValueError(f"{path.name}: tensor {name!r} has shape {tuple(x.shape)}, config.json implies "
                             f"{tuple(shape)}")
        return x.astype(dtype) if dtype is not None else x


def write_sharded(directory: str | Path, tensors: Iterable[tuple[str, np.ndarray]],
                  max_shard_bytes: int = 2 << 30) -> list[str]:
    """Writes `model-0000k-of-0000n.safetensors` shards + the index (or one file if it fits)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    shards: list[dict[str, np.ndarray]] = [{}]
    size = 0
    for name, x in tensors:
        if shards[-1] and size + x.nbytes > max_shard_bytes:
            shards.append({})
            size = 0
        shards[-1][name] = np.ascontiguousarray(x)
        size += x.nbytes
    meta = {"format": "pt"}
    if len(shards) == 1:
        save_file(shards[0], str(directory / SINGLE), metadata=meta)
        return [SINGLE]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    total = 0
    for fname, shard in zip(names, shards):
        save_file(shard, str(directory / fname), metadata=meta)
        weight_map.update({k: fname for k in shard})
        total += sum(x.nbytes for x in shard.values())
    (directory / INDEX).write_text(json.dumps({"metadata": {"total_size": total}, "weight_map": weight_map},
                                              indent=1))
    return names
