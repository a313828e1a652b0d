"""Trainer: sharded steps equal single-device steps, microbatching is exact, deterministic resume."""
import json
import math
import os
import subprocess
import sys
import textwrap

import jax
import numpy as np
import pytest

from flan_ul2r import partitioning
from flan_ul2r.data.core.loader import make_train_iterator
from flan_ul2r.models.config import preset
from flan_ul2r.training import optim
from flan_ul2r.training.config import CheckpointConfig, ModelSpec, OptimizerConfig, RunConfig
from flan_ul2r.training.run import run
from flan_ul2r.training.trainer import Trainer
from tests._train_toy import LENGTHS, register_toy_mixture, train_tiny
from tests._xla import xla_flags

CFG = preset("tiny", vocab_size=362, d_model=32, num_heads=4, num_kv_heads=2, head_dim=8, d_ff=64)


@pytest.fixture(scope="module")
def batches():
    name = register_toy_mixture()
    it = make_train_iterator(name, LENGTHS, 8, seed=0)
    return [next(it) for _ in range(3)]


def _losses(mesh_sizes, rules, batches, microbatches=1, opt="adamw", cfg=CFG, chunked_loss=True):
    n = int(np.prod(list(mesh_sizes.values())))
    mesh = partitioning.make_mesh(**mesh_sizes, devices=jax.devices()[:n])
    lr = optim.schedule("constant", 3e-3)
    trainer = Trainer(cfg, optim.optimizer(opt, lr), mesh, partitioning.rules_for(rules),
                      num_microbatches=microbatches, chunked_loss=chunked_loss)
    state = trainer.init_state(0)
    out = []
    for b in batches:
        state, m = trainer.train_step(state, partitioning.global_batch(b, mesh))
        out.append(float(m["loss"]))
    return out, state


@pytest.mark.slow
def test_fsdp_and_tensor_parallel_match_one_device(batches):
    # Tolerance: float32 sums reduced in another order across shards; 1e-5 relative.
    single, _ = _losses({"data": 1, "fsdp": 1, "tensor": 1}, "data_parallel", batches)
    fsdp, state = _losses({"data": 1, "fsdp": 8, "tensor": 1}, "fsdp", batches)
    both, _ = _losses({"data": 1, "fsdp": 4, "tensor": 2}, "fsdp_tensor", batches)
    np.testing.assert_allclose(fsdp, single, rtol=1e-5)
    np.testing.assert_allclose(both, single, rtol=1e-5)
    assert single[-1] < single[0]
    # The parameters really are sharded under FSDP (each device holds 1/8 of an embed axis).
    q = state.params["layers"]["attn"]["q"]["kernel"]
    assert q.sharding.shard_shape(q.shape)[1] == q.shape[1] // 8


