"""The benchmark (`siamrec bench`): the paper's masked-playlist protocol scored right (protocol), the measures
and their exact chance levels (measures), what is scored (methods: the store's model, MFCC statistics,
musicnn, random), feedback rounds (feedback), one run over a store (run) and its plots. The baselines and
plots need the `bench` extra; the protocol and measures need numpy alone.
"""
