"""Collectives per step from HLO text: a loop's body counts once per iteration."""
import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from flan_ul2r.training import hlo_stats

LAYERS, WIDTH = 5, 128


def _compiled_text(unroll: int) -> str:
    """A scan whose body all-gathers a [8, WIDTH] float32 array and all-reduces a [1, WIDTH] one."""
    mesh = Mesh(np.asarray(jax.devices()[:8]), ("x",))
    gather = jax.shard_map(lambda a: jax.lax.all_gather(a, "x", tiled=True), mesh=mesh, in_specs=P("x"),
                           out_specs=P(), check_vma=False)
    reduce = jax.shard_map(lambda a: jax.lax.psum(a, "x"), mesh=mesh, in_specs=P("x"), out_specs=P(),
                           check_vma=False)

    def body(carry, x):  # each collective depends on the previous one: XLA cannot combine them
        g = gather(x * carry).sum()
        return reduce(x * g).sum(), None

    def f(xs):
        return jax.lax.scan(body, jnp.float32(1.0), xs, unroll=unroll)[0]

    xs = jax.ShapeDtypeStruct((LAYERS, 8, WIDTH), jnp.float32, sharding=NamedSharding(mesh, P(None, "x")))
    return jax.jit(f).lower(xs).compile().as_text()


def test_scanned_loop_counts_like_the_unrolled_program():
    scanned = hlo_stats.collectives(_compiled_text(unroll=1))
    unrolled = hlo_stats.collectives(_compiled_text(unroll=LAYERS))
    assert " while(" in _compiled_text(unroll=1)
    assert scanned.unknown_trip_counts == 0
    assert scanned.counts == unrolled.counts
    assert scanned.bytes == unrolled.bytes
    # By hand: LAYERS all-gathers of an f32[8, WIDTH] result, and at least one all-reduce per layer.
    assert scanned.counts["all-gather"] == LAYERS
    assert scanned.bytes["all-gather"] == LAYERS * 8 * WIDTH * 4
    assert scanned.counts["all-reduce"] >= LAYERS


TPU_STYLE = """HloModule m

%body (p: (s32[], bf16[4,8])) -> (s32[], bf16[4,8]) {
  %p = (s32[], bf16[4,8]{1,0}) parameter(0)
  %ag = bf16[16,8]{1,0:T(8,128)(2,1)} all-gather(%x), channel_id=1, dimensions={0}
  %ar = (f32[2]{0}, bf16[4,8]{1,0}) all-reduce(%a, %b), channel_id=2, to_apply=%add
  %rs = f32[3]{0} reduce-scatter(%c), channel_id=3, dimensions={0}, to_apply=%add
  ROOT %t = (s32[], bf16[4,8]{1,0}) tuple(%i, %y)
}

%cond (p.1: (s32[], bf16[4,8])) -> pred[] {
  %constant.433.clone.3 = s32[]{:T(128)} constant(32)
  %p.1 = (s32[], bf16[4,8]{1,0}) parameter(0)
  %get-tuple-element.1 = s32[]{:T(128)} get-tuple-element(%p.1), index=0
  ROOT %lt = pred[]{:T(512)} compare(%get-tuple-element.1, %constant.433.clone.3), direction=LT
}

%add (a: f32[], b: f32[]) -> f32[] {
  ROOT %s = f32[] add(%a, %b)
}

ENTRY %main (x: bf16[4,8]) -> bf16[4,8] {
  %w = (s32[], bf16[4,8]{1,0}) while(%init), condition=%cond, body=%body
  %g = bf16[8]{0} all-gather-start(%z), channel_id=4
  ROOT %r = bf16[4,8]{1,0} get-tuple-element(%w), index=1
}
"""


def test_tpu_loop_condition_gives_the_trip_count():
    c = hlo_stats.collectives(TPU_STYLE)
    assert c.counts == {"all-gather": 32 + 1, "reduce-scatter": 32, "all-reduce": 32, "all-to-all": 0,
                        "collective-permute": 0}
    assert c.bytes["all-gather"] == 32 * 16 * 8 * 2 + 8 * 2
    assert c.bytes["all-reduce"] == 32 * (2 * 4 + 4 * 8 * 2)
    assert c.bytes["reduce-scatter"] == 32 * 3 * 4
    assert c.unknown_trip_counts == 0
