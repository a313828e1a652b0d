"""Data side: vocabularies, sources, UL2 denoisers, Flan templates, feature conversion.

Never imports `flan_ul2r.models` (the design keeps data and models apart; only trainer/pipeline/cli join them).
"""
