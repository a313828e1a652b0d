"""Model side: config, flax decoder, losses. Never imports seqio, TensorFlow or `flan_ul2r.data`."""
from flan_ul2r.models.config import ModelConfig, preset
from flan_ul2r.models.decoder import Decoder

__all__ = ["Decoder", "ModelConfig", "preset"]
