"""Model types: the registry of classic (scikit-learn / LightGBM) estimators in :mod:`.classic`."""
