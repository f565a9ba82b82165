"""modevo: controlled modality-evolution experiments on speech language models.

Stages, in data-flow order (no stage imports a later one):
corpus → units → views → train → tasks → score → report.
"""

__version__ = "0.1.0"
