"""`siamrec serve`: the recommender as an HTTP service over the same library code and store as the CLI.

The web layer holds no recommendation or storage logic: every route calls the core (siamrec.library,
siamrec.recommend, siamrec.store) the CLI calls, so both answer the same way for the same store.
"""
