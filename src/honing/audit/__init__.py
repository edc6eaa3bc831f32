"""Audits of data and models: quality checks, fairness measures, and the gates that stop a run.

``honing.audit`` is also the public function :func:`honing.api.audit`: importing this package binds
the name ``audit`` of ``honing`` to it, so the package itself is callable and calls that function
(``honing.audit(data, target=…)`` works before and after any of its modules is imported).
"""

from __future__ import annotations

import sys
import types
from typing import Any


class _CallableModule(types.ModuleType):
    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        from honing.api import audit

        return audit(*args, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
