"""Report: tracked runs → the paper's tables and figures (results/<scale>/), and the MLflow UI."""
