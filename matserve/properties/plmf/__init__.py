"""The plmf property model: property-labelled Voronoi fragments (Isayev et al. 2017) and LightGBM models.

``elements`` (vertex labels), ``graph`` (Voronoi neighbours), ``features`` (the feature vectors),
``fields`` (what each model learns), ``train`` (the training script), ``model`` (serving).
"""
