"""Transitional alias: `InputError` now lives in `common.errors`.

Only `zoo/applications.py`, `zoo/loading.py` and `tasks/engine/runner.py` still import it from
here; delete this file once they import `common.errors` (or, for the zoo, raise ValueError).
"""

from common.errors import InputError

__all__ = ["InputError"]
