"""Deployment: the REST server (``app``, ``request``, ``metrics``, ``server``, ``settings``), streaming batch
prediction (``batch``, ``batch_read``), the prediction log (``predict_log``, ``log_store``), and monitoring
(``profile``, ``drift``, ``monitor``)."""
