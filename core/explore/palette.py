"""The colours every figure of the project shares: the app's interactive charts and the static report.

Only constants: no plotting library is imported here, so the app and the report can both depend on it.
"""
from __future__ import annotations

# one colour per attribute on every page and figure (true and predicted values share it)
ATTRIBUTE_COLOURS = {"arousal": "#d62728", "valence": "#1f77b4", "dominance": "#2ca02c"}
OTHER_COLOUR = "#7f7f7f"  # an attribute without a colour of its own
