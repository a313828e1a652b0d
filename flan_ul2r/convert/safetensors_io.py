"""Reading and writing HF safetensors checkpoints (single file or sharded with an index), tensor by tensor.

Never pickle: only `*.safetensors` files are read. Tensors are read one at a time (memory-mapped), so
converting holds about one copy of the weights. Directories may be remote (gs://...): each shard is
copied to a local temporary file while it is read (safetensors maps local files only), and written
shards are uploaded.
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable

import jax
import numpy as np
from safetensors import safe_open
from safetensors.numpy import save, save_file

from flan_ul2r import fs

INDEX = "model.safetensors.index.json"
SINGLE = "model.safetensors"


class SafetensorsReader:
    """name -> numpy array over a directory's safetensors files, with errors naming file and tensor."""

    def __init__(self, directory: fs.PathLike):
        self.dir = fs.path(directory)
        self._local = contextlib.ExitStack()  # temporary local copies of remote shards
        self._open: dict[str, object] = {}
        index = self.dir / INDEX
        if index.is_file():
            weight_map = fs.read_json(index).get("weight_map")
            if not isinstance(weight_map, dict):
                raise ValueError(f"{index}: no 'weight_map'")
            self.files = {name: self.dir / f for name, f in weight_map.items()}
            missing = sorted({str(f) for f in self.files.values() if not f.is_file()})
            if missing:
                raise FileNotFoundError(f"{index} names shards that are missing: {missing}")
        elif (self.dir / SINGLE).is_file():
            self.files = {name: self.dir / SINGLE for name in self._shard(self.dir / SINGLE).keys()}
        else:
            pickles = [p.name for p in self.dir.glob("*.bin")] + [p.name for p in self.dir.glob("*.pt*")]
            hint = f" (found {pickles}: pickle checkpoints are not loaded; re-save with safetensors)" \
                if pickles else ""
            raise FileNotFoundError(f"{self.dir}: neither {SINGLE} nor {INDEX}{hint}")

    def _shard(self, path: fs.PathLike) -> object:
        key = str(path)
        if key not in self._open:
            local = self._local.enter_context(fs.local_copy(path))
            self._open[key] = safe_open(local, framework="flax")
        return self._open[key]

    def close(self) -> None:
        """Drops the open shards and their temporary local copies."""
        self._open.clear()
        self._local.close()

    def __enter__(self) -> SafetensorsReader:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def names(self) -> list[str]:
        return sorted(self.files)

    def get(self, name: str, shape: tuple[int, ...] | None = None, dtype=None) -> np.ndarray:
        if name not in self.files:
            raise KeyError(f"{self.dir}: tensor {name!r} missing from the checkpoint")
        path = self.files[name]
        shard = self._shard(path)
        # framework="flax" reads bfloat16 (numpy cannot); pin to host memory so no accelerator round trip
        with jax.default_device(jax.devices("cpu")[0]):
            x = np.asarray(shard.get_tensor(name))
        if shape is not None and tuple(x.shape) != tuple(shape):
            raise ValueError(f"{path.name}: tensor {name!r} has shape {tuple(x.shape)}, config.json implies "
                             f"{tuple(shape)}")
        return x.astype(dtype) if dtype is not None else x


def _save(tensors: dict[str, np.ndarray], path: fs.PathLike, metadata: dict[str, str]) -> None:
    if fs.is_remote(path):
        fs.path(path).write_bytes(save(tensors, metadata=metadata))
    else:
        save_file(tensors, str(path), metadata=metadata)
        os.chmod(path, 0o666 & ~fs.umask())  # safetensors creates 0600 whatever the umask


def write_sharded(directory: fs.PathLike, tensors: Iterable[tuple[str, np.ndarray]],
                  max_shard_bytes: int = 2 << 30) -> list[str]:
    """Writes `model-0000k-of-0000n.safetensors` shards + the index (or one file if it fits)."""
    directory = fs.path(directory)
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
        _save(shards[0], directory / SINGLE, meta)
        return [SINGLE]
    names = [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
    weight_map = {}
    total = 0
    for fname, shard in zip(names, shards):
        _save(shard, directory / fname, meta)
        weight_map.update({k: fname for k in shard})
        total += sum(x.nbytes for x in shard.values())
    fs.write_json(directory / INDEX, {"metadata": {"total_size": total}, "weight_map": weight_map})
    return names
