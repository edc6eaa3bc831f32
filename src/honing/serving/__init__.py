"""Deployment: the REST server (``app``, ``request``, ``metrics``, ``server``), streaming batch prediction
(``batch``), the prediction log (``predict_log``), and monitoring (``profile``, ``drift``, ``monitor``)."""
