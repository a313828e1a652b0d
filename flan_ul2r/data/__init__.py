"""Data side: vocabularies, sources, UL2 denoisers, Flan templates, feature conversion.

Never imports `flan_ul2r.models`: data and models stay apart; only trainer/pipeline/cli join them.
"""
