"""TPU slice names -> topologies and chip counts, and the messages for names that are not slices."""
import pytest

from flan_ul2r.training.tpu_topology import parse_slice


@pytest.mark.parametrize("name, topology, chips, hbm", [
    ("v5p:4x4x2", "v5p:4x4x2", 32, 95),
    ("v5p:8x8x4", "v5p:8x8x4", 256, 95),
    ("v5p-8", "v5p:2x2x1", 4, 95),        # v5p slice names count TensorCores: 2 per chip
    ("v5p-64", "v5p:2x4x4", 32, 95),
    ("v5p-512", "v5p:4x8x8", 256, 95),
    ("v4-32", "v4:2x2x4", 16, 32),
    ("v5e-256", "v5e:16x16", 256, 16),    # v5e / v6e slice names count chips
    ("v5litepod-8", "v5e:2x4", 8, 16),
    ("v6e-256", "v6e:16x16", 256, 32),
    ("v6e:2x4", "v6e:2x4", 8, 32),
])
def test_names_map_to_topologies(name, topology, chips, hbm):
    s = parse_slice(name)
    assert (s.topology, s.chips, s.hbm_gib) == (topology, chips, hbm)
    n = 1
    for d in s.topology.split(":")[1].split("x"):
        n *= int(d)
    assert n == s.chips


@pytest.mark.parametrize("name, words", [
    ("v7x-8", ["'v7x-8'", "unknown TPU generation 'v7x'", "v5p"]),
    ("v5p:4x4", ["'v5p:4x4'", "3-D", "got 2 numbers (4, 4)"]),
    ("v6e:4x4x4", ["2-D", "got 3 numbers"]),
    ("v5p-24", ["'v5p-24'", "TensorCores", "24 is not a standard v5p slice", "v5p:AxBxC"]),
    ("v5p-7", ["TensorCores (2 per chip)", "7 is not"]),
    ("v5e-12", ["12 is not a standard v5e slice", "v5e:AxB"]),
    ("pod", ["'pod' is not a TPU topology name", "v5p-64"]),
])
def test_bad_names_say_what_is_wrong(name, words):
    with pytest.raises(ValueError) as e:
        parse_slice(name)
    for w in words:
        assert w in str(e.value), (w, str(e.value))