@pytest.mark.slow
@pytest.mark.parametrize("tied", [False, True])
def test_chunked_loss_trains_exactly_like_dense_logits(batches, tied):
    """models/fused_loss.py (gradient computed chunk by chunk in the forward pass) against autodiff through
    the full [batch, length, vocab] logits, 3 AdamW steps, untied and tied (embedding.T) output kernels."""
    cfg = CFG.replace(tie_embeddings=tied)
    one = {"data": 1, "fsdp": 1, "tensor": 1}
    dense, dense_state = _losses(one, "data_parallel", batches, cfg=cfg, chunked_loss=False)
    chunked, chunked_state = _losses(one, "data_parallel", batches, cfg=cfg)
    np.testing.assert_allclose(chunked, dense, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(chunked_state.params), jax.tree.leaves(dense_state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.slow
def test_gemma_style_model_trains_alike_chunked_dense_and_sharded(batches):
    """Gemma 2/3 switches in training on packed prefix-LM batches (64 tokens, window 8 on layer 0, global
    layer 1): soft-capped attention and output logits (caps small enough to bind), q/k norms, sandwich norms.
    The chunked loss (cap inside models/fused_loss.py) equals autodiff through the capped dense logits, and
    FSDP x tensor parallelism on 8 devices equals one device."""
    cfg = CFG.replace(norm_layout="sandwich", qk_norm="head", sliding_window=8, global_layers=(1,),
                      rope_local_theta=1e4, attn_logit_softcap=2.0, final_logit_softcap=3.0,
                      query_pre_attn_scalar=12.0, mlp_activation="gelu_tanh", norm_scale_offset=1.0,
                      embed_scale=True, tie_embeddings=True)
    one = {"data": 1, "fsdp": 1, "tensor": 1}
    dense, dense_state = _losses(one, "data_parallel", batches, cfg=cfg, chunked_loss=False)
    chunked, chunked_state = _losses(one, "data_parallel", batches, cfg=cfg)
    sharded, _ = _losses({"data": 1, "fsdp": 4, "tensor": 2}, "fsdp_tensor", batches, cfg=cfg)
    np.testing.assert_allclose(chunked, dense, rtol=1e-5)
    np.testing.assert_allclose(sharded, chunked, rtol=1e-5)
    for a, b in zip(jax.tree.leaves(chunked_state.params), jax.tree.leaves(dense_state.params)):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=1e-5)


@pytest.mark.slow
def test_microbatching_gives_the_same_step(batches):
    full, _ = _losses({"data": 2, "fsdp": 1, "tensor": 1}, "data_parallel", batches, opt="adafactor")
    micro, _ = _losses({"data": 2, "fsdp": 1, "tensor": 1}, "data_parallel", batches, microbatches=2,
                       opt="adafactor")
    np.testing.assert_allclose(micro, full, rtol=1e-5)


@pytest.mark.slow
def test_a_step_right_after_an_async_save_keeps_the_saved_state(batches, tmp_path):
    """Every step donates its input state, the one right after an async save too (one compiled program per
    run). orbax copies the state to host before `save` returns; on CPU that copy is a view of the device
    buffer, and XLA must not overwrite it while the writer still reads it."""
    from flan_ul2r.training.checkpoints import TrainCheckpoints

    mesh = partitioning.make_mesh(data=1, fsdp=2, tensor=1, devices=jax.devices()[:2])
    trainer = Trainer(CFG, optim.optimizer("adamw", optim.schedule("constant", 3e-3)), mesh,
                      partitioning.rules_for("fsdp"))
    first = trainer.init_state(0)
    saved, _ = trainer.train_step(first, partitioning.global_batch(batches[0], mesh))
    assert all(x.is_deleted() for x in jax.tree.leaves(first))  # without a save, the input is donated
    expected = [np.array(x, copy=True) for x in jax.tree.leaves(saved)]
    ckpts = TrainCheckpoints(tmp_path, period=1)
    ckpts.save(1, saved, {"position": 1})  # async: returns before the files are written
    state = saved
    for b in batches[1:]:
        state, _ = trainer.train_step(state, partitioning.global_batch(b, mesh))
    # the saved arrays still hold step 1's values while (and after) later steps run
    assert all(np.array_equal(np.asarray(x), e) for x, e in zip(jax.tree.leaves(saved), expected))
    ckpts.wait()
    restored, _ = ckpts.restore(1, trainer.abstract_state)
    assert all(np.array_equal(np.asarray(x), e) for x, e in zip(jax.tree.leaves(restored), expected))
    assert int(state.step) == 3 and trainer.jitted_step(batches[0])._cache_size() == 1  # one program
    ckpts.close()


def _run(model_dir, steps, **kw):
    return train_tiny(model_dir, register_toy_mixture(), steps, **kw)


def _jsonl(model_dir):
    rows = [json.loads(x) for x in (model_dir / "metrics.jsonl").read_text().splitlines()]
    return {r["step"]: r for r in rows}


# A killed run resumed bit-identically (on a remote MODEL_DIR): tests/test_remote_fs.py.


@pytest.mark.slow
def test_nan_loss_stops_without_checkpointing_it(tmp_path):
    from flan_ul2r.training.checkpoints import restore_params

    register_toy_mixture()
    with pytest.raises(FloatingPointError, match="at step") as info:
        run(RunConfig(model_dir=str(tmp_path), mixture_or_task_name="toy_ul2r", task_feature_lengths=LENGTHS,
                      train_steps=6, batch_size=8, model=ModelSpec(shape=preset("tiny")),
                      optimizer=OptimizerConfig(name="adamw", learning_rate=1e30, clip_norm=None),
                      checkpoint=CheckpointConfig(period=1)))
    saved = sorted(int(p.name) for p in (tmp_path / "checkpoints").iterdir() if p.name.isdigit())
    losses = {step: r["loss"] for step, r in _jsonl(tmp_path).items()}
    assert all(math.isfinite(x) for x in losses.values())
    assert saved == sorted(losses)  # every finite step saved (period 1), the bad one not
    assert f"The last good checkpoint is step {saved[-1]}" in str(info.value)
    params, _ = restore_params(tmp_path / "checkpoints" / str(saved[-1]))  # intact and finite
    assert all(np.isfinite(np.asarray(x)).all() for x in jax.tree.leaves(params))


def test_mesh_errors_name_the_axis():
    with pytest.raises(ValueError, match="mesh axis 'tensor': size 3 does not divide the 8 devices"):
        partitioning.make_mesh(data=-1, fsdp=1, tensor=3)
    with pytest.raises(ValueError, match="only one axis may be -1"):
        partitioning.make_mesh(data=-1, fsdp=-1)


@pytest.mark.slow
@pytest.mark.subprocess
def test_checkpoint_saved_on_8_devices_restores_on_4(tmp_path):
    from flan_ul2r.training import checkpoints

    mesh8 = partitioning.make_mesh(data=1, fsdp=8, tensor=1)
    lr = optim.schedule("constant", 1e-3)
    trainer = Trainer(CFG, optim.optimizer("adamw", lr), mesh8, partitioning.rules_for("fsdp"))
    state = trainer.init_state(7)
    checkpoints.save_params(tmp_path / "p8", state.params, CFG.to_dict())
    expected = jax.tree.map(np.asarray, state.params)
    np.savez(tmp_path / "expected.npz", **{jax.tree_util.keystr(k): v
                                           for k, v in jax.tree_util.tree_leaves_with_path(expected)})
    script = textwrap.dedent(f"""
        import jax, numpy as np
        from flan_ul2r import partitioning
        from flan_ul2r.training import checkpoints, optim
        from flan_ul2r.models.config import ModelConfig
        from flan_ul2r.training.trainer import Trainer
        assert jax.device_count() == 4
        cfg = ModelConfig.from_dict(checkpoints.read_json_beside({str(tmp_path / 'p8')!r}, "model_config"))
        mesh = partitioning.make_mesh(data=1, fsdp=2, tensor=2)
        t = Trainer(cfg, optim.optimizer("adamw", optim.schedule("constant", 1e-3)), mesh,
                    partitioning.rules_for("fsdp_tensor"))
        params, _ = checkpoints.restore_params({str(tmp_path / 'p8')!r}, t.abstract_state.params)
        exp = np.load({str(tmp_path / 'expected.npz')!r})
        for k, v in jax.tree_util.tree_leaves_with_path(params):
            assert len(v.sharding.device_set) == 4
            np.testing.assert_array_equal(np.asarray(v), exp[jax.tree_util.keystr(k)])
        print("RESTORED", len(exp.files))
    """)
    env = {**os.environ, "XLA_FLAGS": xla_flags(4)}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=300)
    assert "RESTORED" in out.stdout, out.stderr[-3000:]


@pytest.mark.slow
def test_bfloat16_compute_keeps_float32_master_weights(batches):
    mesh = partitioning.make_mesh(data=1, fsdp=1, tensor=1, devices=jax.devices()[:1])
    losses = {}
    for dtype in ("float32", "bfloat16"):
        tx = optim.optimizer("adamw", optim.schedule("constant", 1e-3))
        trainer = Trainer(CFG.replace(dtype=dtype), tx, mesh, partitioning.rules_for("data_parallel"))
        state = trainer.init_state(0)
        state, m = trainer.train_step(state, partitioning.global_batch(batches[0], mesh))
        losses[dtype] = float(m["loss"])
        assert all(x.dtype == np.float32 for x in jax.tree.leaves(state.params))
    # Same initial params; bf16 matmuls (8-bit mantissa) move the loss by well under 1%.
    assert losses["bfloat16"] != losses["float32"]
    np.testing.assert_allclose(losses["bfloat16"], losses["float32"], rtol=1e-2)
