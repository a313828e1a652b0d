"""Model side: config, flax decoder, losses. Never imports seqio, TensorFlow or `flan_ul2r.data`."""
